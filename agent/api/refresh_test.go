package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
	"posagent/ledger/entry"
)

// Every look-up of a member (by card, card hash, mobile, id, and the GET
// forms) answers the view RefreshMember gives, with the request's context;
// enrolment, quotes and sales do not ask for one.
func TestLookupsAnswerTheRefreshedMember(t *testing.T) {
	var (
		mu    sync.Mutex
		asked []string
	)
	f := newFixture(t, func(o *Options) {
		o.RefreshMember = func(ctx context.Context, v ledger.MemberView) ledger.MemberView {
			require.NotNil(t, ctx.Done(), "the request's context")
			mu.Lock()
			asked = append(asked, v.Member.ID)
			mu.Unlock()
			v.Points += 1000
			v.PointsConfirmed += 1000
			return v
		}
	})
	took := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := len(asked)
		asked = nil
		return n
	}
	cardNo := luhnCard(t)
	var en EnrolResponse
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E1", "name": "李雷", "mobile": "13812341234", "card": cardNo, "cashier": "c1"}, &en)
	id := en.Member.Member.ID
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E2", "name": "韩梅梅", "cashier": "c1", "referrer_id": id}, nil)
	require.Zero(t, took(), "an enrolment (and its referrer) is not a look-up")
	v, err := f.l.Member(id)
	require.NoError(t, err)
	local := v.Points

	for _, q := range []struct{ method, path string }{
		{"POST", "/v1/members/lookup"}, {"GET", "/v1/members/" + id}, {"GET", "/v1/members?mobile=13812341234"},
		{"GET", "/v1/members?card=" + cardNo},
	} {
		var m MemberSummary
		if q.method == "POST" {
			f.ok(t, "POST", q.path, map[string]string{"card": cardNo}, &m)
		} else {
			f.ok(t, "GET", q.path, nil, &m)
		}
		require.Equal(t, id, m.Member.ID, q.path)
		require.Equal(t, local+1000, m.Points, "%s %s answers the refreshed view", q.method, q.path)
		require.Equal(t, 1, took(), q.path)
	}
	for _, body := range []map[string]string{{"mobile": "13812341234"}, {"member_id": id}} {
		var m MemberSummary
		f.ok(t, "POST", "/v1/members/lookup", body, &m)
		require.Equal(t, local+1000, m.Points)
		require.Equal(t, 1, took())
	}

	// Not found: nothing to refresh.
	code, _ := f.call(t, "POST", "/v1/members/lookup", apiToken, map[string]string{"mobile": "13900000000"})
	require.Equal(t, http.StatusNotFound, code)
	require.Zero(t, took())

	basket := map[string]any{"receipt_id": "R1", "member_id": id, "cashier": "c1",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 5000}}}
	f.ok(t, "POST", "/v1/quote", basket, nil)
	f.ok(t, "POST", "/v1/sales", basket, nil)
	basket["receipt_id"], basket["card"] = "R2", cardNo
	delete(basket, "member_id")
	f.ok(t, "POST", "/v1/sales", basket, nil)
	require.Zero(t, took(), "quotes and sales do not refresh: the POS identified the member first")
}

// A sale or quote that redeems points with the till online asks
// BalancesConfirmed about its member, and nothing else does; not confirmed,
// the offline cap applies and its refusal says HQ could not confirm the
// points. Offline, the till does not ask and says it is offline.
func TestUnconfirmedBalancesAreCapped(t *testing.T) {
	var (
		offline, confirmed atomic.Bool
		mu                 sync.Mutex
		asked              []string
	)
	f := newFixture(t, func(o *Options) {
		o.Offline = offline.Load
		o.BalancesConfirmed = func(ctx context.Context, memberID string) bool {
			require.NotNil(t, ctx.Done(), "the request's context")
			mu.Lock()
			asked = append(asked, memberID)
			mu.Unlock()
			return confirmed.Load()
		}
	})
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		a := asked
		asked = nil
		return a
	}
	require.NoError(t, f.l.ApplyMemberStates([]ledger.MemberState{{
		Member: entry.Member{ID: "M1", Name: "Rich", Tier: "silver"}, Points: 20000}}))
	lines := []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100000}}
	sell := func(path, receipt string, redeem int64) (int, []byte) {
		return f.call(t, "POST", path, apiToken, map[string]any{"receipt_id": receipt, "member_id": "M1", "redeem_points": redeem, "lines": lines})
	}
	sold := func(receipt string, redeem int64) entry.Entry {
		t.Helper()
		code, raw := sell("/v1/sales", receipt, redeem)
		require.Equal(t, http.StatusOK, code, string(raw))
		var e entry.Entry
		require.NoError(t, json.Unmarshal(raw, &e))
		return e
	}

	require.False(t, sold("R0", 0).Sale.OfflineRedeem)
	f.ok(t, "POST", "/v1/sales", map[string]any{"receipt_id": "R00", "lines": lines}, nil)
	require.Empty(t, took(), "a sale without redemption asked")

	for _, path := range []string{"/v1/quote", "/v1/sales"} {
		code, raw := sell(path, "R1", 6000)
		require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
		e := errCode(t, raw)
		require.Equal(t, "offline_redeem_limit", e.Code)
		require.Contains(t, e.Message, "HQ could not confirm this member's points just now")
		require.Contains(t, e.Message, "redeem at most 5000 points now")
		require.Contains(t, e.Message, "try again when HQ answers")
		require.NotContains(t, e.Message, "cannot reach HQ")
		require.Contains(t, e.MessageZH, "总部暂时无法确认该会员的积分")
		require.Contains(t, e.MessageZH, "最多抵扣5000积分")
		require.NotContains(t, e.MessageZH, "连不上总部")
		require.Equal(t, []string{"M1"}, took(), path)
	}
	require.True(t, sold("R2", 3000).Sale.OfflineRedeem)
	require.True(t, sold("R3", 2000).Sale.OfflineRedeem)
	code, raw := sell("/v1/sales", "R4", 100)
	require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
	e := errCode(t, raw)
	require.Contains(t, e.Message, "HQ could not confirm")
	require.Contains(t, e.Message, "today's are used")
	require.Contains(t, e.MessageZH, "今日额度已用完")
	took()

	confirmed.Store(true)
	s := sold("R5", 6000)
	require.Equal(t, int64(6000), s.Sale.RedeemPoints)
	require.False(t, s.Sale.OfflineRedeem)
	require.Equal(t, []string{"M1"}, took())

	offline.Store(true)
	code, raw = sell("/v1/sales", "R6", 100)
	require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
	e = errCode(t, raw)
	require.Contains(t, e.Message, "while the till cannot reach HQ")
	require.NotContains(t, e.Message, "HQ could not confirm")
	require.Empty(t, took(), "asked HQ while offline")
}
