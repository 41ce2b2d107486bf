package messagetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/bolt"
)

// The first round runs today only; after a long outage the jobs catch up
// at most MaxCatchUpDays back; a round on a day already run runs nothing.
func TestDayJobsCatchUpAtMostAMonth(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	set, err := messages.NewSettings(loyalty.DefaultProgram(), nil)
	require.NoError(t, err)
	ctx := context.Background()
	days := func(rs []hq.MessageDay) (out []string) {
		for _, r := range rs {
			require.True(t, r.Ran, r.Day)
			out = append(out, r.Day)
		}
		return out
	}
	d0 := dayOf(2027, 3, 1)
	rs, err := hq.RunMessageDays(ctx, st, set, d0.at(0, 1))
	require.NoError(t, err)
	require.Equal(t, []string{"2027-03-01"}, days(rs))
	rs, err = hq.RunMessageDays(ctx, st, set, d0.at(23, 59))
	require.NoError(t, err)
	require.Empty(t, rs)
	rs, err = hq.RunMessageDays(ctx, st, set, d0.add(3).at(8, 0))
	require.NoError(t, err)
	require.Equal(t, []string{"2027-03-02", "2027-03-03", "2027-03-04"}, days(rs))
	rs, err = hq.RunMessageDays(ctx, st, set, d0.add(60).at(0, 1))
	require.NoError(t, err)
	got := days(rs)
	require.Len(t, got, hq.MaxCatchUpDays+1)
	require.Equal(t, d0.add(60-hq.MaxCatchUpDays).String(), got[0])
	require.Equal(t, d0.add(60).String(), got[len(got)-1])
	last, ok, err := st.LastMessageDay(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, d0.add(60).String(), last.String())
}
