package hq_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// hqClientMain reads HQ through the generated client: health, a store's
// changes page and, as admin, the totals; it prints what it got as JSON.
const hqClientMain = `package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

func as(tok string) RequestEditorFn {
	return func(ctx context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

func main() {
	c, err := NewClientWithResponses(os.Getenv("HQ_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	h, err := c.HealthzWithResponse(ctx)
	if err != nil || h.JSON200 == nil {
		fmt.Fprintln(os.Stderr, "healthz:", err)
		os.Exit(1)
	}
	ch, err := c.GetChangesWithResponse(ctx, &GetChangesParams{}, as(os.Getenv("STORE_TOKEN")))
	if err != nil || ch.JSON200 == nil {
		fmt.Fprintln(os.Stderr, "changes:", err)
		os.Exit(1)
	}
	tot, err := c.GetTotalsWithResponse(ctx, as(os.Getenv("ADMIN_TOKEN")))
	if err != nil || tot.JSON200 == nil {
		fmt.Fprintln(os.Stderr, "totals:", err)
		os.Exit(1)
	}
	forbidden, err := c.GetTotalsWithResponse(ctx, as(os.Getenv("STORE_TOKEN")))
	if err != nil || forbidden.JSON403 == nil {
		fmt.Fprintln(os.Stderr, "totals as a store:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"more": ch.JSON200.More, "members": tot.JSON200.Members, "forbidden": forbidden.JSON403.Code})
}
`

// TestGeneratedClient generates a Go client from openapi.yaml with
// oapi-codegen, builds it, and runs it against HQ on loopback (see
// apidoctest.GoClient; -short skips it).
func TestGeneratedClient(t *testing.T) {
	doc, err := hq.OpenAPI.JSON()
	require.NoError(t, err)
	bin := apidoctest.GoClient(t, doc, hqClientMain)
	e := newEnv(t, hq.Options{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "HQ_URL="+e.url, "STORE_TOKEN="+e.store["S1"], "ADMIN_TOKEN="+adminToken)
	out, err := cmd.Output()
	require.NoError(t, err, "the generated client against HQ: %s", out)
	var got struct {
		More      bool   `json:"more"`
		Members   int    `json:"members"`
		Forbidden string `json:"forbidden"`
	}
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	require.False(t, got.More)
	require.Zero(t, got.Members)
	require.Equal(t, "forbidden", got.Forbidden)
}
