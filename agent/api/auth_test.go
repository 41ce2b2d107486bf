package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/session"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheapHash keeps the tests fast; the cost of real hashes is pin's concern.
func cheapHash(t *testing.T, p string) string {
	t.Helper()
	h, err := pin.HashWith(p, pin.Params{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	return h
}

func addCashier(t *testing.T, l *ledger.Ledger, id, role, p string, disabled bool) {
	t.Helper()
	require.NoError(t, l.PutCashier(context.Background(), staff.Cashier{ID: id, Name: "Name " + id, Role: role, PINHash: cheapHash(t, p), Disabled: disabled}))
}

type authFixture struct {
	*fixture
	clock *fakeClock
}

func newAuthFixture(t *testing.T, mod func(*Options)) *authFixture {
	clock := &fakeClock{t: time.Now()}
	f := newFixture(t, func(o *Options) {
		o.Cashiers = o.Ledger.(*ledger.Ledger)
		m, err := session.New(session.Options{Store: o.Ledger.(*ledger.Ledger), Idle: 10 * time.Minute, MaxTries: 3, Lockout: 5 * time.Minute, Now: clock.Now})
		require.NoError(t, err)
		o.Sessions = m
		o.Supervisor = SupervisorRules{TopUpOver: 50000, Voids: true, RefundsWithoutReceipt: true}
		if mod != nil {
			mod(o)
		}
	})
	return &authFixture{fixture: f, clock: clock}
}

// page is a browser: a cookie jar, and the CSRF token sign-in gave.
type page struct {
	c    *http.Client
	base string
	csrf string
}

func (f *authFixture) page(t *testing.T) *page {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &page{c: &http.Client{Jar: jar}, base: f.srv.URL}
}

func (p *page) do(t *testing.T, method, path string, body any, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	require.NoError(t, err)
	if p.csrf != "" {
		req.Header.Set(session.CSRFHeader, p.csrf)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := p.c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out, resp.Header
}

func (p *page) signIn(t *testing.T, id, pin string) (int, []byte) {
	t.Helper()
	code, raw, _ := p.do(t, "POST", "/v1/session", SignInRequest{Cashier: id, PIN: pin}, nil)
	if code == http.StatusOK {
		var si SessionInfo
		require.NoError(t, json.Unmarshal(raw, &si))
		p.csrf = si.CSRF
	}
	return code, raw
}

func TestSignInSessionAndCSRF(t *testing.T) {
	f := newAuthFixture(t, nil)
	p := f.page(t)

	// First install: no cashiers; sign-in and POS writes say how to add one.
	code, raw := p.signIn(t, "c1", "1234")
	require.Equal(t, http.StatusForbidden, code)
	e := errCode(t, raw)
	require.Equal(t, "no_cashiers", e.Code)
	require.Contains(t, e.Message, "posagent cashier add")
	code, raw = f.call(t, "POST", "/v1/members", apiToken, map[string]any{"enrol_id": "e0", "name": "A"})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "no_cashiers", errCode(t, raw).Code)

	addCashier(t, f.l, "c1", staff.RoleCashier, "1234", false)
	code, raw = p.signIn(t, "c1", "9999")
	require.Equal(t, http.StatusForbidden, code)
	e = errCode(t, raw)
	require.Equal(t, "wrong_pin", e.Code)
	require.Contains(t, e.Message, "2 tries left")
	code, raw = p.signIn(t, "nobody", "1234")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "unknown_cashier", errCode(t, raw).Code)

	code, raw, _ = p.do(t, "POST", "/v1/session", SignInRequest{Cashier: "c1", PIN: "1234"}, map[string]string{"Origin": "http://evil.example"})
	require.Equal(t, http.StatusForbidden, code, "a sign-in posted by another site's page")
	require.Equal(t, "csrf", errCode(t, raw).Code)
	code, raw, hdr := p.do(t, "POST", "/v1/session", SignInRequest{Cashier: "c1", PIN: "1234"}, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	ck := hdr.Get("Set-Cookie")
	require.Contains(t, ck, session.CookieName+"=")
	require.Contains(t, ck, "HttpOnly")
	require.Contains(t, ck, "SameSite=Strict")
	var si SessionInfo
	require.NoError(t, json.Unmarshal(raw, &si))
	require.Equal(t, "c1", si.Cashier.ID)
	require.EqualValues(t, 600, si.IdleSeconds)
	require.NotEmpty(t, si.CSRF)

	// Reads need the cookie only; writes need the CSRF token as well.
	code, _, _ = p.do(t, "GET", "/v1/status", nil, nil)
	require.Equal(t, http.StatusOK, code)
	enrol := map[string]any{"enrol_id": "e1", "name": "Zhang San", "mobile": "13800000001"}
	code, raw, _ = p.do(t, "POST", "/v1/members", enrol, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "csrf", errCode(t, raw).Code)
	p.csrf = si.CSRF
	code, raw, _ = p.do(t, "POST", "/v1/members", enrol, map[string]string{"Origin": "http://evil.example"})
	require.Equal(t, http.StatusForbidden, code, "a write from another origin")
	require.Equal(t, "csrf", errCode(t, raw).Code)
	code, raw, _ = p.do(t, "POST", "/v1/members", enrol, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	var er EnrolResponse
	require.NoError(t, json.Unmarshal(raw, &er))
	require.Equal(t, "c1", er.Entries[0].Cashier, "the page's write names the signed-in cashier")
	member := er.Member.Member.ID

	code, raw, _ = p.do(t, "POST", "/v1/topups", map[string]any{"topup_id": "t1", "member_id": member, "amount": 100, "cashier": "c2"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "cashier_mismatch", errCode(t, raw).Code)

	// GET /v1/session gives a reloaded page its CSRF token back.
	code, raw, _ = p.do(t, "GET", "/v1/session", nil, nil)
	require.Equal(t, http.StatusOK, code)
	var again SessionInfo
	require.NoError(t, json.Unmarshal(raw, &again))
	require.Equal(t, si.CSRF, again.CSRF)

	// Idle expiry: reads in the background do not keep the session alive.
	f.clock.Add(9 * time.Minute)
	code, _, _ = p.do(t, "GET", "/v1/status", nil, nil)
	require.Equal(t, http.StatusOK, code)
	f.clock.Add(2 * time.Minute)
	code, _, _ = p.do(t, "GET", "/v1/status", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code, "idle for 11 of 10 minutes")

	// Sign-out ends the session.
	p.signIn(t, "c1", "1234")
	code, _, _ = p.do(t, "DELETE", "/v1/session", nil, nil)
	require.Equal(t, http.StatusNoContent, code)
	code, _, _ = p.do(t, "GET", "/v1/status", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
}

func TestLockoutAfterWrongPINs(t *testing.T) {
	f := newAuthFixture(t, nil)
	addCashier(t, f.l, "c1", staff.RoleCashier, "1234", false)
	p := f.page(t)
	for range 2 {
		code, raw := p.signIn(t, "c1", "0000")
		require.Equal(t, http.StatusForbidden, code, string(raw))
	}
	code, raw := p.signIn(t, "c1", "0000")
	require.Equal(t, http.StatusLocked, code)
	require.Equal(t, "cashier_locked", errCode(t, raw).Code)
	code, raw = p.signIn(t, "c1", "1234")
	require.Equal(t, http.StatusLocked, code, "the right PIN does not open a lock: %s", raw)
	f.clock.Add(5 * time.Minute)
	code, raw = p.signIn(t, "c1", "1234")
	require.Equal(t, http.StatusOK, code, string(raw))
}

func TestSupervisorApproval(t *testing.T) {
	f := newAuthFixture(t, nil)
	addCashier(t, f.l, "c1", staff.RoleCashier, "1234", false)
	addCashier(t, f.l, "c2", staff.RoleCashier, "2222", false)
	addCashier(t, f.l, "s1", staff.RoleSupervisor, "9876", false)
	p := f.page(t)
	code, raw := p.signIn(t, "c1", "1234")
	require.Equal(t, http.StatusOK, code, string(raw))
	code, raw, _ = p.do(t, "POST", "/v1/members", map[string]any{"enrol_id": "e1", "name": "Li"}, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	var er EnrolResponse
	require.NoError(t, json.Unmarshal(raw, &er))
	m := er.Member.Member.ID

	small := map[string]any{"topup_id": "t1", "member_id": m, "amount": 50000}
	code, raw, _ = p.do(t, "POST", "/v1/topups", small, nil)
	require.Equal(t, http.StatusOK, code, "at the limit: %s", raw)
	big := map[string]any{"topup_id": "t2", "member_id": m, "amount": 50001}
	code, raw, _ = p.do(t, "POST", "/v1/topups", big, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "supervisor_required", errCode(t, raw).Code)
	code, raw, _ = p.do(t, "POST", "/v1/topups", big, map[string]string{HeaderSupervisor: "s1", HeaderSupervisorPIN: "1111"})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "wrong_pin", errCode(t, raw).Code)
	code, raw, _ = p.do(t, "POST", "/v1/topups", big, map[string]string{HeaderSupervisor: "c2", HeaderSupervisorPIN: "2222"})
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "not_supervisor", errCode(t, raw).Code)
	code, raw, _ = p.do(t, "POST", "/v1/topups", big, map[string]string{HeaderSupervisor: "s1", HeaderSupervisorPIN: "9876"})
	require.Equal(t, http.StatusOK, code, string(raw))
	var e entry.Entry
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "c1", e.Cashier)
	require.Equal(t, "s1", e.Approver)

	code, raw, _ = p.do(t, "POST", "/v1/voids", map[string]any{"receipt_id": "R1"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "supervisor_required", errCode(t, raw).Code)
	code, raw, _ = p.do(t, "POST", "/v1/refunds", map[string]any{"refund_id": "RF1", "receipt_id": "R1", "full": true, "without_receipt": true}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "supervisor_required", errCode(t, raw).Code)

	// A signed-in supervisor approves their own actions.
	sp := f.page(t)
	code, raw = sp.signIn(t, "s1", "9876")
	require.Equal(t, http.StatusOK, code, string(raw))
	code, raw, _ = sp.do(t, "POST", "/v1/topups", map[string]any{"topup_id": "t3", "member_id": m, "amount": 90000}, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "s1", e.Approver)
}

func TestPOSNamesTheCashier(t *testing.T) {
	f := newAuthFixture(t, nil)
	addCashier(t, f.l, "c1", staff.RoleCashier, "1234", false)
	addCashier(t, f.l, "c9", staff.RoleCashier, "1234", true)
	enrol := func(id, cashier string) (int, []byte) {
		b := map[string]any{"enrol_id": id, "name": "Wang"}
		if cashier != "" {
			b["cashier"] = cashier
		}
		return f.call(t, "POST", "/v1/members", apiToken, b)
	}
	code, raw := enrol("e1", "")
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "cashier_required", errCode(t, raw).Code)
	code, raw = enrol("e1", "ghost")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "unknown_cashier", errCode(t, raw).Code)
	code, raw = enrol("e1", "c9")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "cashier_disabled", errCode(t, raw).Code)
	code, raw = enrol("e1", "c1")
	require.Equal(t, http.StatusOK, code, string(raw))
	var er EnrolResponse
	require.NoError(t, json.Unmarshal(raw, &er))
	require.Equal(t, "c1", er.Entries[0].Cashier)

	// The POS token cannot open a page session's endpoints as a cashier.
	code, raw = f.call(t, "GET", "/v1/session", apiToken, nil)
	require.Equal(t, http.StatusBadRequest, code, string(raw))

	// The install-period escape lets a POS that names no cashier through.
	g := newAuthFixture(t, func(o *Options) { o.POSCashierOptional = true })
	code, raw = g.call(t, "POST", "/v1/members", apiToken, map[string]any{"enrol_id": "e1", "name": "Wang"})
	require.Equal(t, http.StatusOK, code, string(raw))
}

func TestCashierAdminEndpoints(t *testing.T) {
	f := newAuthFixture(t, nil)
	var v CashierView
	f.ok(t, "PUT", "/v1/cashiers/c1", PutCashierRequest{Name: "Li Na", Role: "supervisor", PINHash: cheapHash(t, "1234")}, &v)
	require.Equal(t, CashierView{ID: "c1", Name: "Li Na", Role: "supervisor", Source: staff.SourceLocal}, v)
	code, raw := f.call(t, "PUT", "/v1/cashiers/c2", apiToken, PutCashierRequest{Name: "X", Role: "supervisor", PINHash: "1234"})
	require.Equal(t, http.StatusBadRequest, code, "a PIN is no hash: %s", raw)

	// Wrong PINs lock c1; a new PIN ends the lock.
	p := f.page(t)
	for range 3 {
		p.signIn(t, "c1", "0000")
	}
	var l CashierList
	f.ok(t, "GET", "/v1/cashiers", nil, &l)
	require.Len(t, l.Cashiers, 1)
	require.False(t, l.Cashiers[0].LockedUntil.IsZero())
	var reset CashierView
	f.ok(t, "POST", "/v1/cashiers/c1/pin", PINRequest{PINHash: cheapHash(t, "5678")}, &reset)
	require.True(t, reset.LockedUntil.IsZero())
	code, raw = p.signIn(t, "c1", "5678")
	require.Equal(t, http.StatusOK, code, string(raw))

	// The page cannot manage accounts, even a supervisor's.
	code, raw, _ = p.do(t, "POST", "/v1/cashiers/c1/disable", nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "forbidden", errCode(t, raw).Code)

	// Disabling ends the session at its next request.
	f.ok(t, "POST", "/v1/cashiers/c1/disable", nil, &v)
	require.True(t, v.Disabled)
	code, _, _ = p.do(t, "GET", "/v1/status", nil, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, raw = p.signIn(t, "c1", "5678")
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "cashier_disabled", errCode(t, raw).Code)
	var en CashierView
	f.ok(t, "POST", "/v1/cashiers/c1/enable", nil, &en)
	require.False(t, en.Disabled)

	// A till that takes its cashiers from HQ refuses local changes.
	g := newAuthFixture(t, func(o *Options) { o.CashiersFromHQ = true })
	code, raw = g.call(t, "PUT", "/v1/cashiers/c1", apiToken, PutCashierRequest{Name: "Li Na", Role: "cashier", PINHash: cheapHash(t, "1234")})
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "managed_by_hq", errCode(t, raw).Code)
}
