package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
	"posagent/ledger/entry"
)

func noWriteOff(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	es, err := l.Pending("T1", 0, 1000)
	require.NoError(t, err)
	for _, e := range es {
		require.NotEqual(t, entry.KindPointsExpired, e.Kind, "lot %v written off", e.Points)
	}
}

// A sale stamped 2099-01-18 is refused with 400 and a message that says
// what to fix; the member's valid lot stays.
func TestSaleTimeOutsideTheWindow(t *testing.T) {
	f := newFixture(t, nil)
	var en EnrolResponse
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E1", "name": "李雷"}, &en)
	id := en.Member.Member.ID
	lines := []map[string]any{{"sku": "A", "qty": 1, "unit_price": 10000}}
	f.ok(t, "POST", "/v1/sales", map[string]any{"receipt_id": "R1", "member_id": id, "lines": lines}, nil)
	var m MemberSummary
	f.ok(t, "GET", "/v1/members/"+id, nil, &m)
	require.Equal(t, int64(95), m.Points)

	for _, path := range []string{"/v1/sales", "/v1/quote"} {
		code, raw := f.call(t, "POST", path, apiToken, map[string]any{"receipt_id": "R2", "member_id": id, "lines": lines, "at": "2099-01-18T10:00:00+08:00"})
		require.Equal(t, http.StatusBadRequest, code, string(raw))
		e := errCode(t, raw)
		require.Equal(t, "bad_time", e.Code)
		require.Contains(t, e.Message, "5 minutes ahead of the till's clock")
		require.Contains(t, e.Message, "leave at out")
		require.Contains(t, e.MessageZH, "5分钟")
		require.Contains(t, e.MessageZH, "不传销售时间")
	}
	noWriteOff(t, f.l)
	f.ok(t, "GET", "/v1/members/"+id, nil, &m)
	require.Equal(t, int64(95), m.Points, "the valid lot is untouched")

	old := time.Now().Add(-8 * 24 * time.Hour).Format(time.RFC3339)
	code, raw := f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"receipt_id": "R3", "lines": lines, "at": old})
	require.Equal(t, http.StatusBadRequest, code, string(raw))
	e := errCode(t, raw)
	require.Equal(t, "bad_time", e.Code)
	require.Contains(t, e.Message, "7 days before the till's clock")
	require.Contains(t, e.MessageZH, "7天")

	// Backdated inside the window but before the member enrolled.
	code, raw = f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"receipt_id": "R4", "member_id": id, "lines": lines,
		"at": time.Now().Add(-24 * time.Hour).Format(time.RFC3339)})
	require.Equal(t, http.StatusBadRequest, code, string(raw))
	e = errCode(t, raw)
	require.Equal(t, "bad_time", e.Code)
	require.Contains(t, e.Message, "before the member enrolled")
	require.Contains(t, e.MessageZH, "入会")

	// A receipt the POS queued an hour ago keeps its time.
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	var s entry.Entry
	f.ok(t, "POST", "/v1/sales", map[string]any{"receipt_id": "R5", "lines": lines, "at": at.Format(time.RFC3339)}, &s)
	require.True(t, s.At.Equal(at), "%v", s.At)
}

// Hitting the offline cap says so, with what the cashier can do; never
// "not enough points" to a member who holds 20,000.
func TestOfflineCapMessage(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Offline = func() bool { return true } })
	require.NoError(t, f.l.ApplyMemberStates([]ledger.MemberState{{
		Member: entry.Member{ID: "M1", Name: "Rich", Tier: "silver"}, Points: 20000}}))
	lines := []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100000}}
	sell := func(receipt string, redeem int64) (int, []byte) {
		return f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"receipt_id": receipt, "member_id": "M1", "redeem_points": redeem, "lines": lines})
	}
	code, raw := sell("R1", 4000)
	require.Equal(t, http.StatusOK, code, string(raw))

	code, raw = sell("R2", 2000)
	require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
	e := errCode(t, raw)
	require.Equal(t, "offline_redeem_limit", e.Code)
	require.NotContains(t, e.Message, "not enough points")
	require.NotContains(t, e.MessageZH, "积分不足")
	require.Contains(t, e.Message, "redeem at most 1000 points")
	require.Contains(t, e.MessageZH, "最多抵扣1000积分")
	require.Contains(t, e.Message, "back online")
	require.Contains(t, e.MessageZH, "恢复联网")

	code, raw = sell("R3", 1000)
	require.Equal(t, http.StatusOK, code, string(raw))
	code, raw = sell("R4", 100)
	require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
	e = errCode(t, raw)
	require.Equal(t, "offline_redeem_limit", e.Code)
	require.Contains(t, e.Message, "reached")
	require.Contains(t, e.Message, "without redeeming points")
	require.Contains(t, e.MessageZH, "已达上限")
	require.Contains(t, e.MessageZH, "不用积分")
	code, raw = sell("R5", 0)
	require.Equal(t, http.StatusOK, code, string(raw))
}
