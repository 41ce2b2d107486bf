package client

import (
	"testing"
	"time"

	"posagent/sync/client/memstore"
	"posagent/sync/wire"
)

// claimStore is a memstore outbox and inbox that also queues member-code
// claims and keeps member-code keys, counting how often keys are applied.
type claimStore struct {
	*memstore.Store
	queued  []wire.MemberCodeClaim
	keys    []wire.MemberCodeKey
	applied int
}

func (s *claimStore) PendingMemberCodeClaims(limit int) ([]wire.MemberCodeClaim, error) {
	return s.queued[:min(limit, len(s.queued))], nil
}

func (s *claimStore) MemberCodeClaimsSent(codes []string) error {
	s.queued = s.queued[len(codes):]
	return nil
}

func (s *claimStore) ApplyMemberCodeKeys(keys []wire.MemberCodeKey) error {
	s.keys, s.applied = keys, s.applied+1
	return nil
}

// An HQ that takes no claims (404) does not stall sync: the claims stay
// queued and entries and changes go on. Keys from the feed are applied
// when they change, not on every pull.
func TestClaimsToAnHQWithoutThemAndKeysOnChange(t *testing.T) {
	hq, srv := newFakeHQ(t)
	key := wire.MemberCodeKey{ID: "0a0b0c0d", Public: make([]byte, 32)}
	hq.changes = []wire.Changes{{MemberCodeKeys: []wire.MemberCodeKey{key}}}
	st := &claimStore{Store: memstore.New("S1"), queued: []wire.MemberCodeClaim{{Code: "c1", Member: "M1", Till: "T1", SeenAt: time.Now(), Expires: time.Now()}}}
	paid := fill(t, st.Store, "T1", 3, time.Now())
	c := newClient(t, srv.URL, st, st, nil)
	for range 3 {
		if err := c.SyncNow(ctx10(t)); err != nil {
			t.Fatal(err)
		}
	}
	requireSynced(t, hq, st.Store, 3, paid, map[string]uint64{"T1": 3})
	if len(st.queued) != 1 {
		t.Fatalf("claims dropped without HQ taking them: %v", st.queued)
	}
	if st.applied != 1 || len(st.keys) != 1 || st.keys[0].ID != key.ID {
		t.Fatalf("keys applied %d times: %+v", st.applied, st.keys)
	}
	// A new key set is applied.
	hq.changes[0].MemberCodeKeys = append(hq.changes[0].MemberCodeKeys, wire.MemberCodeKey{ID: "01020304", Public: make([]byte, 32)})
	if err := st.SetSyncCursor(""); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if st.applied != 2 || len(st.keys) != 2 {
		t.Fatalf("keys applied %d times: %+v", st.applied, st.keys)
	}
}
