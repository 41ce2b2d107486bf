package hqcli_test

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"posagent/sync/hqcli"
)

// The values below stand for a real database password and admin token.
const (
	secretPG    = "postgres://hq:Pw-d0-not-print@127.0.0.1:1/hq?sslmode=disable"
	secretPW    = "Pw-d0-not-print"
	secretToken = "hqa_tok-d0-not-print"
)

// TestHelpNeverPrintsSecrets: with HQ_PG and HQ_TOKEN set, no command's help
// prints their values; it says they are set.
func TestHelpNeverPrintsSecrets(t *testing.T) {
	t.Setenv("HQ_PG", secretPG)
	t.Setenv("HQ_TOKEN", secretToken)
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, s := range c.Commands() {
			walk(s, append(append([]string(nil), path...), s.Name()))
		}
	}
	walk(hqcli.NewCommand(), nil)
	require.Greater(t, len(paths), 10)
	for _, p := range paths {
		out, errOut, err := run(t, append(p, "--help")...)
		require.NoError(t, err, p)
		all := out + errOut
		for _, s := range []string{secretPW, secretToken, "Pw-d0"} {
			require.NotContains(t, all, s, "hq %s --help", strings.Join(p, " "))
		}
		if strings.Contains(all, "--pg") {
			require.Contains(t, all, "$HQ_PG, set", "hq %s --help says HQ_PG is set", strings.Join(p, " "))
			require.Contains(t, all, "$HQ_TOKEN, set", "hq %s --help says HQ_TOKEN is set", strings.Join(p, " "))
		}
	}
	t.Setenv("HQ_PG", "")
	t.Setenv("HQ_TOKEN", "")
	out, _, err := run(t, "store", "list", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "$HQ_PG, not set")
}

// TestErrorsNeverPrintSecrets: a PostgreSQL URL that cannot be used is
// reported without its password, from the environment or from --pg.
func TestErrorsNeverPrintSecrets(t *testing.T) {
	for _, u := range []string{
		secretPG,                                     // unreachable
		"postgres://hq:" + secretPW + "@[::1/hq",     // does not parse
		"host=127.0.0.1 port=1 password=" + secretPW, // key=value form
		"postgres://hq@127.0.0.1:1/hq?password=" + secretPW,
	} {
		t.Setenv("HQ_PG", u)
		out, errOut, err := run(t, "store", "list")
		require.Error(t, err, u)
		for _, s := range []string{out, errOut, err.Error()} {
			require.NotContains(t, s, secretPW, "with HQ_PG=%s", u)
		}
		t.Setenv("HQ_PG", "")
		out, errOut, err = run(t, "store", "list", "--pg", u)
		require.Error(t, err, u)
		for _, s := range []string{out, errOut, err.Error()} {
			require.NotContains(t, s, secretPW, "with --pg %s", u)
		}
	}
}
