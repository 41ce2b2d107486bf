//go:build !windows

package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
)

// syncBuffer is a log sink safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newLogged runs New with cfg and returns what it logged.
func newLogged(t *testing.T, cfg config.Config) string {
	t.Helper()
	var buf syncBuffer
	a, err := New(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	require.NoError(t, err)
	a.closeAll()
	return buf.String()
}

func secretConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Store, cfg.Till = "S1", "T1"
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.TokenKey = tokenKey
	return cfg
}

// warned reports whether log has a permission warning for key naming path
// and the chmod that fixes it.
func warned(log, key, path string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "key="+key) &&
			strings.Contains(l, "chmod 600 "+path) {
			return true
		}
	}
	return false
}

// TestSecretFilePermissionWarning: a secret file that group or others can
// read is named at start with the chmod that fixes it; 0600 is quiet.
func TestSecretFilePermissionWarning(t *testing.T) {
	secrets := t.TempDir()
	apiFile := filepath.Join(secrets, "api.token")
	hqFile := filepath.Join(secrets, "hq.token")
	require.NoError(t, os.WriteFile(apiFile, []byte("api-token-0123456789abcdef\n"), 0o600))
	require.NoError(t, os.WriteFile(hqFile, []byte("hq-store-token\n"), 0o600))

	cfg := secretConfig(t)
	cfg.API.TokenFile = apiFile
	cfg.HQ.URL, cfg.HQ.TokenFile = "http://127.0.0.1:1", hqFile
	require.NoError(t, cfg.Validate())

	log := newLogged(t, cfg)
	require.False(t, warned(log, "api.token_file", apiFile), log)
	require.False(t, warned(log, "hq.token_file", hqFile), log)

	require.NoError(t, os.Chmod(apiFile, 0o644))
	require.NoError(t, os.Chmod(hqFile, 0o640))
	log = newLogged(t, cfg)
	require.True(t, warned(log, "api.token_file", apiFile), "a world-readable api.token_file must be warned about:\n%s", log)
	require.True(t, warned(log, "hq.token_file", hqFile), "a group-readable hq.token_file must be warned about:\n%s", log)

	// The generated api.token (and token.key) in the data directory.
	cfg = secretConfig(t)
	cfg.TokenKey = ""
	log = newLogged(t, cfg)
	gen := filepath.Join(cfg.DataDir, "api.token")
	key := filepath.Join(cfg.DataDir, "token.key")
	require.False(t, warned(log, "api.token", gen), "generated 0600: no warning:\n%s", log)
	require.NoError(t, os.Chmod(gen, 0o604))
	require.NoError(t, os.Chmod(key, 0o660))
	log = newLogged(t, cfg)
	require.True(t, warned(log, "api.token", gen), "the generated api.token made readable by others must be warned about:\n%s", log)
	require.True(t, warned(log, "token_key_file", key), "the generated token.key made group-readable must be warned about:\n%s", log)
}
