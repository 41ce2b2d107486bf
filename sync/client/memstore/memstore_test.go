package memstore

import (
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

func topup(id string) entry.Entry {
	return entry.Entry{Kind: entry.KindTopUp, MemberID: "M1", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), StoredValueDelta: 100,
		TopUp: &entry.TopUp{TopUpID: id, Amount: 100}}
}

func TestOutboxSemantics(t *testing.T) {
	s := New("S1")
	for i := 0; i < 5; i++ {
		if e, err := s.Append("T1", topup("x")); err != nil || e.Seq != uint64(i+1) || e.Store != "S1" || e.Till != "T1" {
			t.Fatalf("append %d: %+v %v", i, e, err)
		}
	}
	if _, err := s.Append("T1", entry.Entry{Kind: entry.KindSale}); err == nil {
		t.Fatal("invalid entry accepted")
	}
	if p, _ := s.Pending("T1", 2, 2); len(p) != 2 || p[0].Seq != 3 || p[1].Seq != 4 {
		t.Fatalf("pending %+v", p)
	}
	if p, _ := s.Pending("T1", 5, 10); len(p) != 0 {
		t.Fatalf("pending past end %+v", p)
	}
	if _, err := s.Pending("T1", 0, 0); err == nil {
		t.Fatal("zero limit accepted")
	}
	if err := s.Ack("T1", 6); err == nil {
		t.Fatal("ack past the end accepted")
	}
	if err := s.Ack("T1", 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack("T1", 2); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Acked("T1"); a != 4 {
		t.Fatalf("ack went back to %d", a)
	}
	if n, oldest, _ := s.Backlog(); n != 1 || oldest.IsZero() {
		t.Fatalf("backlog %d %v", n, oldest)
	}
	_ = s.RecordDeadLetters([]wire.DeadLetter{{Store: "S1", Till: "T1", Seq: 3, Reason: "r"}, {Store: "S1", Till: "T1", Seq: 3, Reason: "r"}})
	if dl := s.DeadLetters(); len(dl) != 1 {
		t.Fatalf("dead letters %+v", dl)
	}
}

func TestInboxSemantics(t *testing.T) {
	s := New("S1")
	if err := s.ApplyMemberStates([]wire.MemberState{{Points: 1}}); err == nil {
		t.Fatal("member without id accepted")
	}
	_ = s.ApplyMemberStates([]wire.MemberState{{Member: entry.Member{ID: "M1"}, Points: 1}})
	_ = s.ApplyMemberStates([]wire.MemberState{{Member: entry.Member{ID: "M1"}, Points: 7}})
	if m, ok := s.Member("M1"); !ok || m.Points != 7 || s.Members() != 1 {
		t.Fatalf("member %+v", m)
	}
	_ = s.ApplyProgram([]byte("a"))
	_ = s.ApplyProgram([]byte("a"))
	if len(s.Programs()) != 1 {
		t.Fatal("same program applied twice")
	}
	_ = s.SetSyncCursor("c1")
	if c, _ := s.SyncCursor(); c != "c1" {
		t.Fatal(c)
	}
}
