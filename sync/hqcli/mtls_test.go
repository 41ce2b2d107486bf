package hqcli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type pki struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	p := &pki{t: t, dir: t.TempDir()}
	p.cert, p.key = p.issue("ca", "test CA", nil, func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid, c.KeyUsage, c.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
	})
	return p
}

// issue writes name.pem and name.key; signed by the CA unless it is the CA.
func (p *pki) issue(name, cn string, uris []string, mod func(*x509.Certificate)) (*x509.Certificate, *ecdsa.PrivateKey) {
	t := p.t
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if mod != nil {
		mod(tmpl)
	}
	parent, signKey := p.cert, p.key
	if parent == nil {
		parent, signKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.file(name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(p.file(name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return c, key
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

func TestServeMutualTLSAndRemoteAdminCert(t *testing.T) {
	p := newPKI(t)
	p.issue("hq", "hq", nil, func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	})
	p.issue("admin", "ops-laptop", []string{"posagent:admin:ops"}, nil)
	p.issue("store", "S1", nil, nil)
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
