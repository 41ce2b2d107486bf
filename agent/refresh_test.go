//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices/token"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

// lookupHQ is a real HQ on loopback (uploads, pulls) that answers member
// look-ups by the wire contract (wire.PathMembers → wire.MemberLookup) from
// states the test sets, with HQ's real acked marks of the store's tills.
type lookupHQ struct {
	st  *bolt.Store
	url string
	tok string

	mu      sync.Mutex
	members map[string]wire.MemberState
	slow    map[string]time.Duration // member → delay before answering
	ahead   uint64                   // added to T1's acked mark in answers

	hang    atomic.Bool  // every request waits until the client gives up
	down    atomic.Bool  // every connection is cut at once
	lookups atomic.Int64 // look-ups that reached HQ, answered or not
	asked   chan string
}

func startLookupHQ(t *testing.T) *lookupHQ {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	h := &lookupHQ{st: st, members: map[string]wire.MemberState{}, slow: map[string]time.Duration{}, asked: make(chan string, 64)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, isLookup := strings.CutPrefix(r.URL.Path, wire.PathMembers)
		isLookup = isLookup && r.Method == http.MethodGet
		if isLookup {
			h.lookups.Add(1)
			select {
			case h.asked <- id:
			default:
			}
		}
		if h.down.Load() {
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		if h.hang.Load() {
			// Read the body first: only then does the server notice the
			// client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if !isLookup {
			srv.ServeHTTP(w, r)
			return
		}
		h.lookup(w, r, id)
	}))
	t.Cleanup(ts.Close)
	h.url = ts.URL
	h.tok, err = srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)
	return h
}

func (h *lookupHQ) lookup(w http.ResponseWriter, r *http.Request, id string) {
	if r.Header.Get("Authorization") != "Bearer "+h.tok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.mu.Lock()
	s, known := h.members[id]
	delay, ahead := h.slow[id], h.ahead
	h.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !known {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(wire.Error{Code: "not_found", Message: "no member " + id + " at HQ"})
		return
	}
	t1, err := h.st.TillAcked(r.Context(), "S1", "T1")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	// Other tills of the store (another checkout PC, HQ's web enrolments)
	// come with the answer too; the till compares only its own.
	_ = json.NewEncoder(w).Encode(wire.MemberLookup{Member: s, Acked: map[string]uint64{"T1": t1 + ahead, "T8": 41, hq.WebTill: 3}})
}

// set makes HQ hold the member of the till's with the tier gold, points
// and 2000 of stored value.
func (h *lookupHQ) set(t *testing.T, id string, points int64) {
	t.Helper()
	m := lookupMember(t, id)
	m.Tier = "gold"
	h.mu.Lock()
	defer h.mu.Unlock()
	h.members[id] = wire.MemberState{Member: m, Points: points, StoredValue: 2000}
}

// lookupMember is M1 (card pan, mobile 13800001111) or M2 (card pan2,
// mobile 13800002222), silver.
func lookupMember(t *testing.T, id string) entry.Member {
	t.Helper()
	key, err := config.Config{TokenKey: tokenKey}.TokenKeyBytes()
	require.NoError(t, err)
	switch id {
	case "M1":
		return entry.Member{ID: id, Name: "张三", Tier: "silver", Mobile: "13800001111", CardTokens: []string{token.Hash(key, pan)}}
	case "M2":
		return entry.Member{ID: id, Name: "李四", Tier: "silver", Mobile: "13800002222", CardTokens: []string{token.Hash(key, pan2)}}
	}
	t.Fatalf("no test member %s", id)
	return entry.Member{}
}

// startLookupTill runs a till of S1 synced to h, with an MSR on till T1 for
// each reader (msr1, msr2), and gives it the members M1 (card pan, mobile
// 13800001111) and M2 (card pan2) at 100 points each, as a pull would.
func startLookupTill(t *testing.T, h *lookupHQ, mod func(*config.Config), readers ...*reader) *running {
	t.Helper()
	rn := startWith(t, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token, c.HQ.BatchAge = h.url, h.tok, 10*time.Millisecond
		c.Devices = nil
		for i, r := range readers {
			c.Devices = append(c.Devices, config.Device{Name: "msr" + string(rune('1'+i)), Till: "T1",
				Transport: "serial", Path: r.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "msr"})
		}
		if mod != nil {
			mod(c)
		}
	})
	if len(readers) > 0 {
		rn.waitOnline(t)
	}
	// The first pull (HQ's snapshot) is in before the members are given.
	rn.syncUntil(t, "a pull from HQ", func() bool { return !rn.a.sync.Status().LastSuccess.IsZero() })
	require.NoError(t, rn.a.led.ApplyMemberStates([]ledger.MemberState{
		{Member: lookupMember(t, "M1"), Points: 100, StoredValue: 500},
		{Member: lookupMember(t, "M2"), Points: 100, StoredValue: 500},
	}))
	return rn
}

func memberEvent(t *testing.T, e events.Event) MemberEvent {
	t.Helper()
	require.Equal(t, events.TypeMember, e.Type, string(e.Data))
	var me MemberEvent
	require.NoError(t, json.Unmarshal(e.Data, &me))
	return me
}

// refreshes is how many refreshes the agent's metrics count with result.
func refreshes(t *testing.T, rn *running, result string) int {
	t.Helper()
	resp, err := http.Get(rn.base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`posagent_member_refresh_seconds_count\{result="` + result + `"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(string(m[1]))
	require.NoError(t, err)
	return n
}

var lookupTypes = []string{events.TypeMember, events.TypeCardUnknown, events.TypeReadError}

// TestSwipeRefreshesFromHQ: the till holds M1 at 100 points, HQ at 350. A
// swipe publishes the member with HQ's 350 (and HQ's tier and stored
// value), the POS's look-ups answer the same, and the ledger keeps it. A
// member HQ does not hold is answered from the till.
func TestSwipeRefreshesFromHQ(t *testing.T) {
	h := startLookupHQ(t)
	r := newReader(t)
	rn := startLookupTill(t, h, nil, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 350)

	r.write(t, swipe)
	me := memberEvent(t, s.next(t, lookupTypes...))
	require.Equal(t, "M1", me.Member.Member.ID)
	require.Equal(t, int64(350), me.Member.Points, "the swipe shows HQ's balance")
	require.Equal(t, int64(350), me.Member.PointsConfirmed)
	require.Equal(t, int64(2000), me.Member.StoredValue)
	require.Equal(t, "gold", me.Member.Tier)
	require.Equal(t, int64(1), h.lookups.Load())

	h.set(t, "M1", 420)
	var m api.MemberSummary
	rn.post(t, "/v1/members/lookup", map[string]string{"card": pan}, &m)
	require.Equal(t, int64(420), m.Points, "POST /v1/members/lookup")
	h.set(t, "M1", 430)
	rn.get(t, "/v1/members/M1", &m)
	require.Equal(t, int64(430), m.Points, "GET /v1/members/{id}")
	h.set(t, "M1", 440)
	rn.get(t, "/v1/members?mobile=13800001111", &m)
	require.Equal(t, int64(440), m.Points, "GET /v1/members?mobile=")
	require.Equal(t, int64(4), h.lookups.Load())
	v, err := rn.a.led.Member("M1")
	require.NoError(t, err)
	require.Equal(t, int64(440), v.Points, "the ledger keeps HQ's state")

	// A sale does not ask HQ: the POS identified the member first.
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R1", "member_id": "M1",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 10000}}}, nil)
	require.Equal(t, int64(4), h.lookups.Load())

	// HQ does not hold M2 (say, enrolled here and not uploaded yet).
	rn.get(t, "/v1/members/M2", &m)
	require.Equal(t, int64(100), m.Points)
	require.Equal(t, int64(5), h.lookups.Load())
	require.Equal(t, 4, refreshes(t, rn, "applied"))
	require.Equal(t, 1, refreshes(t, rn, "unknown"))
}

// TestSwipeWithHQDown: with HQ cut off, and the client knowing it, a swipe
// is answered at once from the till's state and HQ is not asked. With HQ
// taking connections and never answering, the first swipe waits the
// refresh timeout and the next one no longer does.
func TestSwipeWithHQDown(t *testing.T) {
	const timeout = time.Second
	h := startLookupHQ(t)
	r := newReader(t)
	rn := startLookupTill(t, h, func(c *config.Config) { c.HQ.MemberRefreshTimeout = new(timeout) }, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 350)

	h.down.Store(true)
	rn.syncUntil(t, "the till to see HQ down", func() bool { return rn.a.sync.Status().Failures > 0 })
	swiped := time.Now()
	r.write(t, swipe)
	me := memberEvent(t, s.next(t, lookupTypes...))
	took := time.Since(swiped)
	require.Equal(t, int64(100), me.Member.Points, "the till's own balance")
	require.Less(t, took, timeout/2, "the swipe waited for an HQ known down")
	require.Zero(t, h.lookups.Load(), "HQ was asked while known down")
	require.Equal(t, 1, refreshes(t, rn, "offline"))
	t.Logf("swipe with HQ down answered in %s", took)

	// HQ back: the till refreshes again once a round has worked.
	h.down.Store(false)
	rn.syncUntil(t, "the till to see HQ up", func() bool { return !rn.a.sync.Offline() })
	r.write(t, swipe)
	require.Equal(t, int64(350), memberEvent(t, s.next(t, lookupTypes...)).Member.Points)

	// HQ hangs: the round in progress does not know yet; the swipe gives
	// up after the timeout, and the next one does not wait again.
	h.hang.Store(true)
	h.set(t, "M1", 500)
	before := h.lookups.Load()
	swiped = time.Now()
	r.write(t, swipe)
	me = memberEvent(t, s.next(t, lookupTypes...))
	took = time.Since(swiped)
	require.Equal(t, int64(350), me.Member.Points, "the till's own balance")
	require.GreaterOrEqual(t, took, timeout)
	require.Less(t, took, timeout+timeout/2)
	swiped = time.Now()
	r.write(t, swipe)
	me = memberEvent(t, s.next(t, lookupTypes...))
	took = time.Since(swiped)
	require.Equal(t, int64(350), me.Member.Points)
	require.Less(t, took, timeout/2, "the second swipe waited for HQ again")
	require.Equal(t, before+1, h.lookups.Load(), "HQ was asked again once known unreachable")
	require.Equal(t, 1, refreshes(t, rn, "error"), "the look-up that timed out")
	require.Equal(t, 2, refreshes(t, rn, "offline"))
	t.Logf("second swipe with HQ hanging answered in %s", took)
}

// TestSlowRefreshHoldsOnlyItsReader: HQ takes longer than the refresh
// timeout over M1. M1's swipe is answered after about the timeout with the
// till's balance; M2 swiped meanwhile on the till's other reader is
// answered at once, with HQ's balance.
func TestSlowRefreshHoldsOnlyItsReader(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	h := startLookupHQ(t)
	r1, r2 := newReader(t), newReader(t)
	rn := startLookupTill(t, h, func(c *config.Config) { c.HQ.MemberRefreshTimeout = new(timeout) }, r1, r2)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 350)
	h.set(t, "M2", 360)
	h.mu.Lock()
	h.slow["M1"] = 4 * timeout
	h.mu.Unlock()

	swiped1 := time.Now()
	r1.write(t, swipe)
	select {
	case id := <-h.asked:
		require.Equal(t, "M1", id)
	case <-time.After(wait):
		t.Fatal("HQ was not asked for M1")
	}
	swiped2 := time.Now()
	r2.write(t, swipe2)
	me := memberEvent(t, s.next(t, lookupTypes...))
	took2 := time.Since(swiped2)
	require.Equal(t, "M2", me.Member.Member.ID, "the other reader's swipe is answered first")
	require.Equal(t, "msr2", me.Device)
	require.Equal(t, int64(360), me.Member.Points, "HQ's balance")
	require.Less(t, took2, timeout/2, "the other reader waited for M1's refresh")

	me = memberEvent(t, s.next(t, lookupTypes...))
	took1 := time.Since(swiped1)
	require.Equal(t, "M1", me.Member.Member.ID)
	require.Equal(t, int64(100), me.Member.Points, "the till's own balance")
	require.GreaterOrEqual(t, took1, timeout)
	require.Less(t, took1, 2*timeout, "M1's swipe waited past the refresh timeout")
	t.Logf("M2 answered in %s while M1's refresh was pending; M1 in %s", took2, took1)
}

// TestRefreshRefusedWhenMarksDiffer: HQ answers with T1's acked mark ahead
// of the till's (an upload in flight): the state is not applied and the
// swipe shows the till's balance; with the marks equal again it is.
func TestRefreshRefusedWhenMarksDiffer(t *testing.T) {
	h := startLookupHQ(t)
	r := newReader(t)
	rn := startLookupTill(t, h, nil, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 350)
	h.mu.Lock()
	h.ahead = 1
	h.mu.Unlock()

	r.write(t, swipe)
	me := memberEvent(t, s.next(t, lookupTypes...))
	require.Equal(t, int64(100), me.Member.Points, "a state with other marks was applied")
	require.Equal(t, int64(1), h.lookups.Load())
	var m api.MemberSummary
	rn.post(t, "/v1/members/lookup", map[string]string{"mobile": "13800001111"}, &m)
	require.Equal(t, int64(100), m.Points)
	v, err := rn.a.led.Member("M1")
	require.NoError(t, err)
	require.Equal(t, int64(500), v.StoredValue, "the ledger was changed")

	require.Equal(t, 2, refreshes(t, rn, "marks"))
	require.Zero(t, refreshes(t, rn, "applied"))

	h.mu.Lock()
	h.ahead = 0
	h.mu.Unlock()
	r.write(t, swipe)
	require.Equal(t, int64(350), memberEvent(t, s.next(t, lookupTypes...)).Member.Points)
	require.Equal(t, 1, refreshes(t, rn, "applied"))
}

// TestRefreshOff: hq.member_refresh_timeout 0 sends nothing to HQ's
// look-up; swipes and look-ups answer from the till.
func TestRefreshOff(t *testing.T) {
	h := startLookupHQ(t)
	r := newReader(t)
	rn := startLookupTill(t, h, func(c *config.Config) { c.HQ.MemberRefreshTimeout = new(time.Duration(0)) }, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 350)

	r.write(t, swipe)
	require.Equal(t, int64(100), memberEvent(t, s.next(t, lookupTypes...)).Member.Points)
	var m api.MemberSummary
	rn.get(t, "/v1/members/M1", &m)
	require.Equal(t, int64(100), m.Points)
	rn.post(t, "/v1/members/lookup", map[string]string{"card": pan}, &m)
	require.Equal(t, int64(100), m.Points)
	require.Zero(t, h.lookups.Load(), "HQ was asked with the refresh off")
}

// TestRefreshFromRealHQ: a till of S1 against a real HQ serving the
// identity feed. M7, enrolled at another checkout PC of the store (T9),
// reaches the till by the feed; points earned at another store (S2) do not,
// however often the till pulls. A sale at the till is uploaded; then a swipe
// shows HQ's balance of now (the other store's points and the till's own
// sale), and so does the POS's look-up, though HQ's answer names the
// store's other till too.
func TestRefreshFromRealHQ(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true, IdentityFeed: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)
	ctx := context.Background()
	key, err := config.Config{TokenKey: tokenKey}.TokenKeyBytes()
	require.NoError(t, err)
	t9 := &hqtest.Till{Store: "S1", Till: "T9"}
	en := t9.Enrol("M7", time.Now().Add(-time.Hour))
	en.Enrol.Member.CardTokens = []string{token.Hash(key, pan)}
	en.Enrol.Member.Mobile = "13800007777"
	_, err = st.Ingest(ctx, hqtest.Batch(en, t9.Points("M7", time.Now().Add(-time.Hour), 100, "welcome")))
	require.NoError(t, err)

	r := newReader(t)
	rn := startWith(t, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token, c.HQ.BatchAge = ts.URL, tok, 10*time.Millisecond
		c.Devices = []config.Device{{Name: "msr", Till: "T1", Transport: "serial", Path: r.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "msr"}}
		c.HQ.MemberRefreshTimeout = new(5 * time.Second) // a slow test machine must not fall back to the till's view
	})
	rn.waitOnline(t)
	rn.syncUntil(t, "M7 at the till", func() bool { _, err := rn.a.led.Member("M7"); return err == nil })
	v, err := rn.a.led.Member("M7")
	require.NoError(t, err)
	require.Equal(t, int64(100), v.Points)

	// 250 points at another store: HQ holds 350, the feed says nothing.
	t5 := &hqtest.Till{Store: "S2", Till: "T5"}
	_, err = st.Ingest(ctx, hqtest.Batch(t5.Sale("M7", time.Now(), 25000, 250, 0, 0, "")))
	require.NoError(t, err)
	l, err := st.MemberLookup(ctx, "S1", "M7")
	require.NoError(t, err)
	require.Equal(t, int64(350), l.Member.Points)
	since := time.Now()
	rn.syncUntil(t, "a pull after the sale at S2", func() bool { return rn.a.sync.Status().LastPull.After(since) })
	v, err = rn.a.led.Member("M7")
	require.NoError(t, err)
	require.Equal(t, int64(100), v.Points, "the identity feed brought a balance change")

	// A sale here, uploaded and acknowledged.
	var sale entry.Entry
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R1", "member_id": "M7",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 10000}}}, &sale)
	require.Positive(t, sale.PointsDelta)
	rn.syncUntil(t, "the sale at HQ", func() bool { n, _, err := rn.a.led.Backlog(); return err == nil && n == 0 })
	l, err = st.MemberLookup(ctx, "S1", "M7")
	require.NoError(t, err)
	require.Equal(t, 350+sale.PointsDelta, l.Member.Points)
	require.Contains(t, l.Acked, "T9", "HQ names the store's other till")

	s := rn.stream(t, "T1")
	r.write(t, swipe)
	me := memberEvent(t, s.next(t, lookupTypes...))
	require.Equal(t, "M7", me.Member.Member.ID)
	require.Equal(t, 350+sale.PointsDelta, me.Member.Points, "the swipe shows HQ's balance of now")
	require.Equal(t, 350+sale.PointsDelta, me.Member.PointsConfirmed)
	require.Zero(t, me.Member.PointsPending)
	var m api.MemberSummary
	rn.post(t, "/v1/members/lookup", map[string]string{"mobile": "13800007777"}, &m)
	require.Equal(t, 350+sale.PointsDelta, m.Points)
	var out bytes.Buffer
	ok, err := rn.a.led.Verify(&out)
	require.NoError(t, err)
	require.True(t, ok, out.String())
}
