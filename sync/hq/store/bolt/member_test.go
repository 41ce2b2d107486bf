package bolt

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
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
