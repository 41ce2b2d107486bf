package hq_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/internal/apidoc/apidoctest"
	"posagent/sync/hq"
)

// contract is openapi.yaml, loaded and checked once per test binary.
func contract(t testing.TB) *apidoctest.Contract {
	t.Helper()
	doc, err := hq.OpenAPI.JSON()
	require.NoError(t, err)
	return apidoctest.Load(t, "sync/hq/openapi.yaml", doc)
}

// TestOpenAPIServed: the document is served without a token, is the
// embedded one, and every operation it lists is one HQ serves.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	code, raw, _ := e.do("GET", "/v1/openapi.json", "", nil, nil)
	require.Equal(t, http.StatusOK, code)
	want, _ := hq.OpenAPI.JSON()
	require.JSONEq(t, string(want), string(raw))

	ops := contract(t).Operations()
	require.Contains(t, ops, "POST /v1/batches")
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		path = strings.ReplaceAll(path, "{id}", "M-none")
		// No token: a served operation answers 401 (or, needing none, 200);
		// one HQ does not serve is the mux's 404 or 405.
		code, raw, _ := e.do(method, path, "", nil, nil)
		require.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code, "%s is documented but not served: %s", op, raw)
	}
}
