package client

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/client/memstore"
	"posagent/sync/internal/testpki"
)

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := testpki.NewCA(t, "test CA")
	caFile, _ := ca.Write(t, dir, "ca")
	srvCert := ca.Server(t, "hq").TLS()
	cliFile, cliKey := ca.Client(t, "store S1").Write(t, dir, "store")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

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
	mtls, err := LoadTLS(caFile, cliFile, cliKey)
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
