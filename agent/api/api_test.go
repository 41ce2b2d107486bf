package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices/token"
	"posagent/ledger"
	"posagent/ledger/entry"
)

const apiToken = "test-api-token-0123456789"

var key = []byte("0123456789abcdef0123456789abcdef")

type fixture struct {
	srv *httptest.Server
	s   *Server
	l   *ledger.Ledger
	hub *events.Hub
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	l, err := ledger.Open(filepath.Join(dir, "ledger.db"), ledger.Options{Store: "S1", Till: "T1"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	hub := events.NewHub(64)
	loc, _ := time.LoadLocation("Asia/Shanghai")
	o := Options{
		Ledger: l, Hub: hub, Store: "S1", Till: "T1", Tills: []string{"T2"},
		TokenKey: key, Card: config.CardRule{Luhn: true}, APIToken: apiToken,
		DataDir: dir, MinFreeBytes: 1 << 20, Location: loc,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	require.NoError(t, err)
	// Every request and answer of the tests is checked against openapi.yaml.
	srv := httptest.NewServer(contract(t).Handler(t, s))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, s: s, l: l, hub: hub}
}

// call sends a request and returns status and body.
func (f *fixture) call(t *testing.T, method, path, tok string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func (f *fixture) ok(t *testing.T, method, path string, body, out any) []byte {
	t.Helper()
	code, raw := f.call(t, method, path, apiToken, body)
	require.Equal(t, http.StatusOK, code, string(raw))
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return raw
}

func errCode(t *testing.T, raw []byte) Error {
	t.Helper()
	var e Error
	require.NoError(t, json.Unmarshal(raw, &e), string(raw))
	require.NotEmpty(t, e.Code)
	require.NotEmpty(t, e.Message)
	return e
}

func luhnCard(t *testing.T) string {
	// Make a Luhn-valid 16-digit number from a 15-digit base.
	base := "622202020011223"
	sum := 0
	for i := 0; i < len(base); i++ {
		d := int(base[len(base)-1-i] - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return base + string(rune('0'+(10-sum%10)%10))
}

func TestAuthHostAndErrors(t *testing.T) {
	f := newFixture(t, nil)
	code, raw := f.call(t, "GET", "/v1/status", "", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, "unauthorized", errCode(t, raw).Code)
	code, _ = f.call(t, "GET", "/v1/status", "wrong-token-wrong-token", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = f.call(t, "GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, code, "health needs no token")

	// DNS rebinding guard: a foreign Host is refused.
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/status", nil)
	req.Host = "evil.example.com:8420"
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)

	code, raw = f.call(t, "GET", "/v1/nope", apiToken, nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "not_found", errCode(t, raw).Code)

	cases := []struct {
		body, code, want string
		status           int
	}{
		{`{"lines": [}`, "bad_json", "malformed JSON at byte", 400},
		{`{"lines": "x"}`, "bad_json", `field "lines"`, 400},
		{`{"linez": []}`, "bad_json", `unknown field "linez"`, 400},
		{``, "bad_json", "empty", 400},
		{`{"lines":[]} {}`, "bad_json", "extra data", 400},
		{`{"lines":[]}`, "invalid", "1 to 1000 lines", 400},
		{`{"lines":[{"sku":"A","qty":0,"unit_price":1}]}`, "invalid", "lines[0]: qty", 400},
		{`{"till":"T9","lines":[{"sku":"A","qty":1,"unit_price":1}]}`, "invalid", `till "T9" is not served`, 400},
		{`{"lines":[{"sku":"A","qty":1,"unit_price":1}],"pad":"` + strings.Repeat("x", 2<<20) + `"}`, "too_large", "larger than", 413},
	}
	for _, c := range cases {
		code, raw := f.call(t, "POST", "/v1/quote", apiToken, c.body)
		require.Equal(t, c.status, code, c.body[:min(len(c.body), 60)])
		e := errCode(t, raw)
		require.Equal(t, c.code, e.Code)
		require.Contains(t, e.Message, c.want)
	}
}

func TestMemberSaleRefundFlow(t *testing.T) {
	f := newFixture(t, nil)
	cardNo := luhnCard(t)

	// Enrol with a typed card (spaces are fine), then find by card, mobile, id.
	var en EnrolResponse
	f.ok(t, "POST", "/v1/members", map[string]any{
		"enrol_id": "E1", "name": "李雷", "mobile": "13812341234", "card": cardNo[:4] + " " + cardNo[4:], "cashier": "c1",
	}, &en)
	require.Equal(t, "李雷", en.Member.Member.Name)
	require.Equal(t, "138****1234", en.Member.MaskedMobile)
	require.NotEmpty(t, en.Member.Member.ID)
	require.NotEmpty(t, en.Member.Coupons, "welcome coupon")
	require.NotEmpty(t, en.Member.TierNameZH)
	id := en.Member.Member.ID
	raw := f.ok(t, "POST", "/v1/members", map[string]any{"key": "E1", "name": "李雷", "mobile": "13812341234", "card": cardNo, "cashier": "c1"}, &en)
	require.Equal(t, id, en.Member.Member.ID, "same enrol id enrols once")
	require.NotContains(t, string(raw), "13812341234", "the full mobile never leaves the agent")

	var m MemberSummary
	f.ok(t, "POST", "/v1/members/lookup", map[string]string{"card": cardNo}, &m)
	require.Equal(t, id, m.Member.ID)
	f.ok(t, "POST", "/v1/members/lookup", map[string]string{"card_hash": token.Hash(key, cardNo)}, &m)
	require.Equal(t, id, m.Member.ID)
	f.ok(t, "POST", "/v1/members/lookup", map[string]string{"mobile": "138 1234 1234"}, &m)
	require.Equal(t, id, m.Member.ID)
	f.ok(t, "GET", "/v1/members/"+id, nil, &m)
	require.Equal(t, id, m.Member.ID)
	f.ok(t, "GET", "/v1/members?card="+cardNo, nil, &m)
	require.Equal(t, id, m.Member.ID)

	code, raw := f.call(t, "POST", "/v1/members/lookup", apiToken, map[string]string{"card": "6222020200112234"})
	require.Equal(t, http.StatusBadRequest, code, "fails the Luhn rule")
	require.Equal(t, "bad_card", errCode(t, raw).Code)
	code, raw = f.call(t, "POST", "/v1/members/lookup", apiToken, map[string]string{"mobile": "13900000000"})
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "member_not_found", errCode(t, raw).Code)
	code, _ = f.call(t, "POST", "/v1/members/lookup", apiToken, map[string]string{"mobile": "13900000000", "member_id": "x"})
	require.Equal(t, http.StatusBadRequest, code)

	// Quote and sale by card; the same receipt again is the same answer.
	basket := map[string]any{"receipt_id": "R1", "card": cardNo, "cashier": "c1",
		"lines": []map[string]any{{"sku": "A", "qty": 2, "unit_price": 5000}, {"sku": "B", "qty": 1, "unit_price": 2000, "discountable": false}}}
	var q struct{ Due, Discount, PointsEarned int64 }
	f.ok(t, "POST", "/v1/quote", basket, &q)
	require.Equal(t, int64(500), q.Discount, "silver 5 % on the discountable line only")
	require.Equal(t, int64(11500), q.Due)

	first := f.ok(t, "POST", "/v1/sales", basket, nil)
	var e entry.Entry
	require.NoError(t, json.Unmarshal(first, &e))
	require.Equal(t, entry.KindSale, e.Kind)
	require.Equal(t, id, e.MemberID)
	again := f.ok(t, "POST", "/v1/sales", basket, nil)
	require.Equal(t, string(first), string(again), "a repeat answers the first result byte for byte")
	basket["lines"] = []map[string]any{{"sku": "A", "qty": 3, "unit_price": 5000}}
	code, raw = f.call(t, "POST", "/v1/sales", apiToken, basket)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "conflict", errCode(t, raw).Code)
	code, raw = f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"lines": basket["lines"]})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, errCode(t, raw).Message, "receipt_id")

	f.ok(t, "GET", "/v1/members/"+id, nil, &m)
	require.Equal(t, e.Sale.PointsEarned, m.Points-50*0, "points from the sale") // no referral here
	require.Equal(t, m.Points, m.PointsPending, "nothing confirmed by HQ yet")

	// Partial refund, then stored value, then a void of another sale.
	var rf entry.Entry
	f.ok(t, "POST", "/v1/refunds", map[string]any{"refund_id": "RF1", "receipt_id": "R1", "lines": []map[string]any{{"line_no": 1, "qty": 1}}}, &rf)
	require.Equal(t, entry.KindRefund, rf.Kind)
	require.Equal(t, int64(4750), rf.Refund.Amount)
	code, _ = f.call(t, "POST", "/v1/refunds", apiToken, map[string]any{"refund_id": "RF2", "receipt_id": "R1"})
	require.Equal(t, http.StatusBadRequest, code, "neither full nor lines")

	var tu entry.Entry
	f.ok(t, "POST", "/v1/topups", map[string]any{"topup_id": "TU1", "member_id": id, "amount": 10000}, &tu)
	require.Equal(t, int64(10000), tu.TopUp.Amount)
	code, raw = f.call(t, "POST", "/v1/sales", apiToken, map[string]any{"receipt_id": "R2", "member_id": id, "stored_value": 1_000_000,
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 2_000_000}}})
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "insufficient_stored_value", errCode(t, raw).Code)

	f.ok(t, "POST", "/v1/sales", map[string]any{"receipt_id": "R3", "member_id": id, "till": "T2",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 1000}}}, nil)
	var vd entry.Entry
	f.ok(t, "POST", "/v1/voids", map[string]any{"receipt_id": "R3", "till": "T2", "reason": "wrong basket"}, &vd)
	require.Equal(t, entry.KindVoid, vd.Kind)
	require.Equal(t, "T2", vd.Till)

	// Referrer by mobile.
	f.ok(t, "POST", "/v1/members", map[string]any{"enrol_id": "E2", "name": "韩梅梅", "referrer": map[string]string{"mobile": "13812341234"}}, &en)
	require.Equal(t, id, en.Member.Member.ReferrerID)
	code, raw = f.call(t, "POST", "/v1/members", apiToken, map[string]any{"name": "x"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, errCode(t, raw).Message, "enrol_id")

	var st Status
	f.ok(t, "GET", "/v1/status", nil, &st)
	require.Equal(t, []string{"T1", "T2"}, st.Tills)
	require.Greater(t, st.Sync.Backlog, 0)
	code, raw = f.call(t, "POST", "/v1/sync/now", apiToken, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "no_hq", errCode(t, raw).Code)
}

func TestHealthReadyMetrics(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Devices = func() []DeviceStatus {
			return []DeviceStatus{{Name: "msr", Till: "T1", Online: false, State: "offline", Detail: "unplugged"},
				{Name: "rfid", Till: "T1", Online: false, State: "not_answering", Detail: "PN532 does not answer"}}
		}
	})
	var rd Readiness
	f.ok(t, "GET", "/readyz", nil, &rd)
	require.Len(t, rd.Devices, 2)
	require.Equal(t, "not_answering", rd.Devices[1].State, "the reader's state word reaches the POS")
	require.True(t, rd.Ready)
	require.True(t, rd.Ledger.OK)
	require.True(t, rd.Disk.OK)
	require.False(t, rd.DevicesOnline, "an unplugged reader shows but does not make the agent unready")

	full := newFixture(t, func(o *Options) { o.MinFreeBytes = 1 << 62 })
	code, raw := full.call(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NoError(t, json.Unmarshal(raw, &rd))
	require.False(t, rd.Disk.OK)
	require.Contains(t, rd.Disk.Error, "disk almost full")

	gone := newFixture(t, func(o *Options) { o.DataDir = filepath.Join(o.DataDir, "missing", "dir") })
	code, raw = gone.call(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, string(raw), "does not take writes")

	closed := newFixture(t, nil)
	require.NoError(t, closed.l.Close())
	code, _ = closed.call(t, "GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, code, "a closed ledger is not ready")

	f.ok(t, "POST", "/v1/sales", map[string]any{"receipt_id": "R1", "lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100}}}, nil)
	f.s.m.Read("msr", "member")
	code, raw = f.call(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, code)
	body := string(raw)
	require.Contains(t, body, `posagent_commit_seconds_count{op="sale",result="ok"} 1`)
	require.Contains(t, body, `posagent_reads_total{device="msr",result="member"} 1`)
	require.Contains(t, body, "posagent_sync_backlog_entries 1")
	require.Contains(t, body, "posagent_sync_oldest_pending_seconds")
}

func TestEventsNeedToken(t *testing.T) {
	f := newFixture(t, nil)
	code, _ := f.call(t, "GET", "/v1/events", "", nil)
	require.Equal(t, http.StatusUnauthorized, code)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/v1/events?till=T1", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	for f.hub.Subscribers() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("no subscriber")
		case <-time.After(5 * time.Millisecond):
		}
	}
	_, _ = f.hub.Publish(events.TypeReadError, "T1", map[string]string{"hint": "swipe again"})
	ev, err := events.NewDecoder(resp.Body).Next()
	require.NoError(t, err)
	require.Equal(t, events.TypeReadError, ev.Type)
}

func TestCardToken(t *testing.T) {
	c := luhnCard(t)
	tok, err := CardToken(config.CardRule{Luhn: true}, " "+c[:4]+"-"+c[4:]+" ")
	require.NoError(t, err)
	require.Equal(t, c, tok)
	_, err = CardToken(config.CardRule{Prefix: "8888"}, c)
	require.Error(t, err)
	_, err = CardToken(config.CardRule{MinLength: 20}, c)
	require.ErrorContains(t, err, "wrong length")
	_, err = CardToken(config.CardRule{}, "   ")
	require.Error(t, err)
	tok, err = CardToken(config.CardRule{}, "M0001")
	require.NoError(t, err)
	require.Equal(t, "M0001", tok)
}
