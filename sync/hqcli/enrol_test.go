package hqcli_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqtest"
)

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStoreQRAndCardLinks: hq serve with enrolment configured; hq store qr
// writes a PNG whose decoded URL is the one printed and opens HQ's form,
// an SVG of the same; a URL edited to credit another cashier is refused;
// card links are issued and revoked through the running HQ.
func TestStoreQRAndCardLinks(t *testing.T) {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer gw.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	seed(t, db)
	t.Setenv("HQ_ENROL_KEY", "a-key-of-at-least-16-bytes")
	t.Setenv("HQ_SMS_SECRET", "s3cret")
	url, stop := serve(t, db, "--sms-url", gw.URL)
	defer stop()
	t.Setenv("HQ_PUBLIC_URL", url)

	png := filepath.Join(dir, "s1.png")
	out, _, err := run(t, "store", "qr", "S1", "--cashier", "C07", "--out", png)
	require.NoError(t, err)
	printed := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(printed, url+"/m/enrol?"), printed)
	raw, err := os.ReadFile(png)
	require.NoError(t, err)
	text, err := hqtest.DecodeQR(raw)
	require.NoError(t, err)
	require.Equal(t, printed, text)
	code, page := get(t, printed)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `name="c" value="C07"`)
	code, _ = get(t, strings.Replace(printed, "c=C07", "c=C08", 1))
	require.Equal(t, http.StatusNotFound, code)

	svg := filepath.Join(dir, "s1.svg")
	out2, _, err := run(t, "store", "qr", "S1", "--cashier", "C07", "--out", svg)
	require.NoError(t, err)
	require.Equal(t, out, out2, "the same link")
	b, err := os.ReadFile(svg)
	require.NoError(t, err)
	require.Contains(t, string(b), "<svg")
	_, _, err = run(t, "store", "qr", "S1", "--out", filepath.Join(dir, "s1.gif"))
	require.ErrorContains(t, err, ".png or .svg")
	t.Setenv("HQ_ENROL_KEY", "short")
	_, _, err = run(t, "store", "qr", "S1", "--out", png)
	require.ErrorContains(t, err, "at least 16 bytes")

	// Card links of the seeded member M1 through the running HQ.
	out, _, err = run(t, "members", "card-link", "issue", "M1", "--url", url, "--token", "boot")
	require.NoError(t, err)
	link := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(link, url+"/m/card/"), link)
	code, page = get(t, link)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "我的会员卡")
	out, _, err = run(t, "member", "card-link", "revoke", "M1", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "revoked 1 card link(s) of M1")
	code, _ = get(t, link)
	require.Equal(t, http.StatusGone, code)
	_, _, err = run(t, "members", "card-link", "issue", "M404", "--url", url, "--token", "boot")
	require.ErrorContains(t, err, "404")
}
