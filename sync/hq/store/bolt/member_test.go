package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// The hot part holds exactly these fields of hq.Member, and the cold part
// is rewritten only when a delta is structural or a review is added. A new
// field of hq.Member lands in the cold part: check that only structural
// changes or reviews set it, then add it here.
func TestMemberFieldsKnown(t *testing.T) {
	known := map[string]bool{"ID": true, "Data": true, "Points": true, "StoredValue": true, "Flagged": true,
		"LastSale": true, "TierAt": true, "Coupons": true, "Reviews": true}
	rt := reflect.TypeOf(hq.Member{})
	for i := 0; i < rt.NumField(); i++ {
		require.True(t, known[rt.Field(i).Name], "hq.Member.%s is new: decide whether it is hot or cold in member.go", rt.Field(i).Name)
	}
}

func TestHotRoundTrip(t *testing.T) {
	for _, r := range []memberRec{
		{Version: 1},
		{Member: hq.Member{Points: -12345678901, StoredValue: 99, Flagged: true, LastSale: time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)}, Version: 1 << 60},
		{Member: hq.Member{LastSale: time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC)}, Version: 7},
	} {
		var got memberRec
		require.NoError(t, decodeHot(encodeHot(&r), &got))
		require.Equal(t, r, got)
	}
	for _, bad := range [][]byte{nil, {9}, {hotFormat}, {hotFormat, 1, 2, 3}, {hotFormat, 1, 2, 3, hotLastSale, 5}} {
		var got memberRec
		require.ErrorIs(t, decodeHot(bad, &got), errHot, "%v", bad)
	}
	cold, err := encodeCold(hq.Member{ID: "M1", Points: 5, Data: &entry.Member{ID: "M1", Tier: "gold"}})
	require.NoError(t, err)
	require.NotContains(t, string(cold), `"M1","points"`)
}

// Members that change again and again leave stale change-log entries;
// pruning keeps the log near the number of members, and the feed still
// hands out every member once, at its latest state.
func TestChangeLogStaysBounded(t *testing.T) {
	st, err := Open(filepath.Join(t.TempDir(), "hq.db"), Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	const members, uploads = 5, 400
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < uploads; i++ {
		_, err := st.Ingest(ctx, hqtest.Batch(tl.Points(fmt.Sprintf("M%d", i%members), at, 1, "x")))
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, st.db.View(func(tx *bbolt.Tx) error { n = tx.Bucket(bMemLog).Stats().KeyN; return nil }))
	require.Less(t, n, 100, "change log holds %d entries for %d members after %d changes", n, members, uploads)
	ch, err := st.Changes(ctx, "", 100)
	require.NoError(t, err)
	require.False(t, ch.More)
	require.Len(t, ch.Members, members)
	for _, m := range ch.Members {
		require.EqualValues(t, uploads/members, m.Points, m.Member.ID)
	}
}
