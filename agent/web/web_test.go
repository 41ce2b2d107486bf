package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, path, remote string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPageHoldsNoCredential: the page is the same for every client and
// carries nothing that authorises a call (the session is a cookie set at
// sign-in, the CSRF token arrives in its answer).
func TestPageHoldsNoCredential(t *testing.T) {
	h := Handler()
	resp, body := get(t, h, "/", "127.0.0.1:5555")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'self'")
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.NotContains(t, body, "posagent-token")
	require.NotContains(t, body, "{{")
	_, remote := get(t, h, "/", "192.0.2.10:5555")
	require.Equal(t, body, remote)
	_, js := get(t, h, "/static/app.js", "127.0.0.1:1")
	require.NotContains(t, js, "Bearer", "the page never sends the API token")
	require.NotContains(t, js, "localStorage.setItem('posagent.csrf", "the CSRF token stays in memory")

	for _, p := range []string{"/static/app.js", "/static/app.css"} {
		resp, body = get(t, h, p, "127.0.0.1:1")
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		require.NotEmpty(t, body)
	}
	resp, _ = get(t, h, "/nope", "127.0.0.1:1")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	// Every text the page shows exists in both languages.
	_, js = get(t, h, "/static/app.js", "127.0.0.1:1")
	_, html := get(t, h, "/", "127.0.0.1:1")
	zh, en, ok := strings.Cut(js[strings.Index(js, "zh: {"):], "en: {")
	require.True(t, ok)
	for _, part := range strings.Split(html, `data-i18n="`)[1:] {
		key, _, _ := strings.Cut(part, `"`)
		require.Contains(t, zh, " "+key+":", "zh text for %s", key)
		require.Contains(t, en, " "+key+":", "en text for %s", key)
	}
}
