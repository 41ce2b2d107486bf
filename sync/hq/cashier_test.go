package hq_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/pin"
	"posagent/ledger/staff"
	"posagent/sync/hq"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// TestCashierAdminAndFeed: admins add and change a store's cashiers; a
// store's till asking with its version gets its own store's whole list
// (hashes only) when the version differs, and nothing when it is current.
func TestCashierAdminAndFeed(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	post := func(path string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		code, raw, _ := e.do("POST", path, adminToken, b, nil)
		return code, raw
	}
	code, raw := post("/admin/cashiers", hq.CashierRequest{Store: "S1", ID: "c1", Name: "李娜", Role: "supervisor", PIN: "482913"})
	require.Equal(t, http.StatusOK, code, string(raw))
	require.NotContains(t, string(raw), "482913")
	code, _ = post("/admin/cashiers", hq.CashierRequest{Store: "S1", ID: "c1", Name: "X", PIN: "1234"})
	require.Equal(t, http.StatusConflict, code)
	code, _ = post("/admin/cashiers", hq.CashierRequest{Store: "S1", ID: "c2", Name: "X", PIN: "12"})
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = post("/admin/cashiers", hq.CashierRequest{Store: "S404", ID: "c2", Name: "X", PIN: "1234"})
	require.Equal(t, http.StatusNotFound, code)
	code, _ = post("/admin/cashiers", hq.CashierRequest{Store: "S2", ID: "z9", Name: "Other", PIN: "9999"})
	require.Equal(t, http.StatusOK, code)
	code, _, _ = e.do("POST", "/admin/cashiers", e.store["S1"], []byte(`{}`), nil)
	require.Equal(t, http.StatusForbidden, code, "a store credential cannot add cashiers")

	changes := func(version string) wire.Changes {
		code, raw, _ := e.do("GET", wire.PathChanges+"?cashiers="+version, e.store["S1"], nil, nil)
		require.Equal(t, http.StatusOK, code, string(raw))
		var ch wire.Changes
		require.NoError(t, json.Unmarshal(raw, &ch))
		return ch
	}
	ch := changes("")
	require.Len(t, ch.Cashiers, 1)
	c := ch.Cashiers[0]
	require.Equal(t, "c1", c.ID)
	require.Equal(t, "S1", c.Store)
	require.NoError(t, pin.Check(c.PINHash, "482913"))
	v1 := ch.CashiersVersion
	require.NotEmpty(t, v1)
	require.Empty(t, changes(v1).CashiersVersion, "a current till gets nothing")
	code, raw, _ = e.do("GET", wire.PathChanges, e.store["S1"], nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, string(raw), "cashiers", "a till that does not ask gets no cashiers")

	code, raw = post("/admin/cashiers/S1/c1/disable", nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	ch = changes(v1)
	require.NotEqual(t, v1, ch.CashiersVersion)
	require.True(t, ch.Cashiers[0].Disabled)
	code, _ = post("/admin/cashiers/S1/c1/pin", map[string]string{"pin": "5555"})
	require.Equal(t, http.StatusOK, code)
	code, _ = post("/admin/cashiers/S1/nobody/enable", nil)
	require.Equal(t, http.StatusNotFound, code)
	require.NoError(t, pin.Check(changes("").Cashiers[0].PINHash, "5555"))

	code, raw, _ = e.do("GET", "/admin/cashiers?store=S1", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, string(raw), "argon2id", "the admin list holds no hashes")
	require.Contains(t, string(raw), `"disabled":true`)
}

// TestCashierStores: both stores keep cashiers per store alike.
func TestCashierStores(t *testing.T) {
	ctx := context.Background()
	stores := map[string]hq.CashierStore{}
	e := newEnv(t, hq.Options{}, nil)
	stores["bolt"] = e.st.(hq.CashierStore)
	if url := os.Getenv("POSAGENT_TEST_PG"); url != "" {
		u, drop, err := pg.FreshSchema(ctx, url, "hq_cashier_")
		require.NoError(t, err)
		t.Cleanup(func() { _ = drop() })
		st, err := pg.Open(ctx, u, pg.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		stores["pg"] = st
	}
	h, err := pin.HashWith("1234", pin.Params{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	for name, st := range stores {
		t.Run(name, func(t *testing.T) {
			for _, c := range []staff.Cashier{
				{Store: "S1", ID: "b", Name: "B", Role: "cashier", PINHash: h},
				{Store: "S1", ID: "a", Name: "A", Role: "supervisor", PINHash: h},
				{Store: "S10", ID: "a", Name: "Other store", Role: "cashier", PINHash: h},
			} {
				require.NoError(t, st.PutCashier(ctx, c))
			}
			require.NoError(t, st.PutCashier(ctx, staff.Cashier{Store: "S1", ID: "b", Name: "B2", Role: "cashier", Disabled: true, PINHash: h}))
			cs, err := st.StoreCashiers(ctx, "S1")
			require.NoError(t, err)
			require.Len(t, cs, 2)
			require.Equal(t, "a", cs[0].ID)
			require.Equal(t, "B2", cs[1].Name)
			require.True(t, cs[1].Disabled)
			none, err := st.StoreCashiers(ctx, "S2")
			require.NoError(t, err)
			require.Empty(t, none)
		})
	}
}
