package client

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/client/memstore"
	"posagent/sync/wire"
)

// fakeHQ implements the store side of the HQ protocol in memory, with
// knobs to misbehave.
type fakeHQ struct {
	t  *testing.T
	mu sync.Mutex
	// per store/till
	acked   map[string]uint64
	entries map[string]map[uint64]entry.Entry
	dead    map[string]string // "till/seq" → reason to dead-letter
	// behaviour
	strict      bool           // 409 on any First != acked+1 (HQ ahead answers gap too)
	failNext    int            // answer this many uploads with failStatus
	failStatus  int            // e.g. 503
	retryAfter  string         // header sent with failures
	cutAfter    int            // commit, then kill the connection, this many times
	maxEntries  int            // 413 when a batch is larger
	requests    int            // uploads seen
	keys        []string       // idempotency keys seen
	changes     []wire.Changes // pages served by cursor index
	pulls       int
	changesFrom []string
}

func newFakeHQ(t *testing.T) (*fakeHQ, *httptest.Server) {
	h := &fakeHQ{t: t, acked: map[string]uint64{}, entries: map[string]map[uint64]entry.Entry{}, dead: map[string]string{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *fakeHQ) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		writeJSON(w, 401, wire.Error{Code: "unauthorized", Message: "bad token"})
		return
	}
	switch r.URL.Path {
	case wire.PathBatches:
		h.batch(w, r)
	case wire.PathChanges:
		h.changesPage(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *fakeHQ) batch(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Encoding") != "gzip" {
		writeJSON(w, 400, wire.Error{Code: "encoding", Message: "want gzip"})
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		writeJSON(w, 400, wire.Error{Code: "encoding", Message: err.Error()})
		return
	}
	var b wire.Batch
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		writeJSON(w, 400, wire.Error{Code: "json", Message: err.Error()})
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	h.keys = append(h.keys, r.Header.Get(wire.HeaderIdempotencyKey))
	if h.failNext > 0 {
		h.failNext--
		if h.retryAfter != "" {
			w.Header().Set("Retry-After", h.retryAfter)
		}
		writeJSON(w, h.failStatus, wire.Error{Code: "busy", Message: "try later"})
		return
	}
	if h.maxEntries > 0 && len(b.Entries) > h.maxEntries {
		writeJSON(w, 413, wire.Error{Code: "too_large", Message: "batch too large"})
		return
	}
	k := b.Store + "/" + b.Till
	acked := h.acked[k]
	if b.First > acked+1 || (h.strict && b.First != acked+1) {
		writeJSON(w, 409, wire.Error{Code: "gap", Message: "gap", Expected: acked + 1})
		return
	}
	if h.entries[k] == nil {
		h.entries[k] = map[uint64]entry.Entry{}
	}
	ack := wire.Ack{Store: b.Store, Till: b.Till, Acked: b.Last, Expected: b.Last + 1, Duplicate: b.Last <= acked}
	for _, e := range b.Entries {
		if reason, ok := h.dead[fmt.Sprintf("%s/%d", b.Till, e.Seq)]; ok {
			ack.DeadLettered = append(ack.DeadLettered, wire.DeadLetter{Store: b.Store, Till: b.Till, Seq: e.Seq, Reason: reason})
		}
		if e.Seq > acked {
			h.entries[k][e.Seq] = e
		}
	}
	if b.Last > acked {
		h.acked[k] = b.Last
	}
	if h.cutAfter > 0 {
		h.cutAfter--
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	writeJSON(w, 200, ack)
}

func (h *fakeHQ) changesPage(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pulls++
	cur := r.URL.Query().Get("cursor")
	h.changesFrom = append(h.changesFrom, cur)
	i := 0
	if cur != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(cur, "c"))
		if err != nil {
			writeJSON(w, 400, wire.Error{Code: "bad_cursor", Message: "bad cursor"})
			return
		}
		i = n
	}
	if i >= len(h.changes) {
		writeJSON(w, 200, wire.Changes{Cursor: cur})
		return
	}
	page := h.changes[i]
	page.Cursor = "c" + strconv.Itoa(i+1)
	page.More = i+1 < len(h.changes)
	writeJSON(w, 200, page)
}

// total sums what HQ holds, for comparisons with the store.
func (h *fakeHQ) total() (n int, paid int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, es := range h.entries {
		for _, e := range es {
			n++
			paid += e.Sale.Due
		}
	}
	return
}

func sale(i int, at time.Time) entry.Entry {
	due := int64(100 + i%977)
	return entry.Entry{
		Kind: entry.KindSale, Key: fmt.Sprintf("R%06d", i), At: at, Local: at.Format(time.RFC3339),
		// A non-member sale, as a till writes it: no points, no balance moved.
		Sale: &entry.Sale{ReceiptID: fmt.Sprintf("R%06d", i), Due: due, Gross: due,
			Lines: []entry.SaleLine{{LineNo: 1, SKU: "SKU1", Qty: 1, UnitPrice: due, Gross: due, Net: due, Paid: due}}},
	}
}

func fill(t *testing.T, s *memstore.Store, till string, n int, at time.Time) (paid int64) {
	t.Helper()
	for i := 0; i < n; i++ {
		e, err := s.Append(till, sale(i, at))
		if err != nil {
			t.Fatal(err)
		}
		paid += e.Sale.Due
	}
	return paid
}

func newClient(t *testing.T, url string, out Outbox, in Inbox, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: url, Token: "tok", BatchMax: 100, BatchAge: time.Second, Poll: 20 * time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, RequestTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg, out, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestUploadsInBatchesAndMarksAcked(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	old := time.Now().Add(-time.Hour)
	paid := fill(t, st, "T1", 250, old) + fill(t, st, "T2", 30, old)
	c := newClient(t, srv.URL, st, nil, nil)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	requireSynced(t, hq, st, 280, paid, map[string]uint64{"T1": 250, "T2": 30})
	wantKeys := map[string]bool{"S1/T1/1-100": true, "S1/T1/101-200": true, "S1/T1/201-250": true, "S1/T2/1-30": true}
	if len(hq.keys) != 4 {
		t.Fatalf("uploads %v, want 4", hq.keys)
	}
	for _, k := range hq.keys {
		if !wantKeys[k] {
			t.Errorf("unexpected idempotency key %q", k)
		}
	}
	s := c.Status()
	if s.Backlog != 0 || s.Acked["T1"] != 250 || s.Uploaded != 280 || s.LastUpload.IsZero() || s.LastError != "" {
		t.Fatalf("status %+v", s)
	}
}

func TestSmallBatchWaitsForAge(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	fill(t, st, "T1", 5, now)
	c := newClient(t, srv.URL, st, nil, func(c *Config) { c.BatchAge = 10 * time.Second })
	c.now = func() time.Time { return now.Add(4 * time.Second) }
	wait, err := c.round(ctx10(t), false)
	if err != nil {
		t.Fatal(err)
	}
	if hq.requests != 0 || wait != 6*time.Second {
		t.Fatalf("young small batch: %d uploads, wait %v; want none and 6s", hq.requests, wait)
	}
	// A full batch goes at once whatever its age.
	fill(t, st, "T2", 100, now)
	if _, err := c.round(ctx10(t), false); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Acked("T2"); a != 100 || hq.requests != 1 {
		t.Fatalf("full batch: acked %d after %d uploads", a, hq.requests)
	}
	if a, _ := st.Acked("T1"); a != 0 {
		t.Fatalf("young batch sent: acked %d", a)
	}
	c.now = func() time.Time { return now.Add(10 * time.Second) }
	if _, err := c.round(ctx10(t), false); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Acked("T1"); a != 5 {
		t.Fatalf("aged batch: acked %d, want 5", a)
	}
}

func TestRewindsWhenHQIsBehind(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	paid := fill(t, st, "T1", 150, time.Now().Add(-time.Hour))
	// Our mark says 120, but HQ holds only 1..40 (restored from a backup).
	c := newClient(t, srv.URL, st, nil, nil)
	b, _ := st.Pending("T1", 0, 40)
	hq.acked["S1/T1"] = 40
	hq.entries["S1/T1"] = map[uint64]entry.Entry{}
	for _, e := range b {
		hq.entries["S1/T1"][e.Seq] = e
	}
	if err := st.Ack("T1", 120); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	requireSynced(t, hq, st, 150, paid, map[string]uint64{"T1": 150})
	if c.Status().Rewinds == 0 {
		t.Fatal("no rewind counted")
	}
}

func TestResumesWhenHQIsAhead(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			hq, srv := newFakeHQ(t)
			hq.strict = strict
			st := memstore.New("S1")
			paid := fill(t, st, "T1", 250, time.Now().Add(-time.Hour))
			// A first client got 1..100 to HQ and crashed before marking.
			hq.cutAfter = 1
			c1 := newClient(t, srv.URL, st, nil, func(c *Config) { c.BackoffMax = time.Hour; c.BackoffBase = time.Hour })
			if err := c1.SyncNow(ctx10(t)); err == nil {
				t.Fatal("cut connection not reported")
			}
			if a, _ := st.Acked("T1"); a != 0 {
				t.Fatalf("acked %d after a cut", a)
			}
			// The restarted client resends and is told HQ has them.
			c2 := newClient(t, srv.URL, st, nil, nil)
			if err := c2.SyncNow(ctx10(t)); err != nil {
				t.Fatal(err)
			}
			requireSynced(t, hq, st, 250, paid, map[string]uint64{"T1": 250})
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	fill(t, st, "T1", 10, now.Add(-time.Hour))
	c := newClient(t, srv.URL, st, nil, nil)
	c.now = func() time.Time { return now }
	hq.failNext, hq.failStatus, hq.retryAfter = 1, 503, "7"
	wait, err := c.round(ctx10(t), false)
	if err == nil || wait != 7*time.Second {
		t.Fatalf("503 Retry-After 7: wait %v err %v", wait, err)
	}
	// Nudged during the wait: nothing is sent.
	if w, _ := c.round(ctx10(t), false); w != 7*time.Second || hq.requests != 1 {
		t.Fatalf("round during Retry-After: wait %v, %d requests", w, hq.requests)
	}
	s := c.Status()
	if !s.NextAttempt.Equal(now.Add(7*time.Second)) || s.Failures != 1 || !strings.Contains(s.LastError, "503") {
		t.Fatalf("status %+v", s)
	}
	// An HTTP date on a 429.
	hq.failNext, hq.failStatus, hq.retryAfter = 1, 429, now.Add(90*time.Second).Format(http.TimeFormat)
	c.now = func() time.Time { return now.Add(8 * time.Second) }
	wait, err = c.round(ctx10(t), false)
	if err == nil || wait != 82*time.Second {
		t.Fatalf("429 Retry-After date: wait %v err %v", wait, err)
	}
	// A Retry-After beyond the cap is capped.
	hq.failNext, hq.failStatus, hq.retryAfter = 1, 503, "86400"
	if err := c.SyncNow(ctx10(t)); err == nil {
		t.Fatal("503 not reported")
	}
	if s := c.Status(); s.NextAttempt.Sub(now.Add(8*time.Second)) != 10*time.Minute {
		t.Fatalf("capped retry at %v", s.NextAttempt)
	}
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if s := c.Status(); s.Failures != 0 || !s.NextAttempt.IsZero() || s.Acked["T1"] != 10 {
		t.Fatalf("after recovery %+v", s)
	}
}

func TestFullJitterBounds(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	base, mx := 100*time.Millisecond, 3*time.Second
	want := []time.Duration{0, 100, 200, 400, 800, 1600, 3000, 3000}
	for n, w := range want {
		got := fullJitter(n, base, mx, top)
		if w == 0 && got != 0 || w != 0 && got != w*time.Millisecond-1 {
			t.Errorf("failure %d: ceiling wait %v, want just under %vms", n, got, int64(w))
		}
	}
	if got := fullJitter(3, base, mx, func(int64) int64 { return 0 }); got != 0 {
		t.Errorf("jitter floor %v", got)
	}
	for i := 0; i < 1000; i++ {
		if d := fullJitter(50, base, mx, defaultRand); d < 0 || d >= mx {
			t.Fatalf("wait %v outside [0,%v)", d, mx)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false}, {"12", 12 * time.Second, true}, {" 0 ", 0, true}, {"-3", 0, false}, {"soon", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0, true},
		{"99999999999", 24 * time.Hour, true},
	}
	for _, c := range cases {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %v %v, want %v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestBacksOffWhileHQDownThenCatchesUp(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	paid := fill(t, st, "T1", 300, time.Now().Add(-time.Hour))
	hq.failNext, hq.failStatus = 4, 502
	c := newClient(t, srv.URL, st, nil, nil)
	ctx, cancel := context.WithCancel(ctx10(t))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { a, _ := st.Acked("T1"); return a == 300 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	requireSynced(t, hq, st, 300, paid, nil)
	s := c.Status()
	if s.Running || s.Failures != 0 || !strings.Contains(s.LastError, "502") || s.LastSuccess.IsZero() {
		t.Fatalf("status %+v", s)
	}
}

func TestDeadLettersAreRecorded(t *testing.T) {
	hq, srv := newFakeHQ(t)
	hq.dead["T1/3"] = "unknown member"
	st := memstore.New("S1")
	fill(t, st, "T1", 5, time.Now().Add(-time.Hour))
	c := newClient(t, srv.URL, st, nil, nil)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	s := c.Status()
	if s.DeadLetterCount != 1 || len(s.DeadLetters) != 1 || s.DeadLetters[0].Seq != 3 || s.DeadLetters[0].Reason != "unknown member" {
		t.Fatalf("status dead letters %+v", s.DeadLetters)
	}
	if dl := st.DeadLetters(); len(dl) != 1 || dl[0].Seq != 3 {
		t.Fatalf("outbox dead letters %+v", dl)
	}
	if a, _ := st.Acked("T1"); a != 5 {
		t.Fatalf("a dead letter stalled the till at %d", a)
	}
}

func TestHalvesBatchWhenTooLarge(t *testing.T) {
	hq, srv := newFakeHQ(t)
	hq.maxEntries = 30
	st := memstore.New("S1")
	paid := fill(t, st, "T1", 200, time.Now().Add(-time.Hour))
	c := newClient(t, srv.URL, st, nil, nil)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	requireSynced(t, hq, st, 200, paid, nil)
}

func TestPullsChangesPageByPage(t *testing.T) {
	hq, srv := newFakeHQ(t)
	hq.changes = []wire.Changes{
		{Members: []wire.MemberState{{Member: entry.Member{ID: "M1", Tier: "silver"}, Points: 10}}, Programs: []wire.ProgramVersion{{Version: 2, Source: "version: 2\n"}}},
		{Members: []wire.MemberState{{Member: entry.Member{ID: "M2"}, Points: 5}}},
		{Members: []wire.MemberState{{Member: entry.Member{ID: "M1", Tier: "gold"}, Points: 30}}},
	}
	st := memstore.New("S1")
	c := newClient(t, srv.URL, st, st, nil)
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if m, _ := st.Member("M1"); m.Points != 30 || m.Member.Tier != "gold" || st.Members() != 2 {
		t.Fatalf("members after pull: %+v (%d)", m, st.Members())
	}
	if p := st.Programs(); len(p) != 1 || string(p[0]) != "version: 2\n" {
		t.Fatalf("programs %q", p)
	}
	if cur, _ := st.SyncCursor(); cur != "c3" {
		t.Fatalf("cursor %q", cur)
	}
	// A new client resumes from the stored cursor.
	hq.changes = append(hq.changes, wire.Changes{Members: []wire.MemberState{{Member: entry.Member{ID: "M3"}}}})
	c2 := newClient(t, srv.URL, st, st, nil)
	if err := c2.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if got := hq.changesFrom[len(hq.changesFrom)-1]; got != "c3" || st.Members() != 3 {
		t.Fatalf("resumed from %q with %d members", got, st.Members())
	}
	if s := c2.Status(); s.MembersApplied != 1 || s.LastPull.IsZero() {
		t.Fatalf("status %+v", s)
	}
	// A cursor HQ no longer knows starts a fresh snapshot.
	if err := st.SetSyncCursor("bogus"); err != nil {
		t.Fatal(err)
	}
	if err := c2.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if cur, _ := st.SyncCursor(); cur != "c4" {
		t.Fatalf("cursor after reset %q", cur)
	}
}

func TestRejectsBrokenOutbox(t *testing.T) {
	_, srv := newFakeHQ(t)
	st := memstore.New("S1")
	fill(t, st, "T1", 3, time.Now().Add(-time.Hour))
	c := newClient(t, srv.URL, gappy{st}, nil, nil)
	if err := c.SyncNow(ctx10(t)); err == nil || !strings.Contains(err.Error(), "not consecutive") {
		t.Fatalf("gappy outbox: %v", err)
	}
	c = newClient(t, srv.URL, st, nil, func(c *Config) { c.Store = "S2" })
	if err := c.SyncNow(ctx10(t)); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("foreign store: %v", err)
	}
	c = newClient(t, srv.URL, st, nil, func(c *Config) { c.Token = "wrong" })
	if err := c.SyncNow(ctx10(t)); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("bad token: %v", err)
	}
}

// gappy drops the second pending entry.
type gappy struct{ *memstore.Store }

func (g gappy) Pending(till string, after uint64, limit int) ([]entry.Entry, error) {
	es, err := g.Store.Pending(till, after, limit)
	if len(es) > 2 {
		es = append(es[:1], es[2:]...)
	}
	return es, err
}

func TestConfigErrors(t *testing.T) {
	st := memstore.New("S1")
	for _, c := range []Config{{}, {URL: "ftp://x", Token: "t"}, {URL: "http://x"}, {URL: "http://x", Token: "t", BatchMax: -1}} {
		if _, err := New(c, st, nil, nil); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := New(Config{URL: "http://x", Token: "t"}, nil, nil, nil); err == nil {
		t.Error("nil outbox accepted")
	}
	if _, err := LoadTLS("/nonexistent/ca.pem", "", ""); err == nil {
		t.Error("missing CA accepted")
	}
	if _, err := LoadTLS("", "cert.pem", ""); err == nil {
		t.Error("cert without key accepted")
	}
}

func TestRunStopsAndSyncNowWaits(t *testing.T) {
	hq, srv := newFakeHQ(t)
	st := memstore.New("S1")
	c := newClient(t, srv.URL, st, st, func(c *Config) { c.BatchAge = time.Hour })
	ctx, cancel := context.WithCancel(ctx10(t))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, func() bool { return c.Status().Running })
	if err := c.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}
	fill(t, st, "T1", 7, time.Now())
	c.Nudge()
	if err := c.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Acked("T1"); a != 7 {
		t.Fatalf("SyncNow left acked at %d", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := hq.total(); n != 7 {
		t.Fatalf("HQ %d", n)
	}
}

// requireSynced fails unless the fake HQ holds n entries paying paid in
// all, and each till of acked is acknowledged exactly that far.
func requireSynced(t *testing.T, hq *fakeHQ, st Outbox, n int, paid int64, acked map[string]uint64) {
	t.Helper()
	if gn, gp := hq.total(); gn != n || gp != paid {
		t.Fatalf("HQ holds %d entries paying %d, want %d paying %d", gn, gp, n, paid)
	}
	for till, want := range acked {
		if a, err := st.Acked(till); err != nil || a != want {
			t.Errorf("till %s acked %d (%v), want %d", till, a, err, want)
		}
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
