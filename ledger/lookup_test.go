package ledger

import (
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// A member's state looked up at HQ is applied only when HQ's acked marks,
// read with it, are the till's own: then HQ's balance is the confirmed one
// and the till's pending entries stay on top; otherwise nothing changes.
func TestApplyLookedUpMember(t *testing.T) {
	type setup struct {
		sales int    // sales of the member at T1
		acked uint64 // of them acknowledged by HQ
	}
	for _, tc := range []struct {
		name    string
		setup   setup
		hqAcked map[string]uint64
		applied bool
	}{
		{"nothing written, no marks", setup{}, nil, true},
		{"nothing written, HQ lists other tills of the store", setup{}, map[string]uint64{"T9": 40, "WEB": 3}, true},
		{"marks equal", setup{sales: 2, acked: 2}, map[string]uint64{"T1": 2, "T9": 7}, true},
		{"pending sale on top", setup{sales: 2, acked: 1}, map[string]uint64{"T1": 1}, true},
		{"HQ ahead: an upload in flight", setup{sales: 2, acked: 1}, map[string]uint64{"T1": 2}, false},
		{"HQ ahead of a till with no entries", setup{}, map[string]uint64{"T1": 3}, false},
		{"HQ behind", setup{sales: 2, acked: 2}, map[string]uint64{"T1": 1}, false},
		{"HQ names no mark for an acked till", setup{sales: 1, acked: 1}, map[string]uint64{"T9": 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := open(t)
			hqm := entry.Member{ID: "H1", Name: "n", Tier: "silver", CardTokens: []string{"tok1"}, Mobile: "13900000001"}
			require.NoError(t, l.ApplyMemberStates([]MemberState{{Member: hqm, Points: 100, StoredValue: 500}}))
			var pend, acked int64
			for i := range tc.setup.sales {
				e := sale(t, l, SaleRequest{ReceiptID: string(rune('A' + i)), MemberID: "H1", Lines: []loyalty.Line{line(1, 1, 10000)}})
				require.Positive(t, e.PointsDelta)
				if uint64(i) < tc.setup.acked {
					acked += e.PointsDelta
				} else {
					pend += e.PointsDelta
				}
			}
			if tc.setup.acked > 0 {
				require.NoError(t, l.Ack("T1", tc.setup.acked))
			}
			before, err := l.Member("H1")
			require.NoError(t, err)
			require.Equal(t, 100+acked+pend, before.Points)

			cp := entry.MemberCoupon{ID: "c9", MemberID: "H1", Name: "c", Value: 500, ValidFrom: "2020-01-01T00:00:00Z", ValidUntil: "2030-01-01T00:00:00Z"}
			hqm.Tier = "gold"
			applied, err := l.ApplyLookedUpMember(MemberState{Member: hqm, Points: 350, StoredValue: 700,
				Coupons: []entry.MemberCoupon{cp}}, tc.hqAcked)
			require.NoError(t, err)
			require.Equal(t, tc.applied, applied)

			v, err := l.MemberByToken("tok1")
			require.NoError(t, err)
			if !tc.applied {
				require.Equal(t, before, v, "a refused state changed the member")
				verifyOK(t, l)
				return
			}
			// HQ's 350 holds the acknowledged sales; the pending ones stay on top.
			require.Equal(t, 350+pend, v.Points)
			require.Equal(t, int64(350), v.PointsConfirmed)
			require.Equal(t, pend, v.PointsPending)
			require.Equal(t, int64(700), v.StoredValue)
			require.Equal(t, "gold", v.Member.Tier)
			require.Len(t, v.Coupons, 1)
			require.Equal(t, "c9", v.Coupons[0].ID)
			verifyOK(t, l)
		})
	}
}

// A state whose member id the ledger cannot hold is refused, and nothing
// is written.
func TestApplyLookedUpMemberRefusesGarbledID(t *testing.T) {
	l, _ := open(t)
	for _, id := range []string{"", "H\x001", string(make([]byte, 201))} {
		applied, err := l.ApplyLookedUpMember(MemberState{Member: entry.Member{ID: id}, Points: 5}, nil)
		require.ErrorIs(t, err, ErrInvalid, "%q", id)
		require.False(t, applied)
	}
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		require.Zero(t, countKeys(tx.Bucket(bMembers)), "a refused state was written")
		return nil
	}))
}
