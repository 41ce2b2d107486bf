package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/internal/apidoc/apidoctest"
)

// contract is openapi.yaml, loaded and checked once per test binary.
func contract(t testing.TB) *apidoctest.Contract {
	t.Helper()
	doc, err := OpenAPI.JSON()
	require.NoError(t, err)
	return apidoctest.Load(t, "agent/api/openapi.yaml", doc)
}

// TestOpenAPIServed: the document is served without a token, is the
// embedded one, and every operation it lists is one the agent serves.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t, nil)
	code, raw := f.call(t, "GET", "/v1/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, code)
	want, _ := OpenAPI.JSON()
	require.JSONEq(t, string(want), string(raw))
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	ops := contract(t).Operations()
	require.Contains(t, ops, "POST /v1/sales")
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		if path == "/" {
			continue // the page, which these tests do not serve
		}
		path = strings.ReplaceAll(path, "{id}", "M-none")
		if path == "/v1/events" {
			path += "?after=x" // answered at once instead of streaming
		}
		var body any
		if method == "POST" {
			body = "{}"
		}
		code, raw := f.call(t, method, path, apiToken, body)
		if code == http.StatusNotFound {
			require.NotContains(t, string(raw), "unknown API path", "%s is documented but not served", op)
		}
	}
}
