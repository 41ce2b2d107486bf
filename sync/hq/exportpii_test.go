package hq_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/wire"
)

// TestExportMasksPersonalData: the export gives a member's mobile, name,
// birth year and card tokens only to an admin credential issued with the
// pii right; every other admin gets them masked.
func TestExportMasksPersonalData(t *testing.T) {
	e := newEnv(t, hq.Options{MaxPage: 3}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	enrol := tl.Enrol("M1", hqtest.T0)
	enrol.Enrol.Member.Name = "王小明"
	enrol.Enrol.Member.Mobile = "13912345678"
	enrol.Enrol.Member.Birthday = "1990-07-15"
	enrol.Enrol.Member.CardTokens = []string{"cardtoken-aaaa1111", "cardtoken-bbbb2222"}
	code, _, werr := e.upload(e.store["S1"], batchOf(enrol))
	require.Equal(t, http.StatusOK, code, werr.Message)

	issue := func(body string) string {
		code, b, _ := e.do("POST", "/admin/stores", adminToken, []byte(body), nil)
		require.Equal(t, http.StatusOK, code, string(b))
		var out map[string]any
		require.NoError(t, json.Unmarshal(b, &out))
		return out["token"].(string)
	}
	plain := issue(`{"id":"erp","role":"admin"}`)
	pii := issue(`{"id":"crm","role":"admin","rights":["pii"]}`)

	export := func(tok string) (wire.ExportedEntry, string) {
		code, b, _ := e.do("GET", wire.PathExport, tok, nil, nil)
		require.Equal(t, http.StatusOK, code, string(b))
		var p wire.ExportPage
		require.NoError(t, json.Unmarshal(b, &p))
		require.Len(t, p.Entries, 1)
		require.NotNil(t, p.Entries[0].Enrol)
		return p.Entries[0], string(b)
	}
	secret := []string{"13912345678", "cardtoken-", "王小明", "1990"}
	for name, tok := range map[string]string{"bootstrap admin": adminToken, "plain admin": plain} {
		x, raw := export(tok)
		for _, s := range secret {
			require.NotContains(t, raw, s, "%s sees %s", name, s)
		}
		m := x.Enrol.Member
		require.Equal(t, "139****5678", m.Mobile, name)
		require.Equal(t, "王**", m.Name, name)
		require.Equal(t, "07-15", m.Birthday, name)
		require.Empty(t, m.CardTokens, name)
		require.Equal(t, "M1", m.ID, "the member id is not personal data")
		require.Equal(t, "M1", x.MemberID)
	}
	x, _ := export(pii)
	require.Equal(t, enrol.Enrol.Member, x.Enrol.Member, "the pii admin gets the member as enrolled")

	// The right is the credential's: a store listing shows it, and a store
	// credential cannot be given it.
	code, b, _ := e.do("GET", "/admin/stores", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(b), `"rights":["pii"]`)
	require.Equal(t, 1, strings.Count(string(b), `"rights"`))
	code, b, _ = e.do("POST", "/admin/stores", adminToken, []byte(`{"id":"S7","rights":["pii"]}`), nil)
	require.Equal(t, http.StatusBadRequest, code, string(b))
	code, b, _ = e.do("POST", "/admin/stores", adminToken, []byte(`{"id":"x","role":"admin","rights":["everything"]}`), nil)
	require.Equal(t, http.StatusBadRequest, code, string(b))

	// The member record over the admin API follows the same rule.
	code, b, _ = e.do("GET", "/admin/members/M1", plain, nil, nil)
	require.Equal(t, http.StatusOK, code)
	for _, s := range secret {
		require.NotContains(t, string(b), s)
	}
	code, b, _ = e.do("GET", "/admin/members/M1", pii, nil, nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(b), "13912345678")
}

// TestExportLimitBounded: a page never holds more than MaxPage entries
// however many are asked for, and a limit that is no number says the bound.
func TestExportLimitBounded(t *testing.T) {
	e := newEnv(t, hq.Options{MaxPage: 3}, nil)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	es := tl.Enrol("M0", hqtest.T0)
	batch := batchOf(es)
	for i := 1; i < 8; i++ {
		batch.Entries = append(batch.Entries, tl.Enrol(fmt.Sprintf("M%d", i), hqtest.T0))
	}
	batch.Last = batch.Entries[len(batch.Entries)-1].Seq
	code, _, werr := e.upload(e.store["S1"], batch)
	require.Equal(t, http.StatusOK, code, werr.Message)
	for _, lim := range []string{"4", "1000000", "9223372036854775807", "99999999999999999999999"} {
		code, body, _ := e.do("GET", wire.PathExport+"?limit="+lim, adminToken, nil, nil)
		require.Equal(t, http.StatusOK, code, string(body))
		var p wire.ExportPage
		require.NoError(t, json.Unmarshal(body, &p))
		require.Len(t, p.Entries, 3, "limit=%s", lim)
		require.True(t, p.More)
	}
	for _, lim := range []string{"0", "-5", "-99999999999999999999999", "many"} {
		code, body, _ := e.do("GET", wire.PathExport+"?limit="+lim, adminToken, nil, nil)
		require.Equal(t, http.StatusBadRequest, code, string(body))
		require.Contains(t, string(body), "1 to 3", "limit=%s: the message names the bound", lim)
	}
}
