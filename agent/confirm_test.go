//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/sync/hq/hqtest"
)

// The default program: at most 5,000 points a day redeemed offline, at most
// half the amount due; 100 points a yuan.
const testOfflineCap = 5000

// sell posts a sale (or a quote, to /v1/quote) of M1 worth 1,000 yuan
// redeeming redeem points, and answers the status and body.
func (rn *running) sell(t *testing.T, path, receipt string, redeem int64) (int, []byte) {
	t.Helper()
	body := map[string]any{"receipt_id": receipt, "member_id": "M1", "redeem_points": redeem,
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100000}}}
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", rn.base+path, bytes.NewReader(raw))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// saleOK is sell to /v1/sales, answered 200 with a sale.
func (rn *running) saleOK(t *testing.T, receipt string, redeem int64) entry.Entry {
	t.Helper()
	code, raw := rn.sell(t, "/v1/sales", receipt, redeem)
	require.Equal(t, http.StatusOK, code, string(raw))
	var e entry.Entry
	require.NoError(t, json.Unmarshal(raw, &e))
	require.NotNil(t, e.Sale, string(raw))
	return e
}

func apiError(t *testing.T, code int, raw []byte, want int) api.Error {
	t.Helper()
	require.Equal(t, want, code, string(raw))
	var e api.Error
	require.NoError(t, json.Unmarshal(raw, &e))
	return e
}

// seedHQ makes HQ's store hold member id, enrolled at another till of the
// store an hour ago, with points, so that HQ's pulls and the till's uploads
// of the member's sales agree.
func seedHQ(t *testing.T, h *lookupHQ, id string, points int64) {
	t.Helper()
	t9 := &hqtest.Till{Store: "S1", Till: "T9"}
	at := time.Now().Add(-time.Hour)
	en := t9.Enrol(id, at)
	m := lookupMember(t, id)
	m.EnrolledAt = en.Enrol.Member.EnrolledAt
	en.Enrol.Member = m
	_, err := h.st.Ingest(context.Background(), hqtest.Batch(en, t9.Points(id, at, points, "welcome")))
	require.NoError(t, err)
}

// moveClock sets the clock the agent judges confirmed balances by to the
// real one moved by d.
func (rn *running) moveClock(d time.Duration) {
	c := rn.a.confirmed
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = func() time.Time { return time.Now().Add(d) }
}

// TestRedeemAfterRefreshIsUncapped: a swipe applies HQ's 20,000 points;
// the sale after it redeems 6,000, over the offline cap, without asking HQ
// again and is not an offline redemption.
func TestRedeemAfterRefreshIsUncapped(t *testing.T) {
	h := startLookupHQ(t)
	r := newReader(t)
	rn := startLookupTill(t, h, nil, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 20000)

	r.write(t, swipe)
	require.Equal(t, int64(20000), memberEvent(t, s.next(t, lookupTypes...)).Member.Points)
	require.Equal(t, int64(1), h.lookups.Load())

	code, raw := rn.sell(t, "/v1/quote", "", 6000)
	require.Equal(t, http.StatusOK, code, string(raw))
	e := rn.saleOK(t, "R1", 6000)
	require.Equal(t, int64(6000), e.Sale.RedeemPoints)
	require.False(t, e.Sale.OfflineRedeem, "a redemption of confirmed balances counted offline")
	require.Equal(t, int64(1), h.lookups.Load(), "HQ was asked again within the window")
	require.Equal(t, 1, refreshes(t, rn, "applied"))
}

// TestRedeemWhenHQSlowIsCapped: HQ answers M1's look-up later than the
// refresh timeout, while uploads and pulls work. A redemption over the cap
// waits the timeout once and is refused, saying HQ could not confirm the
// points; one under the cap is recorded as an offline redemption. With HQ
// known down the cap applies as before, and HQ is not asked.
func TestRedeemWhenHQSlowIsCapped(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := startLookupHQ(t)
	seedHQ(t, h, "M1", 20000)
	rn := startLookupTill(t, h, func(c *config.Config) { c.HQ.MemberRefreshTimeout = new(timeout) })
	require.NoError(t, rn.a.led.ApplyMemberStates([]ledger.MemberState{{Member: lookupMember(t, "M1"), Points: 20000}}))
	h.set(t, "M1", 20000)
	h.mu.Lock()
	h.slow["M1"] = 10 * timeout
	h.mu.Unlock()

	asked := time.Now()
	code, raw := rn.sell(t, "/v1/sales", "R1", 6000)
	took := time.Since(asked)
	e := apiError(t, code, raw, http.StatusUnprocessableEntity)
	require.Equal(t, "offline_redeem_limit", e.Code)
	require.Contains(t, e.Message, "HQ could not confirm this member's points")
	require.Contains(t, e.Message, "at most 5000 points a day")
	require.Contains(t, e.Message, "redeem at most 5000 points now")
	require.Contains(t, e.Message, "try again when HQ answers")
	require.Contains(t, e.MessageZH, "总部暂时无法确认该会员的积分")
	require.Contains(t, e.MessageZH, "最多抵扣5000积分")
	require.GreaterOrEqual(t, took, timeout, "the sale did not wait for HQ")
	require.Equal(t, int64(1), h.lookups.Load())
	t.Logf("a redemption HQ could not confirm was refused in %s", took)

	// A quote says the same.
	code, raw = rn.sell(t, "/v1/quote", "", 6000)
	require.Contains(t, apiError(t, code, raw, http.StatusUnprocessableEntity).Message, "HQ could not confirm")

	// Wait for a round to have worked since, so the look-up is tried again.
	since := time.Now()
	rn.syncUntil(t, "a round after the look-up", func() bool {
		return rn.a.sync.Status().LastSuccess.After(since) && !rn.a.sync.Offline()
	})
	before := h.lookups.Load()
	sale := rn.saleOK(t, "R2", 3000)
	require.Equal(t, int64(3000), sale.Sale.RedeemPoints)
	require.True(t, sale.Sale.OfflineRedeem, "a redemption HQ did not confirm is not counted offline")
	require.Equal(t, before+1, h.lookups.Load(), "HQ was not asked at the sale")
	code, raw = rn.sell(t, "/v1/sales", "R3", 2100)
	e = apiError(t, code, raw, http.StatusUnprocessableEntity)
	require.Contains(t, e.Message, "redeem at most 2000 points now", "the first offline redemption did not count")
	require.Zero(t, refreshes(t, rn, "applied"))

	// HQ down and known so: the cap as before, with the offline message,
	// and HQ is not asked.
	h.down.Store(true)
	rn.syncUntil(t, "the till to see HQ down", func() bool { return rn.a.sync.Status().Failures > 0 })
	before = h.lookups.Load()
	code, raw = rn.sell(t, "/v1/sales", "R4", 2100)
	e = apiError(t, code, raw, http.StatusUnprocessableEntity)
	require.Equal(t, "offline_redeem_limit", e.Code)
	require.Contains(t, e.Message, "while the till cannot reach HQ")
	require.NotContains(t, e.Message, "HQ could not confirm")
	require.Equal(t, before, h.lookups.Load(), "HQ was asked while known down")
}

// TestSaleWithoutRedemptionDoesNotAskHQ: sales and quotes of a member that
// redeem nothing, and non-member sales, never ask HQ, even with HQ slow.
func TestSaleWithoutRedemptionDoesNotAskHQ(t *testing.T) {
	h := startLookupHQ(t)
	rn := startLookupTill(t, h, nil)
	h.set(t, "M1", 20000)
	h.mu.Lock()
	h.slow["M1"] = 10 * time.Second
	h.mu.Unlock()

	start := time.Now()
	code, raw := rn.sell(t, "/v1/quote", "", 0)
	require.Equal(t, http.StatusOK, code, string(raw))
	sale := rn.saleOK(t, "R1", 0)
	require.False(t, sale.Sale.OfflineRedeem)
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R2",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100}}}, nil)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Zero(t, h.lookups.Load(), "a sale without redemption asked HQ")
}

// TestRedeemAfterTheWindowRefreshesAgain: a swipe applies HQ's 20,000
// points and a sale redeems 6,000 of them. Eleven minutes later the member
// has spent at another store (HQ holds 2,000): a sale redeeming 6,000 asks
// HQ again and is refused for want of points, where the till's stale
// 14,000 would have allowed it; a redemption right after does not ask.
func TestRedeemAfterTheWindowRefreshesAgain(t *testing.T) {
	h := startLookupHQ(t)
	seedHQ(t, h, "M1", 20000)
	r := newReader(t)
	rn := startLookupTill(t, h, nil, r)
	s := rn.stream(t, "T1")
	h.set(t, "M1", 20000)

	r.write(t, swipe)
	require.Equal(t, int64(20000), memberEvent(t, s.next(t, lookupTypes...)).Member.Points)
	sale := rn.saleOK(t, "R1", 6000)
	require.False(t, sale.Sale.OfflineRedeem)
	require.Equal(t, int64(1), h.lookups.Load())
	// The sale is at HQ, so HQ's marks are the till's again.
	rn.syncUntil(t, "the sale at HQ", func() bool { n, _, err := rn.a.led.Backlog(); return err == nil && n == 0 })
	v, err := rn.a.led.Member("M1")
	require.NoError(t, err)
	require.Greater(t, v.Points, int64(10000), "the till's own view")

	h.set(t, "M1", 2000)
	rn.moveClock(9 * time.Minute)
	sale = rn.saleOK(t, "R2", 100)
	require.False(t, sale.Sale.OfflineRedeem)
	require.Equal(t, int64(1), h.lookups.Load(), "HQ was asked within the window")
	// R2 at HQ, and the pull after it done, before the next look-up: an
	// ack arriving after it would add R2 to the balance the look-up set,
	// and a pull after it would put back the stored HQ's state.
	rn.syncUntil(t, "R2 at HQ", func() bool { n, _, err := rn.a.led.Backlog(); return err == nil && n == 0 })
	require.NoError(t, rn.a.sync.SyncNow(context.Background()), "a round (upload, pull) after R2's ack")

	rn.moveClock(11 * time.Minute)
	code, raw := rn.sell(t, "/v1/sales", "R3", 6000)
	e := apiError(t, code, raw, http.StatusUnprocessableEntity)
	require.Equal(t, "insufficient_points", e.Code, "the sale did not get HQ's balance")
	require.Equal(t, int64(2), h.lookups.Load())
	require.Equal(t, 2, refreshes(t, rn, "applied"))
	v, err = rn.a.led.Member("M1")
	require.NoError(t, err)
	require.Equal(t, int64(2000), v.PointsConfirmed, "HQ's balance")

	sale = rn.saleOK(t, "R4", 1000)
	require.False(t, sale.Sale.OfflineRedeem)
	require.Equal(t, int64(2), h.lookups.Load(), "HQ was asked again right after a refresh")
}

// TestRedeemWithRefreshOff: hq.member_refresh_timeout 0 keeps the cap to an
// unreachable HQ: a redemption over it online succeeds and HQ is not asked.
func TestRedeemWithRefreshOff(t *testing.T) {
	h := startLookupHQ(t)
	rn := startLookupTill(t, h, func(c *config.Config) { c.HQ.MemberRefreshTimeout = new(time.Duration(0)) })
	h.set(t, "M1", 20000)
	v, err := rn.a.led.Member("M1")
	require.NoError(t, err)
	require.Equal(t, int64(100), v.Points)
	require.NoError(t, rn.a.led.ApplyMemberStates([]ledger.MemberState{{Member: lookupMember(t, "M1"), Points: 20000}}))
	sale := rn.saleOK(t, "R1", 6000)
	require.False(t, sale.Sale.OfflineRedeem)
	require.Zero(t, h.lookups.Load())
}

// TestConfirmedBalancesBounded: members confirmed longer ago than the
// window are forgotten, and a burst of look-ups never holds more than
// confirmedMax members.
func TestConfirmedBalancesBounded(t *testing.T) {
	c := newConfirmedBalances()
	now := time.Now()
	c.now = func() time.Time { return now }
	c.add("old")
	require.True(t, c.recent("old"))
	now = now.Add(confirmWindow - time.Second)
	require.True(t, c.recent("old"))
	now = now.Add(time.Second)
	require.False(t, c.recent("old"), "confirmed for longer than the window")
	require.Empty(t, c.at)

	c.add("old")
	now = now.Add(confirmWindow)
	for i := range 3 * confirmedMax {
		c.add("M" + strconv.Itoa(i))
		require.LessOrEqual(t, len(c.at), confirmedMax)
	}
	require.NotContains(t, c.at, "old", "an expired member outlived a prune")
	last := "M" + strconv.Itoa(3*confirmedMax-1)
	require.True(t, c.recent(last), "the member just confirmed was dropped")
}
