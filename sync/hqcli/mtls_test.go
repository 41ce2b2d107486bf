package hqcli_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/internal/testpki"
)

// pki is a test CA with the certificate files it issued in dir.
type pki struct {
	dir string
	ca  *testpki.Cert
}

func newPKI(t *testing.T) *pki {
	p := &pki{dir: t.TempDir(), ca: testpki.NewCA(t, "test CA")}
	p.ca.Write(t, p.dir, "ca")
	return p
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

func TestServeMutualTLSAndRemoteAdminCert(t *testing.T) {
	p := newPKI(t)
	p.ca.Server(t, "hq").Write(t, p.dir, "hq")
	p.ca.Client(t, "ops-laptop", "posagent:admin:ops").Write(t, p.dir, "admin")
	p.ca.Client(t, "S1").Write(t, p.dir, "store")
	db := filepath.Join(t.TempDir(), "hq.db")
	seed(t, db)
	url, stop := serve(t, db, "--tls-cert", p.file("hq.pem"), "--tls-key", p.file("hq.key"), "--client-ca", p.file("ca.pem"))
	defer stop()
	require.Regexp(t, `^https://127\.0\.0\.1:\d+$`, url)

	remote := []string{"--url", url, "--token", "boot", "--ca", p.file("ca.pem")}
	out, _, err := run(t, append([]string{"store", "add", "S9"}, append(remote, "--cert", p.file("admin.pem"), "--key", p.file("admin.key"))...)...)
	require.NoError(t, err)
	require.Regexp(t, `^hqs_`, out)

	// A store's certificate does not carry an admin token.
	_, _, err = run(t, append([]string{"store", "list"}, append(remote, "--cert", p.file("store.pem"), "--key", p.file("store.key"))...)...)
	require.ErrorContains(t, err, "403")
	require.ErrorContains(t, err, "posagent:admin:")
	// Without a certificate the handshake fails.
	_, _, err = run(t, append([]string{"store", "list"}, remote...)...)
	require.Error(t, err)
	_, _, err = run(t, append([]string{"store", "list"}, append(remote, "--cert", p.file("admin.pem"))...)...)
	require.ErrorContains(t, err, "both --cert and --key")
}
