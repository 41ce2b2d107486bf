package api

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/internal/apidoc/apidoctest"
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
// agent on loopback (see apidoctest.GoClient; -short skips it).
func TestGeneratedClient(t *testing.T) {
	doc, err := OpenAPI.JSON()
	require.NoError(t, err)
	bin := apidoctest.GoClient(t, doc, clientMain)

	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
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
