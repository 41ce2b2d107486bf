package hq_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/internal/testpki"
	"posagent/sync/wire"
)

// tlsHQ is an HQ on loopback TLS; with a client CA it asks for client
// certificates the way `hq serve --client-ca` does.
type tlsHQ struct {
	*env
	ca     *testpki.Cert
	dir    string
	caFile string
	url    string
}

func newTLSHQ(t *testing.T, withClientCA bool) *tlsHQ {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "stores CA")
	caFile, _ := ca.Write(t, dir, "ca")
	srvCert, srvKey := ca.Server(t, "hq").Write(t, dir, "server")
	clientCA := ""
	if withClientCA {
		clientCA = caFile
	}
	cfg, err := hq.TLSConfig(srvCert, srvKey, clientCA)
	require.NoError(t, err)
	e := newEnv(t, hq.Options{RequireClientCert: withClientCA}, nil)
	ts := httptest.NewUnstartedServer(contract(t).Handler(t, e.srv))
	ts.TLS = cfg
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &tlsHQ{env: e, ca: ca, dir: dir, caFile: caFile, url: ts.URL}
}

// as returns an env that talks to the TLS HQ presenting cert (nil: none).
func (h *tlsHQ) as(cert *testpki.Cert) *env {
	roots := x509.NewCertPool()
	roots.AddCert(h.ca.Cert)
	tc := &tls.Config{RootCAs: roots}
	if cert != nil {
		tc.Certificates = []tls.Certificate{cert.TLS()}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	h.t.Cleanup(tr.CloseIdleConnections)
	e := *h.env
	e.url, e.hc = h.url, &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return &e
}

func TestClientCertMustNameTheTokensStore(t *testing.T) {
	h := newTLSHQ(t, true)
	s1, s2 := h.ca.Client(t, "S1"), h.ca.Client(t, "S2")
	tl := &hqtest.Till{Store: "S1", Till: "T1"}

	// The right store's certificate with its token.
	code, ack, werr := h.as(s1).upload(h.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0)))
	require.Equal(t, http.StatusOK, code, werr.Message)
	require.EqualValues(t, 1, ack.Acked)
	code, _, _ = h.as(s1).do("GET", wire.PathChanges, h.store["S1"], nil, nil)
	require.Equal(t, http.StatusOK, code)

	// Another store's certificate with this token: upload and pull refused.
	b2 := batchOf(tl.Points("M1", hqtest.T0, 5, "correction"))
	code, _, werr = h.as(s2).upload(h.store["S1"], b2)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "client_cert_mismatch", werr.Code)
	require.Contains(t, werr.Message, `names store "S2"`)
	require.Contains(t, werr.Message, `credential of store "S1"`)
	require.Contains(t, werr.Message, "posagent:store:S1", "the answer says how the right certificate looks")
	code, body, _ := h.as(s2).do("GET", wire.PathChanges, h.store["S1"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	var we wire.Error
	require.NoError(t, json.Unmarshal(body, &we), string(body))
	require.Equal(t, "client_cert_mismatch", we.Code)
	code, _, _ = h.as(s2).do("GET", wire.PathChanges, h.store["S2"], nil, nil)
	require.Equal(t, http.StatusOK, code, "S2 with its own token pulls")

	// A URI SAN names the store and then the CommonName does not count.
	bySAN := h.ca.Client(t, "till-host-7", "posagent:store:S1")
	code, ack, werr = h.as(bySAN).upload(h.store["S1"], b2)
	require.Equal(t, http.StatusOK, code, werr.Message)
	require.EqualValues(t, 2, ack.Acked)
	sanWins := h.ca.Client(t, "S1", "posagent:store:S2")
	code, _, werr = h.as(sanWins).upload(h.store["S1"], batchOf(tl.Points("M1", hqtest.T0, 6, "correction")))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, werr.Message, `names store "S2"`)
	anon := h.ca.Client(t, "")
	code, _, werr = h.as(anon).upload(h.store["S1"], batchOf(tl.Points("M1", hqtest.T0, 6, "correction")))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, werr.Message, "names nobody")

	// The store's own checks still stand behind the certificate.
	code, _, werr = h.as(s2).upload(h.store["S2"], batchOf(tl.Points("M1", hqtest.T0, 6, "correction")))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, werr.Message, "only as itself")
}

func TestAdminNeedsAnAdminCertificate(t *testing.T) {
	h := newTLSHQ(t, true)
	s1 := h.ca.Client(t, "S1")
	ops := h.ca.Client(t, "ops-laptop", "posagent:admin:ops")
	eve := h.ca.Client(t, "", "posagent:admin:eve")

	// The bootstrap admin token goes with any admin certificate, never a store's.
	code, _, _ := h.as(s1).do("GET", "/admin/totals", adminToken, nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	code, body, _ := h.as(ops).do("POST", "/admin/stores", adminToken, []byte(`{"id":"ops","role":"admin"}`), nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var issued map[string]string
	require.NoError(t, json.Unmarshal(body, &issued))

	// An issued admin token needs the certificate of that admin.
	code, _, _ = h.as(ops).do("GET", wire.PathExport, issued["token"], nil, nil)
	require.Equal(t, http.StatusOK, code)
	code, body, _ = h.as(eve).do("GET", wire.PathExport, issued["token"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, string(body), "posagent:admin:ops")
	code, _, _ = h.as(ops).do("POST", "/admin/members/M1/review", issued["token"], nil, nil)
	require.Equal(t, http.StatusNotFound, code, "review passes the certificate check, then finds no member")
	code, _, _ = h.as(eve).do("POST", "/admin/members/M1/review", issued["token"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)

	// An admin certificate does not make a store.
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	code, _, werr := h.as(ops).upload(h.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0)))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, werr.Message, `names admin "ops"`)

	// Health stays open to any client the TLS layer lets in.
	code, _, _ = h.as(s1).do("GET", "/healthz", "", nil, nil)
	require.Equal(t, http.StatusOK, code)
}

func TestClientCAHandshake(t *testing.T) {
	h := newTLSHQ(t, true)
	for name, cert := range map[string]*testpki.Cert{
		"no certificate":          nil,
		"certificate of other CA": testpki.NewCA(t, "rogue CA").Client(t, "S1"),
	} {
		t.Run(name, func(t *testing.T) {
			e := h.as(cert)
			req, err := http.NewRequest("GET", e.url+wire.PathChanges, nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+h.store["S1"])
			resp, err := e.hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, "the TLS handshake refuses the client")
		})
	}
}

func TestWithoutClientCANothingChanges(t *testing.T) {
	h := newTLSHQ(t, false)
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	code, _, werr := h.as(nil).upload(h.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0)))
	require.Equal(t, http.StatusOK, code, werr.Message)
	// HQ does not ask for a certificate, so one of another store is not sent
	// and proves nothing either way.
	code, _, werr = h.as(h.ca.Client(t, "S2")).upload(h.store["S1"], batchOf(tl.Points("M1", hqtest.T0, 5, "x")))
	require.Equal(t, http.StatusOK, code, werr.Message)

	// RequireClientCert without TLS in front refuses token-only requests.
	e := newEnv(t, hq.Options{RequireClientCert: true}, nil)
	code, _, werr = e.upload(e.store["S1"], batchOf((&hqtest.Till{Store: "S1", Till: "T9"}).Enrol("M2", hqtest.T0)))
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, "client_cert_required", werr.Code)
	require.Contains(t, werr.Message, "posagent:store:S1")
}

func TestSyncClientOverMutualTLS(t *testing.T) {
	h := newTLSHQ(t, true)
	s1Cert, s1Key := h.ca.Client(t, "S1").Write(t, h.dir, "s1")
	s2Cert, s2Key := h.ca.Client(t, "", "posagent:store:S2").Write(t, h.dir, "s2")

	ms := memstore.New("S1")
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	for _, e := range []entry.Entry{tl.Enrol("M1", hqtest.T0), tl.TopUp("M1", hqtest.T0.Add(time.Minute), 10000, 500)} {
		_, err := ms.Append("T1", e)
		require.NoError(t, err)
	}
	sync := func(certFile, keyFile string) error {
		tc, err := client.LoadTLS(h.caFile, certFile, keyFile)
		require.NoError(t, err)
		c, err := client.New(client.Config{URL: h.url, Token: h.store["S1"], TLS: tc, BatchAge: time.Millisecond,
			BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, RequestTimeout: 10 * time.Second}, ms, ms, nil)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return c.SyncNow(ctx)
	}

	// Another store's certificate with S1's token: HQ says why and takes nothing.
	err := sync(s2Cert, s2Key)
	require.ErrorContains(t, err, "client_cert_mismatch")
	require.ErrorContains(t, err, "posagent:store:S1")
	acked, err := ms.Acked("T1")
	require.NoError(t, err)
	require.Zero(t, acked)

	require.NoError(t, sync(s1Cert, s1Key))
	acked, err = ms.Acked("T1")
	require.NoError(t, err)
	require.EqualValues(t, 2, acked)
	m, err := h.st.Member(context.Background(), "M1")
	require.NoError(t, err)
	require.NotZero(t, m.StoredValue, "the top-up reached HQ")
	_, ok := ms.Member("M1")
	require.True(t, ok, "the pull brought the member back")
}
