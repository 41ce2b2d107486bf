package faultproxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backend counts requests whose whole body arrived.
type backend struct {
	complete atomic.Int64
	partial  atomic.Int64
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || int64(len(body)) != r.ContentLength {
		b.partial.Add(1)
		return
	}
	b.complete.Add(1)
	_, _ = w.Write([]byte("ok:" + r.Method + ":" + string(body[:min(8, len(body))])))
}

func setup(t *testing.T) (*Proxy, *backend, *http.Client) {
	t.Helper()
	be := &backend{}
	srv := httptest.NewServer(be)
	t.Cleanup(srv.Close)
	p, err := New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	// Fresh connections: a pooled connection the proxy cut earlier must not
	// turn up as an EOF in a later assertion.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 15 * time.Second}
	return p, be, hc
}

func post(hc *http.Client, url string, n int) (string, error) {
	resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(bytes.Repeat([]byte("x"), n)))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestPass(t *testing.T) {
	p, be, hc := setup(t)
	for i := 0; i < 3; i++ {
		got, err := post(hc, p.URL(), 100<<10)
		if err != nil || got != "ok:POST:xxxxxxxx" {
			t.Fatalf("pass: %q %v", got, err)
		}
	}
	if be.complete.Load() != 3 || p.Faults() != 0 {
		t.Fatalf("complete %d faults %d", be.complete.Load(), p.Faults())
	}
}

func TestCutUploadStopsTheBodyPartWay(t *testing.T) {
	p, be, hc := setup(t)
	p.Set(CutUpload(4000).Times(1))
	if _, err := post(hc, p.URL(), 200<<10); err == nil {
		t.Fatal("cut upload: request succeeded")
	}
	if be.complete.Load() != 0 {
		t.Fatal("server got the whole body through a cut upload")
	}
	if p.Faults() != 1 || p.Mode().Kind != KindPass {
		t.Fatalf("faults %d mode %v; want 1 and back to pass", p.Faults(), p.Mode())
	}
	if got, err := post(hc, p.URL(), 10); err != nil || got != "ok:POST:xxxxxxxx" {
		t.Fatalf("after the counted fault: %q %v", got, err)
	}
}

func TestCutResponseAfterServerDidTheWork(t *testing.T) {
	p, be, hc := setup(t)
	p.Set(CutResponse())
	for i := 0; i < 2; i++ {
		if _, err := post(hc, p.URL(), 5000); err == nil {
			t.Fatal("cut response: request succeeded")
		}
	}
	if be.complete.Load() != 2 {
		t.Fatalf("server completed %d requests, want 2", be.complete.Load())
	}
	p.Set(Pass())
	if _, err := post(hc, p.URL(), 10); err != nil {
		t.Fatal(err)
	}
	if p.Faults() != 2 {
		t.Fatalf("faults %d", p.Faults())
	}
}

func TestRefuse(t *testing.T) {
	p, be, hc := setup(t)
	p.Set(Refuse())
	if _, err := post(hc, p.URL(), 10); err == nil {
		t.Fatal("refused connection answered")
	}
	if be.complete.Load()+be.partial.Load() != 0 {
		t.Fatal("a refused request reached the server")
	}
	p.Set(Pass())
	if _, err := post(hc, p.URL(), 10); err != nil {
		t.Fatal(err)
	}
}

func TestDropSwallowsUntilClientGivesUp(t *testing.T) {
	p, be, _ := setup(t)
	p.Set(Drop())
	short := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 300 * time.Millisecond}
	if _, err := post(short, p.URL(), 10); err == nil {
		t.Fatal("dropped request answered")
	}
	if be.complete.Load() != 0 {
		t.Fatal("dropped request reached the server")
	}
	p.Set(Pass())
	if _, err := post(short, p.URL(), 10); err != nil {
		t.Fatal(err)
	}
}

func TestDropLiveConnectionThenHeal(t *testing.T) {
	p, _, _ := setup(t)
	// A kept-alive connection that saw Drop is closed when the mode changes,
	// so the client does not wait on a stream with missing bytes.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("first answer %q %v", buf[:n], err)
	}
	p.Set(Drop())
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Make sure the proxy swallowed it before healing.
	deadline := time.Now().Add(15 * time.Second)
	for p.Faults() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Set(Pass())
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection that lost bytes was not closed")
	}
}

func TestDelay(t *testing.T) {
	p, _, hc := setup(t)
	p.Set(Delay(50 * time.Millisecond))
	start := time.Now()
	if _, err := post(hc, p.URL(), 10); err != nil {
		t.Fatal(err)
	}
	// Lower bound only: the request passed through at least one held chunk.
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("delayed request took %v", el)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	p, _, _ := setup(t)
	p.Set(Drop())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Close hung on a live connection")
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("live connection survived Close")
	}
	if err := p.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestNewNeedsTarget(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Fatal("empty target accepted")
	}
	if s := CutUpload(10).Times(2).String(); s != "cut-upload(10)×2" {
		t.Fatal(s)
	}
}

func TestSetTarget(t *testing.T) {
	p, _, hc := setup(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("other"))
	}))
	defer other.Close()
	p.SetTarget(strings.TrimPrefix(other.URL, "http://"))
	if got, err := post(hc, p.URL(), 10); err != nil || got != "other" {
		t.Fatalf("after SetTarget: %q %v", got, err)
	}
}
