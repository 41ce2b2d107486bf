// Package multitest runs several HQ processes on one PostgreSQL database,
// directly and through PgBouncer in transaction pooling mode: real `hq
// serve --pg` processes (this test binary re-executed as the command) behind
// a load balancer, stores uploading with the real sync client, one process
// killed mid-upload.
package multitest

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqrun"
)

// TestMain lets this test binary run as the hq command (hqrun.Self).
func TestMain(m *testing.M) {
	hqrun.RunSelf()
	os.Exit(m.Run())
}

const adminToken = "multitest-admin-token"

// hqProc is one `hq serve --pg` process (this test binary re-executed).
type hqProc struct {
	*hqrun.Proc
	cmd *exec.Cmd
}

// startHQ starts `hq serve --pg pgURL` on a free loopback port; it is
// killed at test end if still running. ready: wait until it serves.
func startHQ(t testing.TB, pgURL string, ready bool) *hqProc {
	t.Helper()
	self, env := hqrun.Self()
	hp, err := hqrun.StartHQ(hqrun.HQ{Command: self, PG: pgURL, Env: env, AdminToken: adminToken})
	require.NoError(t, err)
	p := &hqProc{Proc: hp, cmd: hp.Cmd}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("hq process %d log:\n%s", p.cmd.Process.Pid, p.Log.String())
		}
	})
	if ready {
		require.NoError(t, p.wait(), "hq serve")
	}
	return p
}

// wait waits until the process writes its address and answers /healthz.
func (p *hqProc) wait() error {
	return p.Wait(90 * time.Second) // -race on a busy 2-core box
}

// kill ends the process at once (SIGKILL: no shutdown, no rollback but the
// server's own on the dropped connections).
func (p *hqProc) kill() { p.Kill() }

// balancer is an HTTP load balancer in front of the HQ processes: each
// request goes to a random backend that is up; a backend whose request
// fails at the transport is left out for half a second (a passive health
// check) and the client gets 502. With hedge set, an upload is also sent at the same moment to a
// second backend, so uploads of one till reach two processes at once.
type balancer struct {
	backends []*backend
	hedge    bool
	srv      *http.Server
	URL      string
	hedged   atomic.Int64
	failed   atomic.Int64 // requests that got 502
	errors5  atomic.Int64 // 5xx answers from the backends themselves
	last5    atomic.Value // the last of them, for the failure message
	rnd      *rand.Rand
	mu       sync.Mutex
}

type backend struct {
	url      string
	downTill atomic.Int64 // unix ns; a failed backend rests, then is tried again
	lastCut  atomic.Value // the last transport error, for failure messages
	inflight atomic.Int64 // uploads under way
	uploads  atomic.Int64
	cut      atomic.Int64 // requests that failed at the transport
}

func startBalancer(t testing.TB, procs []*hqProc, hedge bool) *balancer {
	b := &balancer{hedge: hedge, rnd: rand.New(rand.NewPCG(1, 2))}
	for _, p := range procs {
		b.backends = append(b.backends, &backend{url: p.URL})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.URL = "http://" + ln.Addr().String()
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

var proxyClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// pick returns up to n distinct backends that are up, in random order.
func (b *balancer) pick(n int) []*backend {
	b.mu.Lock()
	defer b.mu.Unlock()
	var up []*backend
	for _, be := range b.backends {
		if time.Now().UnixNano() >= be.downTill.Load() {
			up = append(up, be)
		}
	}
	b.rnd.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	return up[:min(n, len(up))]
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (b *balancer) forward(be *backend, r *http.Request, body []byte) answer {
	upload := r.URL.Path == "/v1/batches"
	if upload {
		be.inflight.Add(1)
		be.uploads.Add(1)
		defer be.inflight.Add(-1)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, be.url+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header = r.Header.Clone()
	resp, err := proxyClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		var rb []byte
		if rb, err = io.ReadAll(resp.Body); err == nil {
			// Back-pressure (overloaded, busy: retry later) is HQ working
			// as meant; any other 5xx is a failure.
			if resp.StatusCode >= 500 && !bytes.Contains(rb, []byte(`"code":"overloaded"`)) && !bytes.Contains(rb, []byte(`"code":"busy"`)) {
				b.errors5.Add(1)
				b.last5.Store(fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.Path, resp.StatusCode, rb))
			}
			return answer{status: resp.StatusCode, header: resp.Header, body: rb}
		}
	}
	be.cut.Add(1)
	be.lastCut.Store(err.Error())
	be.downTill.Store(time.Now().Add(500 * time.Millisecond).UnixNano())
	return answer{err: err}
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := 1
	if b.hedge && r.Method == http.MethodPost && r.URL.Path == "/v1/batches" {
		n = 2
	}
	bes := b.pick(n)
	if len(bes) == 0 {
		b.failed.Add(1)
		http.Error(w, "no backend up", http.StatusBadGateway)
		return
	}
	answers := make([]answer, len(bes))
	var wg sync.WaitGroup
	for i, be := range bes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = b.forward(be, r, body)
		}()
	}
	wg.Wait()
	if len(bes) == 2 {
		b.hedged.Add(1)
	}
	a := answers[0]
	if a.err != nil {
		b.failed.Add(1)
		http.Error(w, "backend: "+a.err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range a.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
