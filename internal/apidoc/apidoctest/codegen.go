package apidoctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Versions of the client generator and its runtime the tests pin, so a
// new release cannot change what they prove.
const (
	OAPICodegen = "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2"
	OAPIRuntime = "github.com/oapi-codegen/runtime v1.9.0"
)

// GoClient generates a Go client from doc (OpenAPI JSON) with oapi-codegen
// into a module of its own, as package main with mainSrc beside it, builds
// it and returns the program's path. It needs the Go module proxy (or a
// module cache holding the generator); with -short, or without a go
// command, the test is skipped.
func GoClient(t testing.TB, doc []byte, mainSrc string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("generates and builds a client with oapi-codegen; not with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	for name, s := range map[string]string{
		"openapi.json": string(doc),
		"cfg.yaml":     "package: main\noutput: client.gen.go\ngenerate:\n  client: true\n  models: true\n",
		"main.go":      mainSrc,
		"go.mod":       "module apiclient\n\ngo 1.24\n\nrequire " + OAPIRuntime + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	for _, args := range [][]string{
		{"run", OAPICodegen, "-config", "cfg.yaml", "openapi.json"},
		{"mod", "tidy"},
		{"build", "-o", "apiclient", "."},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, gobin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return filepath.Join(dir, "apiclient")
}
