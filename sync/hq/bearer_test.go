package hq_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/wire"
)

// The Bearer scheme name is case-insensitive (RFC 9110 §11.1); a token is
// still required after it.
func TestBearerSchemeAnyCase(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	for _, h := range []string{"Bearer " + adminToken, "bearer " + adminToken, "BEARER  " + adminToken} {
		code, body, _ := e.do("GET", wire.PathExport, "", nil, map[string]string{"Authorization": h})
		require.Equal(t, http.StatusOK, code, "%q: %s", h, body)
	}
	for _, h := range []string{"bearer", "bearer ", "Basic " + adminToken, adminToken} {
		code, _, _ := e.do("GET", wire.PathExport, "", nil, map[string]string{"Authorization": h})
		require.Equal(t, http.StatusUnauthorized, code, "%q", h)
	}
}
