package hq_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

type certKey struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func mkCert(t *testing.T, cn string, parent *certKey, server bool) *certKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signKey = parent.cert, parent.key
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &certKey{c, der, key}
}

func (c *certKey) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600))
	kb, err := x509.MarshalECPrivateKey(c.key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := mkCert(t, "test CA", nil, false)
	caFile, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := mkCert(t, "hq", ca, true).write(t, dir, "server")
	client := mkCert(t, "S1", ca, false)

	cfg, err := hq.TLSConfig(srvCert, srvKey, caFile)
	require.NoError(t, err)
	_, err = hq.TLSConfig(srvCert, srvKey, filepath.Join(dir, "server.key"))
	require.ErrorContains(t, err, "no PEM certificate")

	e := newEnv(t, hq.Options{}, nil)
	ts := httptest.NewUnstartedServer(e.srv)
	ts.TLS = cfg
	ts.StartTLS()
	defer ts.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(withCert bool) error {
		tc := &tls.Config{RootCAs: roots}
		if withCert {
			tc.Certificates = []tls.Certificate{{Certificate: [][]byte{client.der}, PrivateKey: client.key}}
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
