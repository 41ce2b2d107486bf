package hq_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// FuzzBatchUpload posts arbitrary bodies as a store's upload: HQ answers
// with an ack or a JSON error a store can act on, never a crash or a 500.
func FuzzBatchUpload(f *testing.F) {
	st, err := bolt.Open(filepath.Join(f.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{AdminToken: adminToken, ParseProgram: testParser})
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	if err != nil {
		f.Fatal(err)
	}
	till := &hqtest.Till{Store: "S1", Till: "T1"}
	valid, err := json.Marshal(batchOf(till.Enrol("M1", hqtest.T0)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add([]byte(`{"store":"S1","till":"T1","first":1,"last":1,"entries":[{}]}`), false)
	f.Add([]byte(`{"store":"S1","till":"T1","first":3,"last":2,"entries":[]}`), false)
	f.Add([]byte(`{"store":"S2","till":"T1","first":1,"last":1,"entries":[{"store":"S2","till":"T1","seq":1}]}`), false)
	f.Add([]byte("not json"), true)
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		req := httptest.NewRequest(http.MethodPost, wire.PathBatches, bytes.NewReader(body))
		if gzipped {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(body)
			w.Close()
			req = httptest.NewRequest(http.MethodPost, wire.PathBatches, &buf)
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var ack wire.Ack
			if err := json.Unmarshal(rec.Body.Bytes(), &ack); err != nil {
				t.Fatalf("200 without an ack: %q", rec.Body.String())
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			var e wire.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
				t.Fatalf("%d without a JSON error: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}

// FuzzEntryValues uploads entries with arbitrary amounts and points
// through HQ on the bbolt store: every batch is acked (each entry stored
// or dead-lettered), never refused for storage or failed, and the
// member's balances stay equal to the sum of the stored entries.
func FuzzEntryValues(f *testing.F) {
	fuzzEntryValues(f, func(f *testing.F) hq.Store {
		st, err := bolt.Open(filepath.Join(f.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		if err != nil {
			f.Fatal(err)
		}
		return st
	})
}

// FuzzEntryValuesPG is FuzzEntryValues on PostgreSQL (POSAGENT_TEST_PG),
// one schema for the whole run.
func FuzzEntryValuesPG(f *testing.F) {
	base := hqtest.PostgresURL(f)
	fuzzEntryValues(f, func(f *testing.F) hq.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		u, drop, err := pg.FreshSchema(ctx, base, "hqfuzz_")
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = drop() })
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4})
		if err != nil {
			f.Fatal(err)
		}
		return st
	})
}

// fuzzBalance is what the test knows a member holds: the exact sums of the
// entries HQ stored for it.
type fuzzBalance struct{ points, sv *big.Int }

func fuzzEntryValues(f *testing.F, open func(f *testing.F) hq.Store) {
	st := open(f)
	f.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{AdminToken: adminToken, ParseProgram: testParser})
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	if err != nil {
		f.Fatal(err)
	}
	post := func(b wire.Batch) (int, []byte) {
		body, _ := json.Marshal(b)
		req := httptest.NewRequest(http.MethodPost, wire.PathBatches, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	// HI and LO hold balances a few points of the largest entry away from
	// the int64 limits: 9,223 times the most points one entry may carry.
	bal := map[string]*fuzzBalance{}
	for i, m := range []string{"HI", "LO"} {
		sign := int64(1 - 2*i)
		pre := &hqtest.Till{Store: "S1", Till: "PRE" + m}
		es := []entry.Entry{pre.Enrol(m, hqtest.T0)}
		for k := 1; k <= 9223; k++ {
			es = append(es, pre.Points(m, hqtest.T0, sign*entry.MaxPoints, "correction"))
			if len(es) == 4000 || k == 9223 {
				if code, body := post(batchOf(es...)); code != http.StatusOK {
					f.Fatalf("preloading %s: %d %s", m, code, body)
				}
				es = es[:0]
			}
		}
		bal[m] = &fuzzBalance{big.NewInt(sign * 9223 * entry.MaxPoints), new(big.Int)}
	}

	f.Add(uint8(0), int64(100), int64(0), int64(0), int64(1000), uint8(0), "c1")
	f.Add(uint8(2), int64(entry.MaxPoints), int64(0), int64(0), int64(0), uint8(1), "c1")             // HI: one more does not fit
	f.Add(uint8(2), -entry.MaxPoints, int64(0), int64(0), int64(0), uint8(2), "")                     // LO likewise
	f.Add(uint8(2), int64(math.MaxInt64), int64(0), int64(0), int64(0), uint8(1), "c1")               // beyond an entry's bounds
	f.Add(uint8(6), int64(5), int64(math.MaxInt64), int64(0), int64(0), uint8(0), "c1")               // delta not the payload's
	f.Add(uint8(1), int64(entry.MaxAmount), int64(entry.MaxAmount), int64(0), int64(0), uint8(0), "") // largest top-up
	f.Add(uint8(0), int64(1), int64(0), int64(0), int64(-5), uint8(0), "c1")                          // negative due
	f.Add(uint8(4), int64(10), int64(10), int64(1), int64(math.MinInt64), uint8(2), "c1")
	f.Add(uint8(3), int64(math.MinInt64), int64(0), int64(0), int64(0), uint8(2), "c1")
	f.Add(uint8(0), int64(0), int64(0), int64(0), int64(0), uint8(0), "c\u202e1") // a cashier id HQ refuses
	f.Add(uint8(5), int64(0), int64(0), int64(0), int64(0), uint8(0), "c\x00")

	n := 0
	f.Fuzz(func(t *testing.T, kind uint8, a, b, c, d int64, target uint8, cashier string) {
		n++
		tl := &hqtest.Till{Store: "S1", Till: fmt.Sprintf("F%d", n), Cashier: cashier}
		member := [...]string{fmt.Sprintf("M%d", n), "HI", "LO"}[int(target)%3]
		var es []entry.Entry
		if bal[member] == nil {
			bal[member] = &fuzzBalance{new(big.Int), new(big.Int)}
			es = append(es, tl.Enrol(member, hqtest.T0))
		}
		var e entry.Entry
		switch kind % 7 {
		case 0:
			e = tl.Sale(member, hqtest.T0, d, a, b, c, "")
		case 1:
			e = tl.TopUp(member, hqtest.T0, a, b)
		case 2:
			e = tl.Points(member, hqtest.T0, a, "correction")
		case 3:
			e = tl.Points(member, hqtest.T0, a, "expiry")
			e.Kind, e.Points.Lot = entry.KindPointsExpired, "S1/T1/1"
		case 4:
			e = tl.Points(member, hqtest.T0, 0, "")
			e.Kind, e.Key, e.Points, e.PointsDelta, e.StoredValueDelta = entry.KindRefund, "RF-1", nil, d-c, b
			e.Refund = &entry.Refund{RefundID: "RF-1", SaleKey: "R-1", SaleEntry: "S1/T1/1", Amount: a, StoredValue: b, PointsReversed: c, PointsRestored: d,
				Lines: []entry.RefundLine{{LineNo: 1, Qty: 1, Amount: a, PointsReversed: c, PointsRestored: d}}}
		case 5:
			e = tl.Points(member, hqtest.T0, 0, "")
			e.Kind, e.Key, e.Points, e.PointsDelta, e.StoredValueDelta = entry.KindVoid, "R-1", nil, d-c, b
			e.Void = &entry.Void{SaleKey: "R-1", SaleEntry: "S1/T1/1", StoredValue: b, PointsReversed: c, PointsRestored: d}
		case 6:
			e = tl.Points(member, hqtest.T0, a, "correction")
			e.PointsDelta, e.StoredValueDelta = b, c
		}
		es = append(es, e, tl.Points(member, hqtest.T0, 1, "correction"))

		code, body := post(batchOf(es...))
		if cashier != "" && !entry.ValidID(cashier) {
			var werr wire.Error
			if code != http.StatusBadRequest || json.Unmarshal(body, &werr) != nil || werr.Field != "entries[0].cashier" {
				t.Fatalf("cashier %q: %d %s, want 400 naming entries[0].cashier", cashier, code, body)
			}
			return
		}
		var ack wire.Ack
		if code != http.StatusOK || json.Unmarshal(body, &ack) != nil {
			t.Fatalf("%d %s: every batch of valid ids is acked", code, body)
		}
		if ack.Acked != uint64(len(es)) {
			t.Fatalf("acked %d of %d", ack.Acked, len(es))
		}
		dead := map[uint64]string{}
		for _, dl := range ack.DeadLettered {
			dead[dl.Seq] = dl.Reason
		}
		want := bal[member]
		for i := range es {
			x := &es[i]
			reason, isDead := dead[x.Seq]
			verr := x.Validate()
			switch {
			case verr != nil && !isDead:
				t.Fatalf("entry %d stored though %v", x.Seq, verr)
			case verr == nil && isDead && !strings.Contains(reason, "beyond the balance range"):
				t.Fatalf("valid entry %d dead-lettered: %s", x.Seq, reason)
			case !isDead:
				want.points.Add(want.points, big.NewInt(x.PointsDelta))
				want.sv.Add(want.sv, big.NewInt(x.StoredValueDelta))
			}
		}
		m, err := st.Member(context.Background(), member)
		if err != nil {
			t.Fatal(err)
		}
		if big.NewInt(m.Points).Cmp(want.points) != 0 || big.NewInt(m.StoredValue).Cmp(want.sv) != 0 {
			t.Fatalf("member %s holds %d points, %d fen; its stored entries sum to %s, %s", member, m.Points, m.StoredValue, want.points, want.sv)
		}
	})
}
