package hqcli_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/wire"
)

// TestAdminWithPIIRight: "store add --admin --pii" issues an admin that
// reads personal data unmasked, on the storage and through a running HQ;
// "store list" shows the right; a store cannot have it.
func TestAdminWithPIIRight(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	seed(t, db)
	_, _, err := run(t, "store", "add", "S9", "--pii", "--db", db)
	require.ErrorContains(t, err, "--admin")
	crm, _, err := run(t, "store", "add", "crm", "--admin", "--pii", "--db", db)
	require.NoError(t, err)
	crm = strings.TrimSpace(crm)

	url, _ := serve(t, db)
	erp, _, err := run(t, "store", "add", "erp", "--admin", "--url", url, "--token", "boot")
	require.NoError(t, err)
	erp = strings.TrimSpace(erp)
	dpo, _, err := run(t, "store", "add", "dpo", "--admin", "--pii", "--url", url, "--token", "boot")
	require.NoError(t, err)
	dpo = strings.TrimSpace(dpo)
	out, _, err := run(t, "store", "list", "--url", url, "--token", "boot")
	require.NoError(t, err)
	rights := map[string]string{}
	for _, l := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(l); len(f) >= 4 {
			rights[f[1]] = f[len(f)-1]
		}
	}
	require.Equal(t, map[string]string{"crm": "pii", "erp": "-", "dpo": "pii"}, rights, out)

	mobile := func(tok string) string {
		req, err := http.NewRequest("GET", url+wire.PathExport, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		var p wire.ExportPage
		require.NoError(t, json.Unmarshal(b, &p))
		for _, x := range p.Entries {
			if x.Enrol != nil {
				return x.Enrol.Member.Mobile
			}
		}
		t.Fatal("no enrolment exported")
		return ""
	}
	require.Equal(t, "138****1234", mobile(erp))
	require.Equal(t, "138****1234", mobile("boot"), "the bootstrap token has no pii right")
	require.Equal(t, "13800001234", mobile(crm))
	require.Equal(t, "13800001234", mobile(dpo))
}

// TestExportLimitFlagBounded: --limit asks for pages HQ can serve.
func TestExportLimitFlagBounded(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	seed(t, db)
	for _, lim := range []string{"0", "-1", "5001", "100000000"} {
		_, _, err := run(t, "export", "--db", db, "-q", "--limit", lim)
		require.ErrorContains(t, err, "1 to 5000", "--limit %s", lim)
	}
	_, errOut, err := run(t, "export", "--db", db, "-q", "--limit", "5000", "--out", filepath.Join(t.TempDir(), "x.jsonl"))
	require.NoError(t, err)
	require.Contains(t, errOut, "exported 3 entries")
}
