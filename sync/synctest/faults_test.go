package synctest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"posagent/sync/client"
	"posagent/sync/faultproxy"
	"posagent/sync/wire"
)

// setup starts HQ (a child process) and a proxy in front of it, and fills
// an in-process store outbox.
func setup(t *testing.T, store string, tills, n int) (*hqProc, *faultproxy.Proxy, *Outbox) {
	t.Helper()
	h := startHQ(t, map[string]string{store: "tok-" + store})
	px, err := faultproxy.New(h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	ob, err := OpenOutbox(t.TempDir()+"/outbox.db", store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	if err := fillOutbox(ob, tills, n); err != nil {
		t.Fatal(err)
	}
	return h, px, ob
}

func newStoreClient(t *testing.T, url, store string, ob *Outbox) *client.Client {
	t.Helper()
	cl, err := client.New(storeConfig(url, "tok-"+store), ob, ob, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestCutMidUpload(t *testing.T) {
	h, px, ob := setup(t, "S1", 2, 450)
	cl := newStoreClient(t, px.URL(), "S1", ob)
	// Headers are about 300 bytes: the cut falls inside the body.
	px.Set(faultproxy.CutUpload(700).Times(4))
	failures := syncUntilDone(t, cl)
	if px.Faults() != 4 || failures == 0 {
		t.Fatalf("faults %d, failed rounds %d; want 4 cuts seen by the client", px.Faults(), failures)
	}
	assertSame(t, h, storeEntries(t, ob))
}

func TestCutAfterHQCommitted(t *testing.T) {
	h, px, ob := setup(t, "S1", 2, 450)
	// Upload only, so every cut hits an upload (not a pull).
	cl, err := client.New(storeConfig(px.URL(), "tok-S1"), ob, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	px.Set(faultproxy.CutResponse().Times(3))
	syncUntilDone(t, cl)
	s := cl.Status()
	// A retry's own answer may be cut too, so one duplicate ack can repay
	// several lost answers.
	if px.Faults() != 3 || s.Duplicates < 1 || s.Duplicates > 3 {
		t.Fatalf("faults %d, duplicate acks %d; want 3 cuts repaid by 1 to 3 duplicate acks", px.Faults(), s.Duplicates)
	}
	assertSame(t, h, storeEntries(t, ob))
}

func TestSameBatchTwice(t *testing.T) {
	h, px, ob := setup(t, "S1", 1, 300)
	es, err := ob.Pending("T1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	b := wire.Batch{Store: "S1", Till: "T1", First: 1, Last: 100, Entries: es}
	code1, ack1, _ := postBatch(t, h.url(), "tok-S1", b, true)
	code2, ack2, _ := postBatch(t, h.url(), "tok-S1", b, true)
	// And once more without the idempotency key, so HQ has to read it.
	code3, ack3, _ := postBatch(t, h.url(), "tok-S1", b, false)
	if code1 != 200 || code2 != 200 || code3 != 200 || ack1.Duplicate || !ack2.Duplicate || !ack3.Duplicate {
		t.Fatalf("answers %d %+v / %d %+v / %d %+v", code1, ack1, code2, ack2, code3, ack3)
	}
	ack2.Duplicate, ack3.Duplicate = false, false
	if fmt.Sprint(ack1) != fmt.Sprint(ack2) || fmt.Sprint(ack1) != fmt.Sprint(ack3) || ack1.Acked != 100 {
		t.Fatalf("a duplicate got another answer: %+v vs %+v vs %+v", ack1, ack2, ack3)
	}
	// The store never heard of those acks: it sends 1..100 again itself.
	cl := newStoreClient(t, px.URL(), "S1", ob)
	syncUntilDone(t, cl)
	if cl.Status().Duplicates != 1 {
		t.Fatalf("client duplicate acks %d, want 1", cl.Status().Duplicates)
	}
	assertSame(t, h, storeEntries(t, ob))
}

func TestBatchesOutOfOrder(t *testing.T) {
	h, px, ob := setup(t, "S1", 1, 400)
	batch := func(first, last uint64) wire.Batch {
		es, err := ob.Pending("T1", first-1, int(last-first+1))
		if err != nil {
			t.Fatal(err)
		}
		return wire.Batch{Store: "S1", Till: "T1", First: first, Last: last, Entries: es}
	}
	if code, _, e := postBatch(t, h.url(), "tok-S1", batch(101, 200), true); code != 409 || e.Code != "gap" || e.Expected != 1 {
		t.Fatalf("batch 101-200 first: %d %+v; want 409 gap expecting 1", code, e)
	}
	if code, ack, _ := postBatch(t, h.url(), "tok-S1", batch(1, 100), true); code != 200 || ack.Acked != 100 {
		t.Fatalf("batch 1-100: %d %+v", code, ack)
	}
	if code, _, e := postBatch(t, h.url(), "tok-S1", batch(201, 300), true); code != 409 || e.Expected != 101 {
		t.Fatalf("batch 201-300 before 101-200: %d %+v", code, e)
	}
	// Overlapping the acknowledged part is fine: the new part is kept.
	if code, ack, _ := postBatch(t, h.url(), "tok-S1", batch(51, 150), true); code != 200 || ack.Acked != 150 || ack.Duplicate {
		t.Fatalf("batch 51-150: %d %+v", code, ack)
	}
	// The store's mark is still 0 and it has a stale idea: it is told.
	cl := newStoreClient(t, px.URL(), "S1", ob)
	syncUntilDone(t, cl)
	assertSame(t, h, storeEntries(t, ob))
}

func TestHQKilledAndRestartedMidBatch(t *testing.T) {
	h, px, ob := setup(t, "S1", 2, 1000)
	// Every chunk is held a little, so a request is in flight most of the
	// time and the kill lands inside one.
	px.Set(faultproxy.Delay(2 * time.Millisecond))
	cl := newStoreClient(t, px.URL(), "S1", ob)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for kill, at := range []int{300, 1000} {
		waitAcked(t, cl, at)
		h.restart()
		px.SetTarget(h.addr)
		b, _, _ := ob.Backlog()
		t.Logf("HQ killed #%d with %d entries pending", kill+1, b)
	}
	waitAcked(t, cl, 2000)
	if cl.Status().Failures == 0 && cl.Status().LastError == "" {
		t.Log("the kills fell between requests")
	}
	assertSame(t, h, storeEntries(t, ob))
}

func TestStoreKilledMidSync(t *testing.T) {
	h := startHQ(t, map[string]string{"S1": "tok-S1", "S2": "tok-S2"})
	px, err := faultproxy.New(h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	px.Set(faultproxy.Delay(2 * time.Millisecond))
	dir := t.TempDir()
	env := func(store string) []string {
		return []string{"POSAGENT_SYNCTEST_STORE=" + store, "POSAGENT_SYNCTEST_OUTBOX=" + dir + "/" + store + ".db",
			"POSAGENT_SYNCTEST_N=1200", "POSAGENT_SYNCTEST_TILLS=2", "POSAGENT_SYNCTEST_URL=" + px.URL(),
			"POSAGENT_SYNCTEST_TOKEN=tok-" + store}
	}
	// S2 syncs undisturbed beside S1, which is killed twice mid-sync.
	s2 := startProc(t, "store S2", "store", env("S2")...)
	s1 := startProc(t, "store S1", "store", env("S1")...)
	for _, at := range []int{200, 900} {
		s1.waitLine("PROGRESS ", func(n string) bool { v, _ := strconv.Atoi(n); return v >= at })
		s1.kill()
		s1 = startProc(t, "store S1", "store", env("S1")...)
	}
	s1.waitLine("DONE", nil)
	s1.exited()
	s2.waitLine("DONE", nil)
	s2.exited()

	obs := map[string]*Outbox{}
	for _, s := range []string{"S1", "S2"} {
		ob, err := OpenOutbox(dir+"/"+s+".db", s)
		if err != nil {
			t.Fatal(err)
		}
		defer ob.Close()
		obs[s] = ob
	}
	s1e, s2e := storeEntries(t, obs["S1"]), storeEntries(t, obs["S2"])
	if len(s1e) != 2400 || len(s2e) != 2400 {
		t.Fatalf("stores hold %d and %d entries, want 2400 each (a restart must not add any)", len(s1e), len(s2e))
	}
	assertSame(t, h, s1e, s2e)

	// HQ's member balances came back to the store: each member's points
	// and stored value are the sums of that member's entries.
	members, err := obs["S1"].Members()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int64{}
	for _, e := range s1e {
		if e.MemberID != "" {
			w := want[e.MemberID]
			want[e.MemberID] = [2]int64{w[0] + e.PointsDelta, w[1] + e.StoredValueDelta}
		}
	}
	for id, w := range want {
		m, ok := members[id]
		if !ok || m.Points != w[0] || m.StoredValue != w[1] {
			t.Fatalf("member %s at S1: %+v (known %v), want points %d stored value %d", id, m, ok, w[0], w[1])
		}
	}
}

func waitAcked(t *testing.T, cl *client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var acked int
		for _, a := range cl.Status().Acked {
			acked += int(a)
		}
		if acked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d entries acknowledged within 60s; last error: %s", acked, n, cl.Status().LastError)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// postBatch uploads b directly, as a client would, and returns the answer.
func postBatch(t *testing.T, base, token string, b wire.Batch, withKey bool) (int, wire.Ack, wire.Error) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		t.Fatal(err)
	}
	_ = zw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+wire.PathBatches, &buf)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	if withKey {
		req.Header.Set(wire.HeaderIdempotencyKey, fmt.Sprintf("%s/%s/%d-%d", b.Store, b.Till, b.First, b.Last))
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	var ack wire.Ack
	var e wire.Error
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw.Bytes(), &ack); err != nil {
			t.Fatalf("ack %q: %v", raw.String(), err)
		}
	} else if err := json.Unmarshal(raw.Bytes(), &e); err != nil && !strings.Contains(raw.String(), "{") {
		t.Fatalf("error body %q", raw.String())
	}
	return resp.StatusCode, ack, e
}
