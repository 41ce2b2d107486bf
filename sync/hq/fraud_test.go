package hq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

func TestNoPurchase(t *testing.T) {
	at := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name           string
		f              hq.EnrolFact
		asOf           time.Time
		fired, pending bool
	}{
		{"bought in time", hq.EnrolFact{At: at, FirstSale: at.AddDate(0, 0, 3), Sales: 1}, at.AddDate(0, 2, 0), false, false},
		{"bought on the last day", hq.EnrolFact{At: at, FirstSale: at.AddDate(0, 0, 30), Sales: 1}, at.AddDate(0, 2, 0), false, false},
		{"bought too late", hq.EnrolFact{At: at, FirstSale: at.AddDate(0, 0, 31), Sales: 1}, at.AddDate(0, 2, 0), true, false},
		{"never bought", hq.EnrolFact{At: at}, at.AddDate(0, 2, 0), true, false},
		{"too young to tell", hq.EnrolFact{At: at}, at.AddDate(0, 0, 10), false, true},
		{"every sale voided", hq.EnrolFact{At: at, FirstSale: at.Add(time.Hour), Sales: 1, FirstVoid: at.Add(2 * time.Hour), Voids: 1}, at.AddDate(0, 0, 1), true, false},
		{"one of two voided", hq.EnrolFact{At: at, FirstSale: at.Add(time.Hour), Sales: 2, Voids: 1}, at.AddDate(0, 2, 0), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fired, pending := hq.NoPurchase(c.f, 30, c.asOf)
			require.Equal(t, c.fired, fired)
			require.Equal(t, c.pending, pending)
		})
	}
}

func TestMobileRuns(t *testing.T) {
	cases := []struct {
		name    string
		mobiles []string
		want    []bool
	}{
		{"consecutive", []string{"13900000001", "13900000002", "13900000003"}, []bool{true, true, true}},
		{"near-consecutive, any order", []string{"13900000007", "13900000001", "13900000004"}, []bool{true, true, true}},
		{"a gap breaks the run", []string{"13900000001", "13900000002", "13900000006"}, []bool{false, false, false}},
		{"run of three among others", []string{"13812345678", "13900000010", "13900000011", "15011112222", "13900000013"}, []bool{false, true, true, false, true}},
		{"the same number twice is one", []string{"13900000001", "13900000001", "13900000002"}, []bool{false, false, false}},
		{"not numbers", []string{"abc", "", "139-0000-0001"}, []bool{false, false, false}},
		{"lengths differ", []string{"1390000001", "13900000002", "13900000003"}, []bool{false, false, false}},
		{"none", nil, []bool{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := hq.MobileRuns(c.mobiles, 3, 3)
			if len(c.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, c.want, got)
		})
	}
}

func TestMobilePrefixes(t *testing.T) {
	cases := []struct {
		name    string
		mobiles []string
		want    []bool
	}{
		{"three share 8 digits", []string{"13755512012", "13755512345", "13755512876"}, []bool{true, true, true}},
		{"two only", []string{"13755512012", "13755512345", "13855512876"}, []bool{false, false, false}},
		{"a repeat is not another", []string{"13755512012", "13755512012", "13755512345"}, []bool{false, false, false}},
		{"others untouched", []string{"13755512012", "18611112222", "13755512345", "13755512999"}, []bool{true, false, true, true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, hq.MobilePrefixes(c.mobiles, 8, 3))
		})
	}
}

func TestBursts(t *testing.T) {
	t0 := time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)
	m := func(mins ...int) []time.Time {
		out := make([]time.Time, len(mins))
		for i, n := range mins {
			out[i] = t0.Add(time.Duration(n) * time.Minute)
		}
		return out
	}
	cases := []struct {
		name  string
		times []time.Time
		want  []bool
	}{
		{"five in ten minutes", m(0, 2, 4, 6, 10), []bool{true, true, true, true, true}},
		{"five in eleven minutes", m(0, 2, 4, 6, 11), []bool{false, false, false, false, false}},
		{"a burst among others, unsorted", m(300, 5, 1, 3, 2, 4, 100), []bool{false, true, true, true, true, true, false}},
		{"four only", m(0, 1, 2, 3), []bool{false, false, false, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, hq.Bursts(c.times, 5, 10*time.Minute))
		})
	}
}

func TestReenrolledAfterVoid(t *testing.T) {
	t0 := time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)
	f := hq.EnrolFact{Member: "new", Month: "2026-02", At: t0, Mobile: "13900000001", CardTokens: []string{"tokA"}}
	earlier := func(id, mobile, tok string, void time.Time) hq.EnrolFact {
		return hq.EnrolFact{Member: id, Month: "2026-01", At: t0.AddDate(0, -1, 0), Mobile: mobile, CardTokens: []string{tok}, FirstVoid: void, Voids: 1}
	}
	cases := []struct {
		name    string
		related []hq.EnrolFact
		want    []string
	}{
		{"same mobile, voided before", []hq.EnrolFact{earlier("old", "13900000001", "x", t0.Add(-time.Hour))}, []string{"old"}},
		{"same card, voided before", []hq.EnrolFact{earlier("old", "13800000000", "tokA", t0.Add(-time.Hour))}, []string{"old"}},
		{"voided after the new enrolment", []hq.EnrolFact{earlier("old", "13900000001", "x", t0.Add(time.Hour))}, nil},
		{"no void", []hq.EnrolFact{earlier("old", "13900000001", "x", time.Time{})}, nil},
		{"nothing shared", []hq.EnrolFact{earlier("old", "13800000000", "x", t0.Add(-time.Hour))}, nil},
		{"itself", []hq.EnrolFact{{Member: "new", Month: "2026-01", At: t0.Add(-time.Hour), Mobile: "13900000001", FirstVoid: t0.Add(-time.Minute)}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, hq.ReenrolledAfterVoid(f, c.related))
		})
	}
}

// TestFraudChangesOrder: the facts do not depend on how entries are split
// into batches or the order they arrive in.
func TestFraudChangesOrder(t *testing.T) {
	h := fraudHistory(7, true)
	var all []entry.Entry
	for _, es := range h.tills {
		all = append(all, es...)
	}
	fold := func(chunks [][]entry.Entry) *hq.FraudFacts {
		d := &hq.FraudFacts{Members: map[string]*hq.EnrolFact{}, Cashiers: map[[3]string]hq.CashierCount{}}
		for _, ch := range chunks {
			chs, cs := hq.FraudChanges(ch)
			for _, c := range chs {
				if d.Members[c.Member] == nil {
					d.Members[c.Member] = &hq.EnrolFact{}
				}
				d.Members[c.Member].Apply(c)
			}
			d.AddCounts(cs)
		}
		return d
	}
	want := fold([][]entry.Entry{all})
	r := rand.New(rand.NewPCG(1, 2))
	shuffled := append([]entry.Entry(nil), all...)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var chunks [][]entry.Entry
	for i := 0; i < len(shuffled); i += 37 {
		chunks = append(chunks, shuffled[i:min(i+37, len(shuffled))])
	}
	require.Equal(t, want, fold(chunks))
}

// history is a generated chain: entries per till in sequence order, and
// the planted fabricated enrolments with the signals each must raise.
type history struct {
	tills   map[string][]entry.Entry // store/till → entries
	planted map[string][]string      // member → signals
	mobiles map[string]string        // member → mobile
}

var fraudNow = time.Date(2026, 4, 20, 12, 0, 0, 0, time.UTC)

// fraudHistory makes three months (2026-01..03) of three stores with two
// tills and three cashiers each: members enrol at random times of the
// business day with random mobiles and buy within 20 days, some sales are
// voided (never a member's only one). With plant, cashier S2-c2 also
// fabricates, in February: a run of mobiles, mobiles sharing a prefix, a
// burst, members who never buy, and two re-enrolments (by mobile, by card)
// of January members whose sale was voided.
func fraudHistory(seed uint64, plant bool) *history {
	r := rand.New(rand.NewPCG(seed, 99))
	type event struct {
		at    time.Time
		store string
		till  string
		mk    func(t *hqtest.Till) entry.Entry
	}
	var evs []event
	h := &history{tills: map[string][]entry.Entry{}, planted: map[string][]string{}, mobiles: map[string]string{}}
	usedMobile := map[string]bool{}
	randMobile := func() string {
		for {
			m := fmt.Sprintf("1%d%09d", 3+r.IntN(7), r.IntN(1_000_000_000))
			if !usedMobile[m] {
				usedMobile[m] = true
				return m
			}
		}
	}
	n := 0
	enrol := func(store, till, cashier string, at time.Time, mobile, token string) string {
		n++
		id := fmt.Sprintf("M%05d", n)
		h.mobiles[id] = mobile
		evs = append(evs, event{at, store, till, func(t *hqtest.Till) entry.Entry {
			t.Cashier = cashier
			e := t.Enrol(id, at)
			e.Enrol.Member.Mobile = mobile
			if token != "" {
				e.Enrol.Member.CardTokens = []string{token}
			}
			return e
		}})
		return id
	}
	sale := func(store, till, cashier, member string, at time.Time, void *time.Time) {
		var s entry.Entry
		evs = append(evs, event{at, store, till, func(t *hqtest.Till) entry.Entry {
			t.Cashier = cashier
			s = t.Sale(member, at, 5000+int64(r.IntN(20000)), 50, 0, 0, "")
			return s
		}})
		if void != nil {
			evs = append(evs, event{*void, store, till, func(t *hqtest.Till) entry.Entry {
				t.Cashier = cashier
				return t.Void(s, *void)
			}})
		}
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, hqtest.Shanghai)
	randTime := func(days int) time.Time {
		return start.AddDate(0, 0, r.IntN(days)).Add(time.Duration(9*60+r.IntN(12*60)) * time.Minute).Add(time.Duration(r.IntN(60)) * time.Second)
	}
	for _, store := range []string{"S1", "S2", "S3"} {
		for ci := 1; ci <= 3; ci++ {
			cashier := fmt.Sprintf("%s-c%d", store, ci)
			till := fmt.Sprintf("T%d", 1+ci%2)
			for range 40 {
				at := randTime(90)
				id := enrol(store, till, cashier, at, randMobile(), fmt.Sprintf("tok-%d", n+1))
				first := at.Add(time.Duration(1+r.IntN(20*24)) * time.Hour)
				sale(store, till, cashier, id, first, nil)
				if r.IntN(4) == 0 { // a second sale, sometimes voided
					at2 := first.Add(time.Duration(1+r.IntN(72)) * time.Hour)
					var v *time.Time
					if r.IntN(2) == 0 {
						vt := at2.Add(10 * time.Minute)
						v = &vt
					}
					sale(store, till, cashier, id, at2, v)
				}
			}
			// walk-in sales without a member
			for range 20 {
				at := randTime(90)
				evs = append(evs, event{at, store, till, func(t *hqtest.Till) entry.Entry {
					t.Cashier = cashier
					return t.Sale("", at, 3000, 0, 0, 0, "")
				}})
			}
		}
	}
	if plant {
		const store, till, cashier = "S2", "T1", "S2-c2"
		feb := func(day, hour, minute int) time.Time {
			return time.Date(2026, 2, day, hour, minute, 0, 0, hqtest.Shanghai)
		}
		buys := func(id string, at time.Time) { sale(store, till, cashier, id, at.Add(48*time.Hour), nil) }
		mark := func(id string, sig ...string) { h.planted[id] = sig }
		for i, last := range []int{670, 671, 673, 675} { // a run (and so a shared prefix)
			at := feb(3+i*4, 11, 0)
			m := fmt.Sprintf("13912345%03d", last)
			usedMobile[m] = true
			id := enrol(store, till, cashier, at, m, "")
			buys(id, at)
			mark(id, hq.SignalMobileRun, hq.SignalPrefix)
		}
		for i, last := range []int{12, 345, 876} { // a shared prefix, no run
			at := feb(5+i*5, 15, 0)
			m := fmt.Sprintf("13755512%03d", last)
			usedMobile[m] = true
			id := enrol(store, till, cashier, at, m, "")
			buys(id, at)
			mark(id, hq.SignalPrefix)
		}
		for i := range 5 { // a burst
			at := feb(20, 18, 2*i)
			id := enrol(store, till, cashier, at, randMobile(), "")
			buys(id, at)
			mark(id, hq.SignalBurst)
		}
		for i := range 3 { // never buy
			id := enrol(store, till, cashier, feb(8+i*6, 12, 30), randMobile(), "")
			mark(id, hq.SignalNoPurchase)
		}
		// Re-enrolled after a void: January members with a voided sale;
		// their mobile, then their card, enrolled again in February.
		jan := time.Date(2026, 1, 20, 14, 0, 0, 0, hqtest.Shanghai)
		mob := randMobile()
		old1 := enrol(store, "T2", cashier, jan, mob, "")
		v1 := jan.Add(time.Hour + 5*time.Minute)
		sale(store, "T2", cashier, old1, jan.Add(time.Hour), &v1)
		id := enrol(store, till, cashier, feb(11, 10, 0), mob, "")
		buys(id, feb(11, 10, 0))
		mark(id, hq.SignalReenrol)
		old2 := enrol(store, "T2", cashier, jan.Add(24*time.Hour), randMobile(), "tok-planted")
		v2 := jan.Add(26 * time.Hour)
		sale(store, "T2", cashier, old2, jan.Add(25*time.Hour), &v2)
		id = enrol(store, till, cashier, feb(25, 16, 0), randMobile(), "tok-planted")
		buys(id, feb(25, 16, 0))
		mark(id, hq.SignalReenrol)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
	tills := map[string]*hqtest.Till{}
	for _, ev := range evs {
		k := ev.store + "/" + ev.till
		if tills[k] == nil {
			tills[k] = &hqtest.Till{Store: ev.store, Till: ev.till}
		}
		h.tills[k] = append(h.tills[k], ev.mk(tills[k]))
	}
	return h
}

type fraudStore interface {
	hq.Store
	hq.FraudStore
	RebuildFraudFacts(ctx context.Context) error
}

func fraudStores(t *testing.T) map[string]func(t *testing.T) fraudStore {
	out := map[string]func(t *testing.T) fraudStore{
		"bolt": func(t *testing.T) fraudStore {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	if url := os.Getenv("POSAGENT_TEST_PG"); url != "" {
		out["pg"] = func(t *testing.T) fraudStore {
			ctx := context.Background()
			u, drop, err := pg.FreshSchema(ctx, url, "hq_fraud_")
			require.NoError(t, err)
			t.Cleanup(func() { _ = drop() })
			st, err := pg.Open(ctx, u, pg.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	return out
}

// ingestHistory uploads every till's entries in batches of a few sizes.
func ingestHistory(t *testing.T, st hq.Store, h *history) {
	ctx := context.Background()
	keys := make([]string, 0, len(h.tills))
	for k := range h.tills {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		es := h.tills[k]
		size := []int{5, 40, 500}[i%3]
		for j := 0; j < len(es); j += size {
			_, err := st.Ingest(ctx, hqtest.Batch(es[j:min(j+size, len(es))]...))
			require.NoError(t, err)
		}
	}
}

// checkFraudFacts: what the store keeps equals a fold of every stored
// entry, also after it builds the facts afresh (the upgrade path).
func checkFraudFacts(t *testing.T, st fraudStore) {
	ctx := context.Background()
	norm := func(d *hq.FraudFacts) string {
		for _, f := range d.Members {
			f.At, f.FirstSale, f.FirstVoid = f.At.Truncate(time.Microsecond), f.FirstSale.Truncate(time.Microsecond), f.FirstVoid.Truncate(time.Microsecond)
		}
		b, err := json.Marshal(d.Members)
		require.NoError(t, err)
		cs := make([]hq.CashierCount, 0, len(d.Cashiers))
		for _, c := range d.Cashiers {
			cs = append(cs, c)
		}
		sort.Slice(cs, func(i, j int) bool { return fmt.Sprint(cs[i]) < fmt.Sprint(cs[j]) })
		c, err := json.Marshal(cs)
		require.NoError(t, err)
		return string(b) + "\n" + string(c)
	}
	want, err := hq.RecomputeFraudFacts(ctx, st.Scan)
	require.NoError(t, err)
	got, err := st.FraudDump(ctx)
	require.NoError(t, err)
	require.Equal(t, norm(want), norm(got), "facts kept at ingest")
	require.NoError(t, st.RebuildFraudFacts(ctx))
	got, err = st.FraudDump(ctx)
	require.NoError(t, err)
	require.Equal(t, norm(want), norm(got), "facts built from the entries")
}

func fraudReport(t *testing.T, e *env, token, query string) (int, hq.FraudReport, []byte) {
	code, body, _ := e.do("GET", "/kpi/fraud?"+query, token, nil, nil)
	var rep hq.FraudReport
	if code == http.StatusOK && !strings.Contains(query, "format=") {
		require.NoError(t, json.Unmarshal(body, &rep), string(body))
	}
	return code, rep, body
}

func fraudEnv(t *testing.T, st hq.Store) *env {
	return fraudEnvAt(t, st, func() time.Time { return fraudNow })
}

// fraudEnvAt is fraudEnv with HQ's clock.
func fraudEnvAt(t *testing.T, st hq.Store, now func() time.Time) *env {
	srv := hq.NewServer(st, hq.Options{AdminToken: adminToken, ParseProgram: testParser, TimeZone: "Asia/Shanghai", Now: now})
	ts := httptest.NewServer(contract(t).Handler(t, srv))
	t.Cleanup(ts.Close)
	return &env{t: t, srv: srv, st: st, url: ts.URL, store: map[string]string{}}
}

// TestFraudPlanted: in a generated history every planted fabricated
// enrolment is flagged with exactly the signals planted, and nothing else
// is; the clean history flags nothing in any month. Both stores.
func TestFraudPlanted(t *testing.T) {
	for name, open := range fraudStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			h := fraudHistory(42, true)
			ingestHistory(t, st, h)
			checkFraudFacts(t, st)
			e := fraudEnv(t, st)

			code, rep, body := fraudReport(t, e, adminToken, "month=2026-02")
			require.Equal(t, http.StatusOK, code, string(body))
			got := map[string][]string{}
			for _, f := range rep.FlaggedList {
				got[f.Member] = f.Signals
				require.Equal(t, "S2-c2", f.Cashier)
				require.Regexp(t, `^1[0-9]{2}\*{4}[0-9]{4}$`, f.Mobile, "masked")
				require.NotContains(t, string(body), h.mobiles[f.Member])
			}
			require.Equal(t, h.planted, got)
			require.True(t, rep.MaskedPII)
			require.Equal(t, len(h.planted), rep.Flagged)
			var c hq.FraudCashier
			for _, x := range rep.Cashiers {
				if x.Cashier == "S2-c2" {
					c = x
				} else {
					require.Zero(t, x.Flagged, x.Cashier)
				}
			}
			require.Equal(t, len(h.planted), c.Flagged)
			require.Equal(t, 4, c.Signals[hq.SignalMobileRun])
			require.Equal(t, 7, c.Signals[hq.SignalPrefix])
			require.Equal(t, 5, c.Signals[hq.SignalBurst])
			require.Equal(t, 3, c.Signals[hq.SignalNoPurchase])
			require.Equal(t, 2, c.Signals[hq.SignalReenrol])
			require.Equal(t, c.Enrolments-3, c.FirstPurchases)
			require.Positive(t, c.Sales)
			require.Positive(t, c.PointsIssued)

			// January: the re-enrolled members' voided sales leave them
			// with no purchase; March is clean.
			_, jan, _ := fraudReport(t, e, adminToken, "month=2026-01")
			require.Equal(t, 2, jan.Flagged)
			for _, f := range jan.FlaggedList {
				require.Equal(t, []string{hq.SignalNoPurchase}, f.Signals)
			}
			_, mar, _ := fraudReport(t, e, adminToken, "month=2026-03")
			require.Zero(t, mar.Flagged)

			// Thresholds: a tighter burst window misses the planted burst.
			_, tight, _ := fraudReport(t, e, adminToken, "month=2026-02&burst_minutes=5")
			require.Equal(t, 5, tight.Settings.BurstMinutes)
			for _, f := range tight.FlaggedList {
				require.NotContains(t, f.Signals, hq.SignalBurst)
			}
			code, _, _ = fraudReport(t, e, adminToken, "month=2026-02&run_min=x")
			require.Equal(t, http.StatusBadRequest, code)
			code, _, _ = fraudReport(t, e, adminToken, "month=2026-13")
			require.Equal(t, http.StatusBadRequest, code)

			// Personal data: pii=true needs the right.
			code, _, _ = fraudReport(t, e, adminToken, "month=2026-02&pii=true")
			require.Equal(t, http.StatusForbidden, code)
			crm, err := e.srv.IssueCredential(context.Background(), hq.RoleAdmin, "crm", "CRM", "", hq.RightPII)
			require.NoError(t, err)
			code, open, _ := fraudReport(t, e, crm, "month=2026-02&pii=true")
			require.Equal(t, http.StatusOK, code)
			require.False(t, open.MaskedPII)
			for _, f := range open.FlaggedList {
				require.Equal(t, h.mobiles[f.Member], f.Mobile)
			}

			for _, f := range []string{"text", "html"} {
				code, _, body := fraudReport(t, e, adminToken, "month=2026-02&format="+f)
				require.Equal(t, http.StatusOK, code)
				require.Contains(t, string(body), "S2-c2")
				require.Contains(t, string(body), hq.SignalReenrol)
				require.Contains(t, string(body), "****")
			}
		})
		t.Run(name+"/clean", func(t *testing.T) {
			t.Parallel()
			st := open(t)
			ingestHistory(t, st, fraudHistory(43, false))
			e := fraudEnv(t, st)
			for _, m := range []string{"2026-01", "2026-02", "2026-03"} {
				code, rep, body := fraudReport(t, e, adminToken, "month="+m)
				require.Equal(t, http.StatusOK, code, string(body))
				require.Positive(t, rep.Enrolments)
				require.Zero(t, rep.Flagged, "%s: %+v", m, rep.FlaggedList)
			}
		})
	}
}
