package api

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
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
