//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/session"
	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
)

// TestCashiersFromHQ: cashiers added at HQ reach their store's till with
// the feed (another store's do not), sign in there, and every write names
// its cashier (and approver) in the till's ledger and, after sync, at HQ; a
// cashier HQ disables is signed out at the till.
func TestCashiersFromHQ(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tok, err := srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)
	_, err = srv.IssueCredential(ctx, hq.RoleStore, "S2", "Store S2", "Asia/Shanghai")
	require.NoError(t, err)
	for _, c := range []hq.CashierRequest{
		{Store: "S1", ID: "c1", Name: "Li Na", Role: "cashier", PIN: "2468"},
		{Store: "S1", ID: "s1", Name: "Wang Qiang", Role: "supervisor", PIN: "9753"},
		{Store: "S2", ID: "x1", Name: "Other", Role: "supervisor", PIN: "1111"},
	} {
		_, err := srv.AddCashier(ctx, c)
		require.NoError(t, err)
	}
	_, err = srv.AddCashier(ctx, hq.CashierRequest{Store: "S9", ID: "c1", Name: "X", PIN: "1234"})
	require.ErrorIs(t, err, hq.ErrNotFound, "a store HQ does not know")

	rn := startWith(t, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token, c.HQ.BatchAge = ts.URL, tok, 10*time.Millisecond
		c.Cashiers.AllowPOSWithoutCashier = false
	})
	syncNow := func() {
		req, _ := http.NewRequest("POST", rn.base+"/v1/sync/now", nil)
		req.Header.Set("Authorization", "Bearer "+apiTok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			syncNow()
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the cashiers", func() bool {
		cs, err := rn.a.led.Cashiers()
		return err == nil && len(cs) == 2
	})
	cs, err := rn.a.led.Cashiers()
	require.NoError(t, err)
	require.Equal(t, []string{"c1", "s1"}, []string{cs[0].ID, cs[1].ID}, "only this store's cashiers")
	require.Equal(t, "hq", cs[0].Source)

	// A till with HQ does not change cashiers itself.
	raw, _ := json.Marshal(api.PutCashierRequest{Name: "Z", Role: "cashier", PINHash: cs[0].PINHash})
	req, _ := http.NewRequest("PUT", rn.base+"/v1/cashiers/zz", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode)

	// c1 signs in at the page, enrols a member and tops up over the limit
	// with s1's approval; the POS sells in c1's name.
	jar, _ := cookiejar.New(nil)
	pg := &http.Client{Jar: jar}
	var csrf string
	pageDo := func(method, path string, body any, hdr map[string]string, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, rn.base+path, rd)
		req.Header.Set(session.CSRFHeader, csrf)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := pg.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(b, out), string(b))
		}
		return resp.StatusCode
	}
	var si api.SessionInfo
	require.Equal(t, http.StatusOK, pageDo("POST", "/v1/session", api.SignInRequest{Cashier: "c1", PIN: "2468"}, nil, &si))
	csrf = si.CSRF
	var en api.EnrolResponse
	require.Equal(t, http.StatusOK, pageDo("POST", "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三"}, nil, &en))
	m := en.Member.Member.ID
	var top entry.Entry
	require.Equal(t, http.StatusOK, pageDo("POST", "/v1/topups", map[string]any{"topup_id": "T1", "member_id": m, "amount": 200000},
		map[string]string{api.HeaderSupervisor: "s1", api.HeaderSupervisorPIN: "9753"}, &top))
	require.Equal(t, "s1", top.Approver)
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R1", "member_id": m, "cashier": "c1",
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 10000}}}, nil)

	// At HQ, after sync, every entry names c1, the top-up s1 as approver.
	var stored []entry.Entry
	waitFor("the entries at HQ", func() bool {
		stored = stored[:0]
		require.NoError(t, st.Scan(ctx, func(s hq.Stored) error { stored = append(stored, s.Entry); return nil }))
		return len(stored) >= 4 // enrolment, welcome coupon, top-up, sale
	})
	kinds := map[entry.Kind]bool{}
	for _, e := range stored {
		kinds[e.Kind] = true
		require.Equal(t, "c1", e.Cashier, "entry %s at HQ", e.ID())
		if e.Kind == entry.KindTopUp {
			require.Equal(t, "s1", e.Approver)
		}
	}
	require.True(t, kinds[entry.KindEnrol] && kinds[entry.KindTopUp] && kinds[entry.KindSale], "%v", kinds)

	// HQ disables c1: with the next pull the till refuses c1.
	_, err = srv.SetCashierDisabled(ctx, "S1", "c1", true)
	require.NoError(t, err)
	waitFor("the disable", func() bool {
		c, err := rn.a.led.Cashier("c1")
		return err == nil && c.Disabled
	})
	require.Equal(t, http.StatusUnauthorized, pageDo("GET", "/v1/status", nil, nil, nil), "the session ends")
	require.Equal(t, http.StatusForbidden, pageDo("POST", "/v1/session", api.SignInRequest{Cashier: "c1", PIN: "2468"}, nil, nil))
}
