package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/client/memstore"
	"posagent/sync/wire"
)

// lookupHQ is the fake HQ with the member look-up: members it holds by id,
// an optional delay before each answer, and the ids asked for.
type lookupHQ struct {
	*fakeHQ
	members map[string]wire.MemberLookup
	delay   atomic.Int64
	asked   chan string
}

func newLookupHQ(t *testing.T) (*lookupHQ, *httptest.Server) {
	h := &lookupHQ{fakeHQ: &fakeHQ{t: t, acked: map[string]uint64{}, entries: map[string]map[uint64]entry.Entry{}, dead: map[string]string{}},
		members: map[string]wire.MemberLookup{}, asked: make(chan string, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, wire.PathMembers)
		if !ok || r.Method != http.MethodGet {
			h.fakeHQ.ServeHTTP(w, r)
			return
		}
		h.asked <- id
		if r.Header.Get("Authorization") != "Bearer tok" {
			writeJSON(w, 401, wire.Error{Code: "unauthorized", Message: "bad token"})
			return
		}
		select {
		case <-time.After(time.Duration(h.delay.Load())):
		case <-r.Context().Done():
			return
		}
		switch l, ok := h.members[id]; {
		case id == "old-hq":
			http.NotFound(w, r) // an HQ without the look-up: the mux's plain 404
		case id == "busy":
			writeJSON(w, 503, wire.Error{Code: "storage", Message: "HQ could not read"})
		case !ok:
			writeJSON(w, 404, wire.Error{Code: "not_found", Message: "no member " + id + " at HQ"})
		default:
			writeJSON(w, 200, l)
		}
	}))
	t.Cleanup(srv.Close)
	return h, srv
}

// LookupMember asks HQ for one member by its escaped id, and tells HQ's
// answer, an unknown member, an HQ without the look-up and a wrong answer
// apart.
func TestLookupMember(t *testing.T) {
	hq, srv := newLookupHQ(t)
	want := wire.MemberLookup{
		Member: wire.MemberState{Member: entry.Member{ID: "M 1/x", Tier: "gold"}, Points: 350, StoredValue: 1200,
			Coupons: []entry.MemberCoupon{{ID: "c1", MemberID: "M 1/x", Value: 500}}},
		Acked: map[string]uint64{"T1": 7, "WEB": 2},
	}
	hq.members["M 1/x"] = want
	hq.members["M2"] = wire.MemberLookup{Member: wire.MemberState{Member: entry.Member{ID: "M3"}}}
	c := newClient(t, srv.URL, memstore.New("S1"), nil, nil)

	got, err := c.LookupMember(ctx10(t), "M 1/x", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Member.Points != 350 || got.Member.StoredValue != 1200 || got.Member.Member.Tier != "gold" ||
		len(got.Member.Coupons) != 1 || got.Acked["T1"] != 7 || got.Acked["WEB"] != 2 || len(got.Acked) != 2 {
		t.Fatalf("looked up %+v, want %+v", got, want)
	}
	if id := <-hq.asked; id != "M 1/x" {
		t.Fatalf("HQ was asked for %q", id)
	}

	_, err = c.LookupMember(ctx10(t), "M9", time.Second)
	if !errors.Is(err, ErrMemberUnknown) {
		t.Fatalf("unknown member: %v, want ErrMemberUnknown", err)
	}
	_, err = c.LookupMember(ctx10(t), "old-hq", time.Second)
	if err == nil || errors.Is(err, ErrMemberUnknown) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("an HQ without the look-up: %v, want a 404 that is not ErrMemberUnknown", err)
	}
	_, err = c.LookupMember(ctx10(t), "M2", time.Second)
	if err == nil || !strings.Contains(err.Error(), `"M3"`) {
		t.Fatalf("HQ answered another member: %v", err)
	}
	if !c.Offline() {
		t.Fatal("Offline before any upload or pull worked")
	}
}

// Offline: a look-up that cannot reach HQ in time makes the client count
// HQ as unreachable, so the next swipe does not wait; an upload or pull
// that works ends it. HQ answering, even "unknown", or the caller giving up
// does not.
func TestLookupMemberOffline(t *testing.T) {
	hq, srv := newLookupHQ(t)
	hq.members["M1"] = wire.MemberLookup{Member: wire.MemberState{Member: entry.Member{ID: "M1"}}}
	c := newClient(t, srv.URL, memstore.New("S1"), memstore.New("S1"), nil)
	if !c.Offline() {
		t.Fatal("Offline is false before any exchange")
	}
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if c.Offline() {
		t.Fatal("Offline after a pull worked")
	}
	if _, err := c.LookupMember(ctx10(t), "M9", time.Second); !errors.Is(err, ErrMemberUnknown) {
		t.Fatal(err)
	}
	if c.Offline() {
		t.Fatal("an unknown member made the client offline")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.LookupMember(ctx, "M1", time.Second); err == nil {
		t.Fatal("a cancelled look-up worked")
	}
	if c.Offline() {
		t.Fatal("the caller giving up made the client offline")
	}

	// HQ slower than the timeout: the look-up gives up at the timeout.
	hq.delay.Store(int64(5 * time.Second))
	start := time.Now()
	_, err := c.LookupMember(ctx10(t), "M1", 200*time.Millisecond)
	took := time.Since(start)
	if err == nil || took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("slow HQ: %v after %s, want a timeout after 200ms", err, took)
	}
	if !c.Offline() {
		t.Fatal("not offline after a look-up timed out")
	}
	hq.delay.Store(0)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if c.Offline() {
		t.Fatal("still offline after a pull worked")
	}

	// HQ failing counts like HQ unreachable.
	if _, err := c.LookupMember(ctx10(t), "busy", time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("busy HQ: %v", err)
	}
	if !c.Offline() {
		t.Fatal("not offline after HQ answered 503")
	}
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}

	// HQ gone: refused at once.
	srv.Close()
	if _, err := c.LookupMember(ctx10(t), "M1", time.Second); err == nil {
		t.Fatal("a look-up worked with HQ gone")
	}
	if !c.Offline() {
		t.Fatal("not offline with HQ gone")
	}
}

// A member-code claim that cannot reach HQ in time makes the client count
// HQ as unreachable, like a look-up (the member's refresh follows it); an
// HQ that answers, even with a refusal, does not.
func TestClaimTimeoutMakesOffline(t *testing.T) {
	hq, srv := newLookupHQ(t)
	var slow atomic.Bool
	claims := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wire.PathMemberCodeClaims {
			hq.fakeHQ.ServeHTTP(w, r)
			return
		}
		if slow.Load() {
			// Read the body first: only then does the server notice the
			// client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		writeJSON(w, 400, wire.Error{Code: "bad_request", Message: "no"})
	}))
	t.Cleanup(claims.Close)
	srv.Close() // the claims server serves HQ here
	c := newClient(t, claims.URL, memstore.New("S1"), memstore.New("S1"), nil)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	cl := wire.MemberCodeClaim{Code: "c1", Member: "M1", Till: "T1", SeenAt: time.Now(), Expires: time.Now().Add(time.Minute)}
	if _, err := c.ClaimMemberCode(ctx10(t), cl, time.Second); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("refused claim: %v", err)
	}
	if c.Offline() {
		t.Fatal("HQ refusing a claim made the client offline")
	}
	slow.Store(true)
	if _, err := c.ClaimMemberCode(ctx10(t), cl, 200*time.Millisecond); err == nil {
		t.Fatal("a claim HQ never answered worked")
	}
	if !c.Offline() {
		t.Fatal("not offline after a claim timed out")
	}
}
