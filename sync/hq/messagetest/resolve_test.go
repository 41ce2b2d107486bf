package messagetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

// An enrolment and a sale set aside as dead letters and resolved later
// count as if they had come with their upload: the member's birthday is
// found, and the sale sends its after-sale message.
func TestResolvedDeadLettersFeedTheTriggers(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		resolveCase(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		base := hqtest.PostgresURL(t)
		ctx := context.Background()
		u, drop, err := pg.FreshSchema(ctx, base, "msgtest_")
		require.NoError(t, err)
		t.Cleanup(func() { _ = drop() })
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4, PruneEvery: -1})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		resolveCase(t, st)
	})
}

func resolveCase(t *testing.T, st store) {
	ctx := context.Background()
	set, err := messages.NewSettings(loyalty.DefaultProgram(), nil)
	require.NoError(t, err)
	st.SetMessageSettings(set)
	require.NoError(t, st.SetConsent(ctx, "M1", true, time.Now(), "store:S1"))
	d := dayOf(2027, 3, 1)
	enrol := entry.Entry{Store: "S1", Till: "T1", Seq: 1, Kind: entry.KindEnrol, MemberID: "M1", At: d.at(10, 0),
		Enrol: &entry.Enrol{Member: entry.Member{ID: "M1", Name: "张小三", Mobile: "13800000001", Birthday: "1990-03-09", Tier: "silver"}}}
	sale := entry.Entry{Store: "S1", Till: "T1", Seq: 2, Kind: entry.KindSale, MemberID: "M1", At: d.at(10, 5), PointsDelta: 1500,
		Sale: &entry.Sale{ReceiptID: "R1", Due: 150000, PointsEarned: 1500, LotExpiresAt: "2028-12-31"}}
	_, err = st.Ingest(ctx, hq.Batch{Store: "S1", Till: "T1", First: 1, Last: 2, ReceivedAt: d.at(22, 0), Items: []hq.Item{
		{Seq: 1, Raw: []byte(`{}`), Reason: "test: set aside"}, {Seq: 2, Raw: []byte(`{}`), Reason: "test: set aside"}}})
	require.NoError(t, err)
	require.NoError(t, st.ResolveDeadLetter(ctx, "S1", "T1", 1, enrol, d.at(23, 0)))
	require.NoError(t, st.ResolveDeadLetter(ctx, "S1", "T1", 2, sale, d.at(23, 1)))
	r, err := st.RunMessageDay(ctx, set, messages.Date{Y: 2027, M: 3, D: 6}, d.at(23, 2))
	require.NoError(t, err)
	require.Equal(t, 1, r.Birthday)
	ms, err := st.Messages(ctx, hq.OutboxFilter{Limit: 10})
	require.NoError(t, err)
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	require.ElementsMatch(t, []string{"after_sale/S1/T1/2", "birthday/M1/2027"}, ids)
}
