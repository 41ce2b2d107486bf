package hq_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/wire"
)

// slowBody is a well-formed gzip upload body of about n bytes (stored
// blocks, so every byte sent is one HQ has to wait for).
func slowBody(t *testing.T, till string, n int) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	require.NoError(t, err)
	fmt.Fprintf(zw, `{"store":"S1","till":%q,"first":1,"last":1,"entries":[{"store":"S1","till":%q,"seq":1,"kind":"enrol","key":"%s"}]}`,
		till, till, strings.Repeat("k", n))
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// slowUpload is an upload whose body trickles in: it sends its headers and
// then one byte of its body every gap until stop is closed, the body is
// complete, or HQ answers. The status HQ answered (0 for none) is sent on
// done.
func slowUpload(t *testing.T, addr, token, till string, gap time.Duration, stop <-chan struct{}, done chan<- int) net.Conn {
	t.Helper()
	body := slowBody(t, till, 100000)
	size := len(body)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: hq\r\nAuthorization: Bearer %s\r\nContent-Encoding: gzip\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n%s: S1/%s/1-1\r\n\r\n", wire.PathBatches, token, size, wire.HeaderIdempotencyKey, till)
	require.NoError(t, err)
	answered := make(chan int, 1)
	go func() {
		// Whatever HQ answers, read only its status line.
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	go func() {
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for sent := 0; sent < size; sent++ { // bounded by the declared size
			select {
			case code := <-answered:
				done <- code
				return
			case <-stop:
				c.Close()
				done <- <-answered
				return
			case <-tick.C:
				if _, err := c.Write(body[sent : sent+1]); err != nil {
					done <- <-answered
					return
				}
			}
		}
		done <- <-answered
	}()
	return c
}

// TestSlowUploadsOfOneStoreDoNotStarveOthers: one store opens many uploads
// whose bodies trickle in a byte at a time, more than HQ has ingest slots;
// the other stores' uploads must still be taken at once.
func TestSlowUploadsOfOneStoreDoNotStarveOthers(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil) // the default limits, as hq serve runs
	ctx := context.Background()
	others := []string{"S2", "S3", "S4"}
	for _, id := range others[1:] {
		tok, err := e.srv.IssueCredential(ctx, hq.RoleStore, id, "Store "+id, "Asia/Shanghai")
		require.NoError(t, err)
		e.store[id] = tok
	}
	u, err := url.Parse(e.url)
	require.NoError(t, err)

	const slow = 80 // more than the 64 ingest slots
	stop := make(chan struct{})
	done := make(chan int, slow)
	conns := make([]net.Conn, 0, slow)
	for i := range slow {
		conns = append(conns, slowUpload(t, u.Host, e.store["S1"], fmt.Sprintf("T%d", i), 200*time.Millisecond, stop, done))
	}
	stopped := false
	stopSlow := func() {
		if !stopped {
			stopped = true
			close(stop)
			for _, c := range conns {
				c.Close()
			}
		}
	}
	t.Cleanup(stopSlow)
	time.Sleep(500 * time.Millisecond) // let HQ take every slow upload in

	// The other stores upload batch after batch meanwhile, each timed.
	const perStore = 10
	type result struct {
		code int
		took time.Duration
		msg  string
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for _, id := range others {
		wg.Go(func() {
			tl := &hqtest.Till{Store: id, Till: "T1"}
			for i := range perStore {
				b := batchOf(tl.Enrol(fmt.Sprintf("%s-M%d", id, i), hqtest.T0))
				start := time.Now()
				code, _, werr := e.upload(e.store[id], b)
				took := time.Since(start)
				mu.Lock()
				results = append(results, result{code, took, werr.Code})
				mu.Unlock()
				if code != http.StatusOK {
					tl.Seq-- // send the same position again
				}
			}
		})
	}
	wg.Wait()
	stopSlow()
	slowCodes := map[int]int{}
	for range slow {
		select {
		case code := <-done:
			slowCodes[code]++
		case <-time.After(10 * time.Second):
			t.Fatal("a slow upload never ended")
		}
	}

	var took []time.Duration
	codes := map[int]int{}
	for _, r := range results {
		took = append(took, r.took)
		codes[r.code]++
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	t.Logf("%d slow uploads of S1 (a byte every 200ms): answered %v (0 = no answer while they trickled)", slow, slowCodes)
	t.Logf("other stores' uploads meanwhile: %d, status %v, latency p50 %v p95 %v max %v",
		len(results), codes, pct(0.50).Round(time.Millisecond), pct(0.95).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	var failed []string
	for _, r := range results {
		if r.code != http.StatusOK {
			failed = append(failed, fmt.Sprintf("%d %s after %v", r.code, r.msg, r.took.Round(time.Millisecond)))
		}
	}
	require.Empty(t, failed, "every other store's upload is taken")
	require.Less(t, took[len(took)-1], time.Second, "and at once, not after queueing behind the slow store")
	require.Equal(t, len(others)*perStore, codes[http.StatusOK])
}

// TestStalledBodyAnswered408: an upload whose body stops arriving is
// answered 408 once BodyTimeout has passed, and the store's share is free
// again afterwards.
func TestStalledBodyAnswered408(t *testing.T) {
	e := newEnv(t, hq.Options{BodyTimeout: 500 * time.Millisecond, MaxPerCredential: 1}, nil)
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	done := make(chan int, 2)
	start := time.Now()
	// One sends its headers and then nothing; one trickles a byte every 100ms.
	stalled := slowUpload(t, u.Host, e.store["S1"], "T1", time.Hour, stop, done)
	defer stalled.Close()
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled upload was never answered")
	}
	took := time.Since(start)
	t.Logf("stalled body answered %d after %v", code, took.Round(time.Millisecond))
	require.Equal(t, http.StatusRequestTimeout, code)
	require.Less(t, took, 5*time.Second)

	trickle := slowUpload(t, u.Host, e.store["S1"], "T2", 100*time.Millisecond, stop, done)
	defer trickle.Close()
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a trickling upload was never answered")
	}
	require.Equal(t, http.StatusRequestTimeout, code, "a trickle is no better than a stall")

	// The store uploads normally again.
	tl := &hqtest.Till{Store: "S1", Till: "T3"}
	code, _, werr := e.upload(e.store["S1"], batchOf(tl.Enrol("M1", hqtest.T0)))
	require.Equal(t, http.StatusOK, code, werr.Message)
}

// TestUploadsPerCredentialCapped: a store with MaxPerCredential uploads
// open gets 429 with Retry-After for another, at once; other stores do not.
func TestUploadsPerCredentialCapped(t *testing.T) {
	e := newEnv(t, hq.Options{MaxPerCredential: 2, RetryAfter: 3 * time.Second, BodyTimeout: time.Minute}, nil)
	u, err := url.Parse(e.url)
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan int, 2)
	for i := range 2 {
		c := slowUpload(t, u.Host, e.store["S1"], fmt.Sprintf("T%d", i), time.Hour, stop, done)
		defer c.Close()
	}
	// Until both are in, a third may still be taken; wait for the refusal.
	tl := &hqtest.Till{Store: "S1", Till: "T9"}
	b := batchOf(tl.Enrol("M1", hqtest.T0))
	var code int
	var body []byte
	var hdr http.Header
	for tries := 0; tries < 100; tries++ {
		start := time.Now()
		code, body, hdr = e.do("POST", wire.PathBatches, e.store["S1"], gz(t, b), map[string]string{"Content-Encoding": "gzip"})
		if code == http.StatusTooManyRequests {
			require.Less(t, time.Since(start), 2*time.Second, "refused at once")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, http.StatusTooManyRequests, code, string(body))
	require.Equal(t, "3", hdr.Get("Retry-After"))
	require.Contains(t, string(body), "too_many_uploads")

	t2 := &hqtest.Till{Store: "S2", Till: "T1"}
	code, _, werr := e.upload(e.store["S2"], batchOf(t2.Enrol("M2", hqtest.T0)))
	require.Equal(t, http.StatusOK, code, werr.Message)

	close(stop)
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a slow upload never ended")
		}
	}
	// Once they are gone the store's share is free again (their handlers
	// end when the connections close).
	for tries := 0; ; tries++ {
		code, _, _ = e.upload(e.store["S1"], b)
		if code == http.StatusOK || tries == 100 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, http.StatusOK, code)
}
