package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Versions of the client generator and its runtime the test pins, so a
// new release cannot change what it proves.
const (
	oapiCodegen = "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2"
	oapiRuntime = "github.com/oapi-codegen/runtime v1.9.0"
)

// clientMain quotes a basket and reads the status through the generated
// client, and prints what it got as JSON.
const clientMain = `package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

func main() {
	bearer := func(ctx context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+os.Getenv("AGENT_TOKEN"))
		return nil
	}
	c, err := NewClientWithResponses(os.Getenv("AGENT_URL"), WithRequestEditorFn(bearer))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	q, err := c.QuoteWithResponse(ctx, QuoteJSONRequestBody{Lines: []Line{{Sku: "A", Qty: 2, UnitPrice: 1250}}})
	if err != nil || q.JSON200 == nil {
		fmt.Fprintln(os.Stderr, "quote:", err, q.StatusCode(), string(q.Body))
		os.Exit(1)
	}
	st, err := c.GetStatusWithResponse(ctx)
	if err != nil || st.JSON200 == nil {
		fmt.Fprintln(os.Stderr, "status:", err)
		os.Exit(1)
	}
	bad, err := c.GetStatusWithResponse(ctx, func(ctx context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
		return nil
	})
	if err != nil || bad.JSON401 == nil {
		fmt.Fprintln(os.Stderr, "status with a wrong token:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"due": q.JSON200.Due, "store": st.JSON200.Store, "unauthorized": bad.JSON401.Code})
}
`

// TestGeneratedClient generates a Go client from openapi.yaml with
// oapi-codegen into a module of its own, builds it, and runs it against an
// agent on loopback. It needs the Go module proxy (or a module cache that
// holds the generator); -short skips it.
func TestGeneratedClient(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and builds a client with oapi-codegen; not with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	doc, err := OpenAPI.JSON()
	require.NoError(t, err)
	write := func(name, s string) { require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644)) }
	write("openapi.json", string(doc))
	write("cfg.yaml", "package: main\noutput: client.gen.go\ngenerate:\n  client: true\n  models: true\n")
	write("main.go", clientMain)
	write("go.mod", "module agentclient\n\ngo 1.24\n\nrequire "+oapiRuntime+"\n")
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	run := func(timeout time.Duration, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	}
	run(5*time.Minute, "run", oapiCodegen, "-config", "cfg.yaml", "openapi.json")
	run(5*time.Minute, "mod", "tidy")
	run(5*time.Minute, "build", "-o", "agentclient", ".")

	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "agentclient"))
	cmd.Env = append(os.Environ(), "AGENT_URL="+f.srv.URL, "AGENT_TOKEN="+apiToken)
	out, err := cmd.Output()
	require.NoError(t, err, "the generated client against the agent: %s", out)
	var got struct {
		Due          int64  `json:"due"`
		Store        string `json:"store"`
		Unauthorized string `json:"unauthorized"`
	}
	require.NoError(t, json.Unmarshal(out, &got), string(out))
	require.Equal(t, int64(2500), got.Due, "2 × ¥12.50, no member")
	require.Equal(t, "S1", got.Store)
	require.Equal(t, "unauthorized", got.Unauthorized)
}
