package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/client/memstore"
)

type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func issue(t *testing.T, parent *pki, cn string, serial int64, server bool) (*pki, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	switch {
	case parent == nil:
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	case server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return &pki{cert, key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, caPEM, _ := issue(t, nil, "test CA", 1, false)
	_, srvPEM, srvKey := issue(t, ca, "hq", 2, true)
	_, cliPEM, cliKey := issue(t, ca, "store S1", 3, false)
	caFile := write("ca.pem", caPEM)
	srvCert, err := tls.X509KeyPair(srvPEM, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	hq := &fakeHQ{t: t, acked: map[string]uint64{}, entries: map[string]map[uint64]entry.Entry{}, dead: map[string]string{}}
	srv := httptest.NewUnstartedServer(hq)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()

	st := memstore.New("S1")
	fill(t, st, "T1", 20, time.Now().Add(-time.Hour))

	// Without a client certificate HQ refuses the handshake.
	noCert, err := LoadTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL, st, nil, func(c *Config) { c.TLS = noCert })
	if err := c.SyncNow(ctx10(t)); err == nil {
		t.Fatal("upload without client certificate accepted")
	}
	mtls, err := LoadTLS(caFile, write("store.pem", cliPEM), write("store.key", cliKey))
	if err != nil {
		t.Fatal(err)
	}
	c = newClient(t, srv.URL, st, nil, func(c *Config) { c.TLS = mtls })
	if err := c.SyncNow(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if a, _ := st.Acked("T1"); a != 20 {
		t.Fatalf("acked %d over mutual TLS", a)
	}
	if _, err := LoadTLS(write("bad.pem", []byte("nope")), "", ""); err == nil {
		t.Fatal("CA file without a certificate accepted")
	}
}
