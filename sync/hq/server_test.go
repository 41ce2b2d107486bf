package hq_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

const adminToken = "admin-secret"

type env struct {
	t     *testing.T
	srv   *hq.Server
	st    hq.Store
	url   string
	store map[string]string // store id → token
	hc    *http.Client      // nil: http.DefaultClient
}

func newEnv(t *testing.T, o hq.Options, wrap func(hq.Store) hq.Store) *env {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	var s hq.Store = st
	if wrap != nil {
		s = wrap(st)
	}
	o.AdminToken = adminToken
	if o.ParseProgram == nil {
		o.ParseProgram = testParser
	}
	srv := hq.NewServer(s, o)
	// Every request and answer of the tests is checked against openapi.yaml.
	ts := httptest.NewServer(contract(t).Handler(t, srv))
	t.Cleanup(ts.Close)
	e := &env{t: t, srv: srv, st: s, url: ts.URL, store: map[string]string{}}
	for _, id := range []string{"S1", "S2"} {
		tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, id, "Store "+id, "Asia/Shanghai")
		require.NoError(t, err)
		e.store[id] = tok
	}
	return e
}

// testParser reads "version: N" and "effective_from: RFC3339" lines.
func testParser(src []byte) (hq.ProgramInfo, error) {
	var p hq.ProgramInfo
	for _, l := range strings.Split(string(src), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch strings.TrimSpace(k) {
		case "version":
			fmt.Sscan(v, &p.Version)
		case "effective_from":
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
			if err != nil {
				return p, err
			}
			p.EffectiveFrom = t
		}
	}
	if p.Version == 0 {
		return p, errors.New("version: missing (line 1)")
	}
	return p, nil
}

func (e *env) do(method, path, token string, body []byte, hdr map[string]string) (int, []byte, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := http.DefaultClient
	if e.hc != nil {
		hc = e.hc
	}
	resp, err := hc.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, b, resp.Header
}

func gz(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	require.NoError(t, json.NewEncoder(w).Encode(v))
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func batchOf(es ...entry.Entry) wire.Batch {
	return wire.Batch{Store: es[0].Store, Till: es[0].Till, First: es[0].Seq, Last: es[len(es)-1].Seq, Entries: es}
}

func (e *env) upload(token string, b wire.Batch) (int, wire.Ack, wire.Error) {
	e.t.Helper()
	code, body, _ := e.do("POST", wire.PathBatches, token, gz(e.t, b), map[string]string{
		"Content-Encoding":        "gzip",
		wire.HeaderIdempotencyKey: fmt.Sprintf("%s/%s/%d-%d", b.Store, b.Till, b.First, b.Last),
	})
	var ack wire.Ack
	var werr wire.Error
	if code == http.StatusOK {
		require.NoError(e.t, json.Unmarshal(body, &ack))
	} else {
		require.NoError(e.t, json.Unmarshal(body, &werr), string(body))
	}
	return code, ack, werr
}

func TestAuth(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	b := batchOf(tl.Enrol("M1", hqtest.T0))

	code, _, werr := e.upload("", b)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, werr.Message, "Bearer")
	code, _, _ = e.upload("wrong", b)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = e.upload(adminToken, b)
	require.Equal(t, http.StatusForbidden, code, "an admin does not upload as a store")

	// A store writes only as itself.
	code, _, werr = e.upload(e.store["S2"], b)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, werr.Message, "only as itself")

	code, ack, _ := e.upload(e.store["S1"], b)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 1, ack.Acked)

	// Export and admin endpoints need the admin token.
	code, _, _ = e.do("GET", wire.PathExport, e.store["S1"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = e.do("GET", "/admin/deadletters", e.store["S1"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = e.do("GET", wire.PathExport, adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = e.do("GET", "/healthz", "", nil, nil)
	require.Equal(t, http.StatusOK, code)

	// An issued admin token works too; revoking it stops it.
	code, body, _ := e.do("POST", "/admin/stores", adminToken, []byte(`{"id":"ops","role":"admin"}`), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var issued map[string]string
	require.NoError(t, json.Unmarshal(body, &issued))
	require.True(t, strings.HasPrefix(issued["token"], "hqa_"))
	code, _, _ = e.do("GET", wire.PathExport, issued["token"], nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = e.do("DELETE", "/admin/stores/ops?role=admin", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = e.do("GET", wire.PathExport, issued["token"], nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	code, _, _ := e.upload(e.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0)))
	require.Equal(t, http.StatusOK, code)

	code, _, _ = e.do("DELETE", "/admin/stores/S1", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, _, werr := e.upload(e.store["S1"], batchOf(tl.Points("M1", hqtest.T0, 5, "correction")))
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, werr.Message, "revoked")
	code, _, _ = e.do("GET", wire.PathChanges, e.store["S1"], nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = e.do("DELETE", "/admin/stores/S9", adminToken, nil, nil)
	require.Equal(t, http.StatusNotFound, code)

	// The store list never shows token hashes.
	code, body, _ := e.do("GET", "/admin/stores", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	var cs []hq.Credential
	require.NoError(t, json.Unmarshal(body, &cs))
	require.Len(t, cs, 2)
	for _, c := range cs {
		require.Empty(t, c.TokenHash)
		require.Equal(t, c.ID == "S1", c.Revoked())
	}
}

func TestDuplicateAndGap(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tok := e.store["S1"]
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	b1 := batchOf(tl.Enrol("M1", hqtest.T0), tl.TopUp("M1", hqtest.T0, 5000, 0))
	code, ack, _ := e.upload(tok, b1)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, wire.Ack{Store: "S1", Till: "T1", Acked: 2, Expected: 3}, ack)

	code, dup, _ := e.upload(tok, b1)
	require.Equal(t, http.StatusOK, code)
	require.True(t, dup.Duplicate)
	dup.Duplicate = false
	require.Equal(t, ack, dup)

	// Without the key header the body decides, same answer.
	code, body, _ := e.do("POST", wire.PathBatches, tok, gz(t, b1), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(body, &dup))
	require.True(t, dup.Duplicate)

	tl.Seq = 5
	code, _, werr := e.upload(tok, batchOf(tl.Points("M1", hqtest.T0, 1, "correction")))
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "gap", werr.Code)
	require.EqualValues(t, 3, werr.Expected)

	m, err := e.st.Member(context.Background(), "M1")
	require.NoError(t, err)
	require.EqualValues(t, 5000, m.StoredValue, "the duplicate was not applied twice")

	// A malformed frame is refused whole.
	bad := batchOf(tl.Points("M1", hqtest.T0, 1, "correction"))
	bad.Last = 9
	code, _, werr = e.upload(tok, bad)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, werr.Message, "carries 1")
	code, body, _ = e.do("POST", wire.PathBatches, tok, []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, http.StatusBadRequest, code, string(body))
}

func TestDeadLettersOverHTTP(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tok := e.store["S1"]
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	good := tl.Enrol("M1", hqtest.T0)
	wrongStore := tl.Points("M1", hqtest.T0, 100, "correction")
	wrongStore.Store = "S2" // not this store's to write
	noPayload := tl.Points("M1", hqtest.T0, 7, "correction")
	noPayload.Points = nil
	last := tl.Points("M1", hqtest.T0, 3, "correction")
	code, ack, _ := e.upload(tok, batchOf(good, wrongStore, noPayload, last))
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 4, ack.Acked, "dead letters count as received")
	require.Len(t, ack.DeadLettered, 2)
	require.EqualValues(t, 2, ack.DeadLettered[0].Seq)
	require.Contains(t, ack.DeadLettered[0].Reason, `store "S2"`)
	require.EqualValues(t, 3, ack.DeadLettered[1].Seq)

	code, body, _ := e.do("GET", "/admin/deadletters", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	var ds []hq.DeadLetter
	require.NoError(t, json.Unmarshal(body, &ds))
	require.Len(t, ds, 2)

	code, body, _ = e.do("POST", "/admin/deadletters/retry", adminToken, []byte(`{}`), nil)
	require.Equal(t, http.StatusOK, code)
	var res hq.RetryResult
	require.NoError(t, json.Unmarshal(body, &res))
	require.Empty(t, res.Applied, "still malformed")
	require.Len(t, res.Failed, 2)

	m, err := e.st.Member(context.Background(), "M1")
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Points)
	code, body, _ = e.do("GET", "/admin/totals", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	var tot hq.Totals
	require.NoError(t, json.Unmarshal(body, &tot))
	require.EqualValues(t, 2, tot.Chain.Entries)
	require.Equal(t, 2, tot.OpenDeadLetters)
	require.EqualValues(t, 3, tot.MemberPoints)
}

func TestChangesAndExportPaging(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tok := e.store["S1"]
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	var es []entry.Entry
	for i := 0; i < 9; i++ {
		es = append(es, tl.Enrol(fmt.Sprintf("M%d", i), hqtest.T0))
	}
	code, _, _ := e.upload(tok, batchOf(es...))
	require.Equal(t, http.StatusOK, code)
	code, body, _ := e.do("POST", "/admin/programs", adminToken, []byte("version: 2\neffective_from: 2026-04-01T00:00:00+08:00\n"), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	code, body, _ = e.do("POST", "/admin/programs", adminToken, []byte("effective_from: 2026-04-01T00:00:00+08:00\n"), nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(body), "version")

	members := map[string]bool{}
	var progs []wire.ProgramVersion
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20)
		code, body, _ := e.do("GET", wire.PathChanges+"?limit=4&cursor="+cursor, tok, nil, nil)
		require.Equal(t, http.StatusOK, code, string(body))
		var ch wire.Changes
		require.NoError(t, json.Unmarshal(body, &ch))
		for _, m := range ch.Members {
			require.False(t, members[m.Member.ID])
			members[m.Member.ID] = true
		}
		progs = append(progs, ch.Programs...)
		cursor = ch.Cursor
		if !ch.More {
			break
		}
	}
	require.Len(t, members, 9)
	require.Len(t, progs, 1)
	require.Equal(t, 2, progs[0].Version)
	require.Equal(t, "2026-03-31T16:00:00Z", progs[0].EffectiveFrom)

	code, _, _ = e.do("GET", wire.PathChanges+"?cursor=@@", tok, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _, _ = e.do("GET", wire.PathChanges+"?limit=-1", tok, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)

	seen := map[string]int{}
	cursor = ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20)
		code, body, _ := e.do("GET", wire.PathExport+"?limit=2&cursor="+cursor, adminToken, nil, nil)
		require.Equal(t, http.StatusOK, code)
		var p wire.ExportPage
		require.NoError(t, json.Unmarshal(body, &p))
		require.LessOrEqual(t, len(p.Entries), 2)
		for _, x := range p.Entries {
			seen[x.ID()]++
			require.NotEmpty(t, x.Local)
		}
		cursor = p.Cursor
		if !p.More {
			break
		}
	}
	require.Len(t, seen, 9)
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
}

// blockingStore holds Ingest until released, to fill the in-flight slots.
type blockingStore struct {
	hq.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Ingest(ctx context.Context, x hq.Batch) (wire.Ack, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.Ingest(ctx, x)
}

func TestOverloadAnswers503WithRetryAfter(t *testing.T) {
	var bs *blockingStore
	e := newEnv(t, hq.Options{MaxInFlight: 1, QueueWait: time.Millisecond, RetryAfter: 3 * time.Second}, func(s hq.Store) hq.Store {
		bs = &blockingStore{Store: s, entered: make(chan struct{}, 1), release: make(chan struct{})}
		return bs
	})
	t1 := &hqtest.Till{Store: "S1", Till: "T1"}
	t2 := &hqtest.Till{Store: "S1", Till: "T2"}
	done := make(chan int, 1)
	go func() {
		code, _, _ := e.upload(e.store["S1"], batchOf(t1.Enrol("M1", hqtest.T0)))
		done <- code
	}()
	select {
	case <-bs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first upload never reached the store")
	}
	code, body, hdr := e.do("POST", wire.PathBatches, e.store["S1"], gz(t, batchOf(t2.Enrol("M2", hqtest.T0))), map[string]string{"Content-Encoding": "gzip"})
	require.Equal(t, http.StatusServiceUnavailable, code, string(body))
	require.Equal(t, "3", hdr.Get("Retry-After"))
	close(bs.release)
	require.Equal(t, http.StatusOK, <-done)
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, hq.Options{MaxBodyBytes: 300, MaxInflatedBytes: 100000}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	var es []entry.Entry
	for i := 0; i < 50; i++ {
		es = append(es, tl.Sale(fmt.Sprintf("M%d", i), hqtest.T0, 100, 1, 0, 0, ""))
	}
	// Uncompressed, so the sent size is over the limit.
	raw, err := json.Marshal(batchOf(es...))
	require.NoError(t, err)
	code, body, _ := e.do("POST", wire.PathBatches, e.store["S1"], raw, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, code, string(body))
}

func TestRecallCoupons(t *testing.T) {
	now := time.Date(2026, 9, 30, 12, 0, 0, 0, hqtest.Shanghai)
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	old := time.Date(2026, 3, 1, 10, 0, 0, 0, hqtest.Shanghai) // 213 days before
	code, _, _ := e.upload(e.store["S1"], batchOf(
		tl.Enrol("MD", old), tl.Sale("MD", old, 1000, 10, 0, 0, ""), // dormant
		tl.Enrol("MA", old), tl.Sale("MA", now.AddDate(0, 0, -10), 1000, 10, 0, 0, ""), // active
		tl.Enrol("MN", old), // never bought, enrolled long ago: dormant
	))
	require.Equal(t, http.StatusOK, code)
	req := []byte(`{"campaign":"2026Q3","threshold":10000,"value":2000}`)
	code, body, _ := e.do("POST", "/admin/coupons/recall", adminToken, req, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var res hq.RecallResult
	require.NoError(t, json.Unmarshal(body, &res))
	require.Equal(t, hq.RecallResult{Issued: 2, Members: []string{"MD", "MN"}}, res)
	code, body, _ = e.do("POST", "/admin/coupons/recall", adminToken, req, nil)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(body, &res))
	require.Zero(t, res.Issued, "the same campaign twice issues nothing new")

	// The coupon reaches the store with the next changes pull.
	code, body, _ = e.do("GET", wire.PathChanges, e.store["S1"], nil, nil)
	require.Equal(t, http.StatusOK, code)
	var ch wire.Changes
	require.NoError(t, json.Unmarshal(body, &ch))
	var got []entry.MemberCoupon
	for _, m := range ch.Members {
		got = append(got, m.Coupons...)
	}
	require.Len(t, got, 2)
	require.Equal(t, "recall-2026Q3-MD", got[0].ID)
	require.EqualValues(t, 10000, got[0].Threshold)
	require.EqualValues(t, 2000, got[0].Value)
	require.Equal(t, "2026-09-30T00:00:00+08:00", got[0].ValidFrom)
	require.Equal(t, "2026-10-29T23:59:59+08:00", got[0].ValidUntil)
}

func TestReviewFlaggedMemberOverHTTP(t *testing.T) {
	now := time.Date(2026, 3, 12, 9, 30, 0, 0, hqtest.Shanghai)
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	ctx := context.Background()
	opsTok, err := e.srv.IssueCredential(ctx, hq.RoleAdmin, "ops", "", "")
	require.NoError(t, err)
	t1 := &hqtest.Till{Store: "S1", Till: "T1"}
	t2 := &hqtest.Till{Store: "S2", Till: "T1"}
	code, _, _ := e.upload(e.store["S1"], batchOf(t1.Enrol("M1", hqtest.T0), t1.TopUp("M1", hqtest.T0, 5000, 0), t1.Sale("M1", hqtest.T0.Add(time.Hour), 4000, 40, 0, 4000, "")))
	require.Equal(t, http.StatusOK, code)
	code, _, _ = e.upload(e.store["S2"], batchOf(t2.Enrol("M2", hqtest.T0), t2.Sale("M1", hqtest.T0.Add(2*time.Hour), 3000, 30, 0, 3000, "")))
	require.Equal(t, http.StatusOK, code)

	// The list of members waiting for review.
	code, body, _ := e.do("GET", "/admin/members?flagged=true", opsTok, nil, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var flagged []hq.Member
	require.NoError(t, json.Unmarshal(body, &flagged))
	require.Len(t, flagged, 1)
	require.Equal(t, "M1", flagged[0].ID)
	require.EqualValues(t, -2000, flagged[0].StoredValue)
	code, _, _ = e.do("GET", "/admin/members", opsTok, nil, nil)
	require.Equal(t, http.StatusBadRequest, code, "only the flagged list is offered")

	// Admins only.
	code, _, _ = e.do("POST", "/admin/members/M1/review", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = e.do("POST", "/admin/members/M1/review", e.store["S1"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = e.do("POST", "/admin/members/M1/review", opsTok, []byte(`{"note":`), nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _, _ = e.do("POST", "/admin/members/M1/review", opsTok, []byte(`{"note":"`+strings.Repeat("x", hq.MaxReviewNote+1)+`"}`), nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _, _ = e.do("POST", "/admin/members/M9/review", opsTok, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, body, _ = e.do("POST", "/admin/members/M2/review", opsTok, nil, nil)
	require.Equal(t, http.StatusConflict, code, string(body))
	require.Contains(t, string(body), "not flagged")

	// The review names the admin credential and the time, and keeps the balances.
	code, body, _ = e.do("POST", "/admin/members/M1/review", opsTok, []byte(`{"note":"customer paid ¥20 in cash"}`), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var m hq.Member
	require.NoError(t, json.Unmarshal(body, &m))
	require.False(t, m.Flagged)
	require.EqualValues(t, -2000, m.StoredValue)
	require.Len(t, m.Reviews, 1)
	require.Equal(t, "ops", m.Reviews[0].By)
	require.True(t, now.Equal(m.Reviews[0].At))
	require.Equal(t, "customer paid ¥20 in cash", m.Reviews[0].Note)
	require.EqualValues(t, -2000, m.Reviews[0].StoredValue)
	code, _, _ = e.do("POST", "/admin/members/M1/review", opsTok, nil, nil)
	require.Equal(t, http.StatusConflict, code, "reviewed once, nothing is left to review")
	code, body, _ = e.do("GET", "/admin/members?flagged=true", opsTok, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `[]`, string(body))
	n := 0
	require.NoError(t, e.st.Scan(ctx, func(hq.Stored) error { n++; return nil }))
	require.Equal(t, 5, n, "the entries stay")

	// The stores hear the flag is clear.
	code, body, _ = e.do("GET", wire.PathChanges, e.store["S1"], nil, nil)
	require.Equal(t, http.StatusOK, code)
	var ch wire.Changes
	require.NoError(t, json.Unmarshal(body, &ch))
	seen := false
	for _, ms := range ch.Members {
		if ms.Member.ID == "M1" {
			seen = true
			require.False(t, ms.Flagged)
		}
	}
	require.True(t, seen, "M1 is in the changes feed")
}

// TestMemberLookupEndpoint: a store looks a member up with its own
// credential and gets its own tills' marks; others are refused plainly.
func TestMemberLookupEndpoint(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	code, _, _ := e.upload(e.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0), tl.Sale("M1", hqtest.T0.Add(time.Hour), 1000, 10, 0, 0, "")))
	require.Equal(t, http.StatusOK, code)

	code, body, _ := e.do("GET", wire.PathMembers+"M1", e.store["S1"], nil, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var l wire.MemberLookup
	require.NoError(t, json.Unmarshal(body, &l))
	require.Equal(t, "M1", l.Member.Member.ID)
	require.EqualValues(t, 10, l.Member.Points)
	require.Equal(t, map[string]uint64{"T1": 2}, l.Acked)

	code, body, _ = e.do("GET", wire.PathMembers+"M1", e.store["S2"], nil, nil)
	require.Equal(t, http.StatusOK, code, string(body))
	l = wire.MemberLookup{}
	require.NoError(t, json.Unmarshal(body, &l))
	require.Empty(t, l.Acked, "another store's marks are not S2's")

	for _, tc := range []struct {
		path, token string
		code        int
		werr        string
	}{
		{"M1", "", http.StatusUnauthorized, "unauthorized"},
		{"M1", adminToken, http.StatusForbidden, "forbidden"},
		{"M-none", e.store["S1"], http.StatusNotFound, "not_found"},
		{"%2Fbad%20id", e.store["S1"], http.StatusBadRequest, "bad_request"},
	} {
		code, body, _ := e.do("GET", wire.PathMembers+tc.path, tc.token, nil, nil)
		require.Equal(t, tc.code, code, "%s: %s", tc.path, body)
		var werr wire.Error
		require.NoError(t, json.Unmarshal(body, &werr))
		require.Equal(t, tc.werr, werr.Code, string(body))
	}
}
