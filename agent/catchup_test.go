package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/agent"
	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/client"
	"posagent/sync/faultproxy"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

const (
	cuAPIToken = "catchup-api-token-0123456789"
	cuAdmin    = "catchup-admin-token-0123456789"
	cuTokenKey = "00112233445566778899aabbccddeeff"
	// cuWait bounds every wait that is normally instant or a few seconds.
	cuWait = 45 * time.Second
	// cuPage is HQ's page cap: far fewer than the members that change while
	// the store is away, so the catch-up pull has to follow the cursor.
	cuPage = 7
)

// TestStoreOfflineForAWeekCatchesUp: a store (a real agent, bbolt ledger)
// loses its link to HQ for a simulated week and keeps selling; meanwhile a
// second store spends a shared member's points, HQ publishes a new program
// version and issues recall coupons. When the link is back the store uploads
// everything exactly once and takes HQ's balances, coupons and program.
func TestStoreOfflineForAWeekCatchesUp(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		runCatchUp(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		u := hqtest.PostgresURL(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Skipf("PostgreSQL HQ skipped: POSAGENT_TEST_PG=%q is not reachable: %v", u, err)
		}
		c.Close(ctx)
		su, drop, err := pg.FreshSchema(ctx, u, "catchup_")
		require.NoError(t, err)
		t.Cleanup(func() { _ = drop() })
		st, err := pg.Open(ctx, su, pg.Options{MaxConns: 8})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		runCatchUp(t, st)
	})
}

// catchupWeek is the simulated week: seven local days, the 15th to the 21st
// of the latest month whose 21st is over, so the 18th (member day) is in it
// and HQ's real clock (recall coupons) is after all of it.
func catchupWeek(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	m := l.Month()
	if l.Day() < 23 {
		m--
	}
	return time.Date(l.Year(), m, 15, 0, 0, 0, 0, loc)
}

func runCatchUp(t *testing.T, st hq.Store) {
	ctx := context.Background()
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	week := catchupWeek(time.Now(), loc)
	day := func(d, h, m int) time.Time {
		return week.AddDate(0, 0, d).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	const memberDay = 3 // the 18th
	v2From := week.AddDate(0, 0, 4)

	h := startCatchupHQ(t, st)
	tok1, err := h.srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store 1", "Asia/Shanghai")
	require.NoError(t, err)
	tok2, err := h.srv.IssueCredential(ctx, hq.RoleStore, "S2", "Store 2", "Asia/Shanghai")
	require.NoError(t, err)
	h.watch(tok1)
	proxy, err := faultproxy.New(strings.TrimPrefix(h.ts.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Close() })

	s1 := startTill(t, "S1", proxy.URL(), tok1)
	s2 := startTill(t, "S2", h.ts.URL, tok2)
	led1 := s1.a.Ledger()

	// ---- Before the week, online: members enrol at S1; M tops up and
	// becomes gold. Birthdays are half a year away from the week.
	const M = "M00"
	bday := fmt.Sprintf("%02d-01", (int(week.Month())+5)%12+1)
	members := []string{M}
	for i := 1; i <= 3*cuPage; i++ {
		members = append(members, fmt.Sprintf("M%02d", i))
	}
	for i, id := range members {
		_, err := led1.Enrol(ctx, ledger.EnrolRequest{Till: "T1", Key: "enrol-" + id, Cashier: "c1",
			Member: entry.Member{ID: id, Name: "会员" + id, Mobile: fmt.Sprintf("1380000%04d", i), Birthday: bday}, At: day(-3, 10, i)})
		require.NoError(t, err)
	}
	_, err = led1.TopUp(ctx, ledger.TopUpRequest{Till: "T1", TopUpID: "TU-1", MemberID: M, Cashier: "c1", Amount: 50000, At: day(-2, 11, 0)})
	require.NoError(t, err)
	pre := s1.sell(t, map[string]any{"receipt_id": "PRE-1", "member_id": M, "at": rfc(day(-2, 12, 0)),
		"lines": []map[string]any{{"sku": "TV", "qty": 1, "unit_price": 600000}}})
	require.Equal(t, "silver", pre.Sale.Tier)

	hqM := func() hq.Member {
		m, err := h.st.Member(ctx, M)
		require.NoError(t, err)
		return m
	}
	s1.syncUntil(t, "S1's enrolments and first sale reach HQ and come back confirmed", func() bool {
		v, err := led1.Member(M)
		m, err2 := h.st.Member(ctx, M)
		return err == nil && err2 == nil && s1.summary(t).Backlog == 0 && v.PointsPending == 0 && v.Points == m.Points && m.Points > 0
	})
	mv := s1.member(t, M)
	require.Equal(t, "gold", mv.Tier, "a 5,700-yuan sale upgrades to gold")
	require.Equal(t, hqM().StoredValue, mv.StoredValue)
	s2.syncUntil(t, "S2 pulls M from HQ", func() bool {
		v, err := s2.a.Ledger().Member(M)
		return err == nil && v.Points == hqM().Points
	})

	// ---- The link goes down. The sync client notices on its next exchange.
	proxy.Set(faultproxy.Refuse())
	proxy.CutAll()
	code, _ := s1.do(t, "POST", "/v1/sync/now", nil)
	require.Equal(t, http.StatusBadGateway, code, "sync now while HQ is unreachable")
	require.False(t, s1.summary(t).Online)

	// ---- Seven days of sales at S1. M buys twice a day, redeeming on some
	// days (within the offline cap); the other members and walk-ins buy in
	// parallel. Every commit must return while HQ is unreachable.
	rnd := rand.New(rand.NewPCG(7, 18))
	skus := []struct {
		sku   string
		price int64
	}{{"TEA", 990}, {"RICE", 2500}, {"OIL", 4800}, {"WINE", 12800}, {"COAT", 35000}}
	var mSales []entry.Entry
	redeemDays := map[int]bool{0: true, 2: true, memberDay: true, 5: true}
	weekSales := 0
	for d := range 7 {
		switch d {
		case 2:
			// Meanwhile at S2 (online): a new member enrols there, and M
			// spends points HQ holds.
			var en api.EnrolResponse
			s2.post(t, "/v1/members", map[string]any{"enrol_id": "E-N01", "id": "N01", "name": "李四", "mobile": "13900001234"}, &en)
			require.Equal(t, "N01", en.Member.Member.ID)
			e := s2.sell(t, map[string]any{"receipt_id": "S2-1", "member_id": M, "at": rfc(day(1, 15, 0)), "redeem_points": 3000,
				"lines": []map[string]any{{"sku": "BAG", "qty": 1, "unit_price": 20000}}})
			require.Equal(t, int64(3000), e.Sale.RedeemPoints)
			require.False(t, e.Sale.OfflineRedeem)
			s2.syncUntil(t, "S2's sale reaches HQ", func() bool { return s2.summary(t).Backlog == 0 })
		case 4:
			// HQ publishes program v2 from day 5 (the 19th): gold 15 % off.
			src := string(loyalty.DefaultProgramYAML())
			for old, repl := range map[string]string{
				"version: 1\n":                        "version: 2\n",
				"effective_from: 2000-01-01":          "effective_from: " + v2From.Format(time.DateOnly),
				"discount_bp: 1200             # 88折": "discount_bp: 1500             # 85折",
			} {
				require.Equal(t, 1, strings.Count(src, old), "default program no longer has %q", old)
				src = strings.Replace(src, old, repl, 1)
			}
			var pv wire.ProgramVersion
			h.admin(t, "POST", "/admin/programs", []byte(src), &pv)
			require.Equal(t, 2, pv.Version)
		}
		// M: a redemption sale (mornings) and an earning sale (afternoons).
		a := map[string]any{"receipt_id": fmt.Sprintf("M-%d-A", d), "member_id": M, "at": rfc(day(d, 10, 30)),
			"lines": []map[string]any{{"sku": "COAT", "qty": 1, "unit_price": 30000}}}
		if redeemDays[d] {
			a["redeem_points"] = 1000
		}
		mSales = append(mSales, s1.sell(t, a))
		if d == 0 {
			// Over the offline cap (5,000 a day with 1,000 redeemed already):
			// refused although the member has the points.
			require.GreaterOrEqual(t, s1.member(t, M).Points, int64(4100))
			code, body := s1.do(t, "POST", "/v1/sales", map[string]any{"receipt_id": "M-0-CAP", "member_id": M, "at": rfc(day(0, 11, 0)),
				"redeem_points": 4100, "lines": []map[string]any{{"sku": "WINE", "qty": 1, "unit_price": 10000}}})
			require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
			require.Contains(t, string(body), "offline")
		}
		b := map[string]any{"receipt_id": fmt.Sprintf("M-%d-B", d), "member_id": M, "at": rfc(day(d, 16, 0)),
			"lines": []map[string]any{{"sku": "SHIRT", "qty": 2, "unit_price": 10000}}}
		if d == 1 || d == 5 {
			b["stored_value"] = 5000
		}
		mSales = append(mSales, s1.sell(t, b))

		// Everyone else: 40 sales a day, a third of them walk-ins.
		var reqs []map[string]any
		for i := range 40 {
			q := map[string]any{"receipt_id": fmt.Sprintf("D%d-%02d", d, i), "at": rfc(day(d, 9+i/5, (i*7)%60)), "cashier": "c2"}
			if i%3 != 0 {
				q["member_id"] = members[1+(d*40+i)%(len(members)-1)]
			}
			var lines []map[string]any
			for range 1 + rnd.IntN(3) {
				s := skus[rnd.IntN(len(skus))]
				lines = append(lines, map[string]any{"sku": s.sku, "qty": 1 + rnd.IntN(3), "unit_price": s.price})
			}
			q["lines"] = lines
			reqs = append(reqs, q)
		}
		weekSales += len(reqs) + 2
		s1.sellAll(t, reqs, 3)

		if d == 6 {
			// A customer brings back one of two shirts bought on day 2.
			code, body := s1.do(t, "POST", "/v1/refunds", map[string]any{"refund_id": "RF-1", "receipt_id": "M-2-B",
				"lines": []map[string]any{{"line_no": 1, "qty": 1}}})
			require.Equal(t, http.StatusOK, code, string(body))
			// HQ issues a recall coupon to members without a recent sale.
			var rr hq.RecallResult
			h.admin(t, "POST", "/admin/coupons/recall", []byte(`{"campaign":"wk","threshold":10000,"value":2000,"dormant_days":1}`), &rr)
			require.Contains(t, rr.Members, M)
		}
	}
	require.GreaterOrEqual(t, weekSales, 280)
	require.Positive(t, proxy.Faults(), "the sync client kept trying and was refused")

	// The week's end at S1: everything is pending, the link still down.
	sum := s1.summary(t)
	require.False(t, sum.Online)
	require.Greater(t, sum.Backlog, weekSales)
	before, err := led1.Member(M)
	require.NoError(t, err)
	require.NotZero(t, before.PointsPending)
	for _, e := range mSales {
		require.Equal(t, 1, e.ProgramVersion, "S1 cannot know v2 while offline: %s", e.Key)
		if e.Sale.RedeemPoints > 0 {
			require.True(t, e.Sale.OfflineRedeem, "%s redeemed offline", e.Key)
		}
		local, err := time.Parse(time.RFC3339, e.Local)
		require.NoError(t, err)
		require.Equal(t, (e.Sale.EarnBase/100)*e.Sale.Multiplier, e.Sale.PointsEarned, e.Key)
		switch {
		case local.Day() == 18:
			require.Equal(t, int64(2), e.Sale.Multiplier, "member day doubles points: %s", e.Key)
			require.Contains(t, strings.Join(e.Sale.Reasons, "; "), "member day (day 18)")
		case !strings.Contains(strings.Join(e.Sale.Reasons, "; "), "off-season"):
			require.Equal(t, int64(1), e.Sale.Multiplier, "no multiplier on %s: %s", e.Local, e.Key)
		}
	}
	hqBefore := hqM()
	require.Equal(t, before.PointsConfirmed+(-3000+mustS2Earned(t, s2)), hqBefore.Points,
		"HQ holds S1's confirmed points less S2's spending")

	// ---- Link up. Sync now (the cashier's button; the client's own retry
	// may be in a long backoff after a week) until the backlog is gone and
	// HQ's state has come back.
	h.resetPages()
	upAt := time.Now()
	proxy.Set(faultproxy.Pass())
	s1.syncUntil(t, "S1 catches up", func() bool {
		v, err := led1.Member(M)
		return err == nil && s1.summary(t).Backlog == 0 && v.PointsPending == 0 && v.Points == hqM().Points && hasCoupon(v.Coupons, "recall-wk-"+M)
	})

	// ---- HQ holds every S1 entry exactly once, unchanged.
	local := ledgerEntries(t, led1)
	held := map[string]int{}
	var atHQ []entry.Entry
	for _, e := range h.export(t) {
		if e.Store != "S1" {
			continue
		}
		held[e.ID()]++
		require.Equal(t, 1, held[e.ID()], "entry %s exported twice", e.ID())
		want, ok := local[e.ID()]
		require.True(t, ok, "HQ holds %s which S1 never wrote", e.ID())
		require.JSONEq(t, mustJSON(t, want), mustJSON(t, e.Entry), "entry %s changed on the way", e.ID())
		atHQ = append(atHQ, e.Entry)
	}
	require.Len(t, atHQ, len(local), "HQ holds every S1 entry")
	ls, hs := sumEntries(maps2slice(local)), sumEntries(atHQ)
	require.Equal(t, ls, hs)
	require.Equal(t, weekSales+1, ls.kinds[entry.KindSale], "the pre-week sale and the week's; the one over the cap was refused")
	require.Equal(t, 1, hs.kinds[entry.KindRefund])
	var tot hq.Totals
	h.admin(t, "GET", "/admin/totals", nil, &tot)
	require.Equal(t, int64(len(local)), tot.Stores["S1"].Entries)
	require.Equal(t, ls.due, tot.Stores["S1"].SalesDue)
	require.Equal(t, ls.points, tot.Stores["S1"].Points)
	require.Equal(t, ls.storedValue, tot.Stores["S1"].StoredValue)
	require.Zero(t, tot.OpenDeadLetters)

	// ---- S1 shows HQ's balances: chain-wide, S2's spending included.
	after := hqM()
	require.NotEqual(t, before.Points, after.Points, "S2's spending makes HQ's number differ from S1's own view")
	require.Equal(t, before.Points-3000+mustS2Earned(t, s2), after.Points)
	mv = s1.member(t, M)
	require.Equal(t, after.Points, mv.Points)
	require.Equal(t, after.Points, mv.PointsConfirmed)
	require.Zero(t, mv.PointsPending)
	require.Equal(t, after.StoredValue, mv.StoredValue)
	require.Equal(t, int64(50000-10000), mv.StoredValue)
	require.False(t, after.Flagged)
	// Every member HQ holds reached S1 as HQ has it (the one enrolled at S2
	// too), across several change pages.
	n := 0
	now := time.Now()
	require.NoError(t, h.st.Members(ctx, func(m hq.Member) error {
		v, err := led1.Member(m.ID)
		if err != nil {
			return fmt.Errorf("member %s: %w", m.ID, err)
		}
		var want, got []string
		for _, c := range m.State().Coupons {
			if couponUsable(c, now) {
				want = append(want, c.ID)
			}
		}
		for _, c := range v.Coupons {
			got = append(got, c.ID)
		}
		if v.Points != m.Points || v.StoredValue != m.StoredValue || v.PointsPending != 0 || v.Member.Tier != m.Data.Tier ||
			!slices.Equal(sorted(want), sorted(got)) {
			return fmt.Errorf("member %s at S1: points %d (pending %d), stored value %d, tier %s, coupons %v; HQ: %d, %d, %s, %v",
				m.ID, v.Points, v.PointsPending, v.StoredValue, v.Member.Tier, got, m.Points, m.StoredValue, m.Data.Tier, want)
		}
		if m.ID != "N01" && !slices.Contains(got, "recall-wk-"+m.ID) {
			return fmt.Errorf("member %s at S1 lacks the recall coupon: %v", m.ID, got)
		}
		n++
		return nil
	}))
	require.Equal(t, len(members)+1, n)
	h.requirePaged(t, len(members))
	var n01 api.MemberSummary
	s1.post(t, "/v1/members/lookup", map[string]any{"mobile": "13900001234"}, &n01)
	require.Equal(t, "N01", n01.Member.ID, "a member enrolled at S2 is found at S1 by mobile")

	// ---- The recall coupon works at S1.
	var cp []string
	for _, c := range mv.Coupons {
		cp = append(cp, c.ID)
	}
	require.Contains(t, cp, "recall-wk-"+M)
	var q loyalty.Quote
	s1.post(t, "/v1/quote", map[string]any{"member_id": M, "coupon_id": "recall-wk-" + M,
		"lines": []map[string]any{{"sku": "COAT", "qty": 1, "unit_price": 20000}}}, &q)
	require.Equal(t, int64(2000), q.CouponValue)
	require.Equal(t, 2, q.ProgramVersion)

	// ---- Program v2 is in S1's ledger and prices sales from its start on;
	// a receipt from before it keeps v1.
	var v2 *loyalty.Program
	for _, p := range led1.Programs() {
		if p.Version == 2 {
			v2 = p
		}
	}
	require.NotNil(t, v2, "program v2 reached S1")
	require.True(t, v2.EffectiveFrom.Equal(v2From), "v2 effective %v, want %v", v2.EffectiveFrom, v2From)
	late := s1.sell(t, map[string]any{"receipt_id": "LATE-1", "member_id": M, "at": rfc(day(5, 11, 0)),
		"lines": []map[string]any{{"sku": "RICE", "qty": 4, "unit_price": 2500}}})
	require.Equal(t, 2, late.ProgramVersion)
	require.Equal(t, int64(1500), late.Sale.Discount, "gold 15 %% off 100 yuan under v2")
	old := s1.sell(t, map[string]any{"receipt_id": "LATE-2", "member_id": M, "at": rfc(day(2, 18, 0)),
		"lines": []map[string]any{{"sku": "RICE", "qty": 4, "unit_price": 2500}}})
	require.Equal(t, 1, old.ProgramVersion)
	require.Equal(t, int64(1200), old.Sale.Discount, "gold 12 %% off 100 yuan under v1")

	// ---- The sync status says all is well.
	var full struct {
		Summary api.SyncStatus
		Client  client.Status
	}
	s1.get(t, "/v1/sync/status", &full)
	require.True(t, full.Summary.Online)
	require.False(t, full.Client.LastSuccess.Before(upAt), "last success %v after the link came back at %v", full.Client.LastSuccess, upAt)
	require.Zero(t, full.Client.DeadLetterCount)
	require.Empty(t, full.Client.DeadLetters)

	// The ledger's own check replays the entries and HQ's states alike. It
	// runs on the closed file, as "posagent ledger verify" does: bbolt's
	// page check is only sound with no writer running.
	path := led1.Path()
	s1.stop(t)
	l, err := ledger.Open(path, ledger.Options{Store: "S1", Till: "T1"})
	require.NoError(t, err)
	defer l.Close()
	var vb bytes.Buffer
	ok, err := l.Verify(&vb)
	require.NoError(t, err)
	require.True(t, ok, vb.String())
}

// ---- HQ in-process, with a record of the change pages S1 pulled ----

type catchupHQ struct {
	srv *hq.Server
	st  hq.Store
	ts  *httptest.Server
	hc  *http.Client
	// adminTok is an admin with the pii right: the export is compared with
	// the till's entries byte for byte, personal data included.
	adminTok string

	mu     sync.Mutex
	watch1 string // S1's token: its change pages are recorded
	pages  []changesPage
}

type changesPage struct {
	cursor, next string
	more         bool
	members      int
}

func startCatchupHQ(t *testing.T, st hq.Store) *catchupHQ {
	h := &catchupHQ{st: st, hc: &http.Client{Timeout: cuWait}}
	h.srv = hq.NewServer(st, hq.Options{AdminToken: cuAdmin, MaxPage: cuPage, ParseProgram: func(src []byte) (hq.ProgramInfo, error) {
		p, err := loyalty.ParseProgram(src)
		if err != nil {
			return hq.ProgramInfo{}, err
		}
		return hq.ProgramInfo{Version: p.Version, EffectiveFrom: p.EffectiveFrom}, nil
	}})
	var err error
	h.adminTok, err = h.srv.IssueCredential(context.Background(), hq.RoleAdmin, "catchup", "", "", hq.RightPII)
	require.NoError(t, err)
	h.ts = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() { h.hc.CloseIdleConnections(); h.ts.Close() })
	return h
}

func (h *catchupHQ) watch(tok string) {
	h.mu.Lock()
	h.watch1 = tok
	h.mu.Unlock()
}

func (h *catchupHQ) resetPages() {
	h.mu.Lock()
	h.pages = nil
	h.mu.Unlock()
}

func (h *catchupHQ) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	watched := r.URL.Path == wire.PathChanges && h.watch1 != "" && r.Header.Get("Authorization") == "Bearer "+h.watch1
	h.mu.Unlock()
	if !watched {
		h.srv.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	var ch wire.Changes
	if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &ch) == nil {
		h.mu.Lock()
		h.pages = append(h.pages, changesPage{cursor: r.URL.Query().Get("cursor"), next: ch.Cursor, more: ch.More, members: len(ch.Members)})
		h.mu.Unlock()
	}
}

// requirePaged checks that S1's pulls since resetPages followed the cursor
// over more than one page and received at least n member states.
func (h *catchupHQ) requirePaged(t *testing.T, n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	got, followed := 0, 0
	for i, p := range h.pages {
		got += p.members
		require.LessOrEqual(t, p.members, cuPage)
		if p.more && i+1 < len(h.pages) && h.pages[i+1].cursor == p.next {
			followed++
		}
	}
	require.GreaterOrEqual(t, followed, n/cuPage-1, "pages %+v", h.pages)
	require.GreaterOrEqual(t, got, n)
}

func (h *catchupHQ) admin(t *testing.T, method, path string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+h.adminTok)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out))
	}
}

// export pages HQ's export API to the end.
func (h *catchupHQ) export(t *testing.T) []wire.ExportedEntry {
	t.Helper()
	var all []wire.ExportedEntry
	cursor := ""
	for range 100000 {
		var p wire.ExportPage
		h.admin(t, "GET", wire.PathExport+"?limit=100&cursor="+cursor, nil, &p)
		require.LessOrEqual(t, len(p.Entries), cuPage)
		all = append(all, p.Entries...)
		if !p.More {
			return all
		}
		require.NotEqual(t, cursor, p.Cursor, "export cursor did not move")
		cursor = p.Cursor
	}
	t.Fatal("export never ended")
	return nil
}

// ---- a till agent on loopback ----

type till struct {
	a    *agent.Agent
	base string
	hc   *http.Client
	stop func(t *testing.T) // stops the agent and waits for it; once
}

func startTill(t *testing.T, store, hqURL, hqToken string) *till {
	t.Helper()
	cfg := config.Default()
	cfg.Store, cfg.Till = store, "T1"
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.Token = cuAPIToken
	cfg.TokenKey = cuTokenKey
	// These tests are about other things; cashier accounts have their own.
	cfg.Cashiers.AllowPOSWithoutCashier = true
	cfg.HQ.URL, cfg.HQ.Token, cfg.HQ.BatchAge = hqURL, hqToken, 20*time.Millisecond
	// The simulated week ended up to six weeks ago: its receipts are
	// sent with their own times, so the till accepts backdating that far.
	cfg.Ledger.MaxBackdate = 60 * 24 * time.Hour
	a, err := agent.New(cfg, nil)
	require.NoError(t, err)
	ready := make(chan struct{})
	a.OnReady(func() { close(ready) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	hc := &http.Client{Timeout: cuWait}
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			hc.CloseIdleConnections()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent %s: Run: %v", store, err)
				}
			case <-time.After(cuWait):
				t.Errorf("agent %s did not stop in time", store)
			}
		})
	}
	t.Cleanup(func() { stop(t) })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent %s stopped at start: %v", store, err)
	case <-time.After(cuWait):
		t.Fatalf("agent %s not ready in time", store)
	}
	// The client timeout is what "the sale returns" means: generous, never
	// a latency target.
	return &till{a: a, base: "http://" + a.Addr(), hc: hc, stop: stop}
}

func (s *till) try(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cuAPIToken)
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (s *till) do(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	code, b, err := s.try(method, path, body)
	require.NoError(t, err, "%s %s did not return", method, path)
	return code, b
}

func (s *till) post(t *testing.T, path string, body, out any) {
	t.Helper()
	code, b := s.do(t, "POST", path, body)
	require.Equal(t, http.StatusOK, code, "POST %s: %s", path, b)
	require.NoError(t, json.Unmarshal(b, out))
}

func (s *till) get(t *testing.T, path string, out any) {
	t.Helper()
	code, b := s.do(t, "GET", path, nil)
	require.Equal(t, http.StatusOK, code, "GET %s: %s", path, b)
	require.NoError(t, json.Unmarshal(b, out))
}

func (s *till) sell(t *testing.T, req map[string]any) entry.Entry {
	t.Helper()
	var e entry.Entry
	s.post(t, "/v1/sales", req, &e)
	require.Equal(t, entry.KindSale, e.Kind)
	return e
}

// sellAll commits the sales with a few POS clients at once.
func (s *till) sellAll(t *testing.T, reqs []map[string]any, clients int) {
	t.Helper()
	work := make(chan map[string]any)
	errs := make(chan error, len(reqs))
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for q := range work {
				code, b, err := s.try("POST", "/v1/sales", q)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("status %d: %s", code, b)
				}
				if err != nil {
					errs <- fmt.Errorf("sale %v: %w", q["receipt_id"], err)
				}
			}
		})
	}
	for _, q := range reqs {
		work <- q
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func (s *till) summary(t *testing.T) api.SyncStatus {
	t.Helper()
	var full struct{ Summary api.SyncStatus }
	s.get(t, "/v1/sync/status", &full)
	return full.Summary
}

func (s *till) member(t *testing.T, id string) api.MemberSummary {
	t.Helper()
	var m api.MemberSummary
	s.get(t, "/v1/members/"+id, &m)
	return m
}

// syncUntil presses "sync now" until cond holds (a failed sync is retried:
// the first request after the link returns may meet a connection the proxy
// cut).
func (s *till) syncUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cuWait)
	for {
		code, body := s.do(t, "POST", "/v1/sync/now", nil)
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last sync now answered %d %s; status %+v", what, cuWait, code, body, s.summary(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustS2Earned is what S2's one sale earned M.
func mustS2Earned(t *testing.T, s2 *till) int64 {
	t.Helper()
	for _, e := range ledgerEntries(t, s2.a.Ledger()) {
		if e.Kind == entry.KindSale && e.Key == "S2-1" {
			return e.Sale.PointsEarned
		}
	}
	t.Fatal("S2's sale is not in its ledger")
	return 0
}

func ledgerEntries(t *testing.T, l *ledger.Ledger) map[string]entry.Entry {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, l.Export(&buf, nil))
	out := map[string]entry.Entry{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e entry.Entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		out[e.ID()] = e
	}
	require.NoError(t, sc.Err())
	return out
}

type entrySums struct {
	kinds                    map[entry.Kind]int
	due, points, storedValue int64
}

func sumEntries(es []entry.Entry) entrySums {
	s := entrySums{kinds: map[entry.Kind]int{}}
	for _, e := range es {
		s.kinds[e.Kind]++
		s.points += e.PointsDelta
		s.storedValue += e.StoredValueDelta
		if e.Sale != nil {
			s.due += e.Sale.Due
		}
	}
	return s
}

func maps2slice(m map[string]entry.Entry) []entry.Entry {
	out := make([]entry.Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	return out
}

func hasCoupon(cs []entry.MemberCoupon, id string) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}

// couponUsable is the till's rule: valid from ValidFrom, until ValidUntil.
func couponUsable(c entry.MemberCoupon, now time.Time) bool {
	if f, err := time.Parse(time.RFC3339, c.ValidFrom); err == nil && now.Before(f) {
		return false
	}
	u, err := time.Parse(time.RFC3339, c.ValidUntil)
	return err != nil || now.Before(u)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }
