package hq_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/internal/testpki"
)

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	caFile, _ := ca.Write(t, dir, "ca")
	srvCert, srvKey := ca.Server(t, "hq").Write(t, dir, "server")
	client := ca.Client(t, "S1")

	cfg, err := hq.TLSConfig(srvCert, srvKey, caFile)
	require.NoError(t, err)
	_, err = hq.TLSConfig(srvCert, srvKey, filepath.Join(dir, "server.key"))
	require.ErrorContains(t, err, "no PEM certificate")

	e := newEnv(t, hq.Options{}, nil)
	ts := httptest.NewUnstartedServer(contract(t).Handler(t, e.srv))
	ts.TLS = cfg
	ts.StartTLS()
	defer ts.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	get := func(withCert bool) error {
		tc := &tls.Config{RootCAs: roots}
		if withCert {
			tc.Certificates = []tls.Certificate{client.TLS()}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get(ts.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return nil
	}
	require.NoError(t, get(true))
	require.Error(t, get(false), "a store without a client certificate is refused")
}
