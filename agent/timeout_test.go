//go:build linux

package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/events"
)

// TestStalledBodiesLoad: 200 clients send a sale's headers and half its
// body, then stall. Each gets 408 within the body timeout (plus slack for a
// loaded test machine), requests of other clients are answered at once all
// along, a client that stalls inside its headers is cut off, and an event
// stream opened before the stall outlives it.
func TestStalledBodiesLoad(t *testing.T) {
	const (
		conns = 200
		bound = 2 * time.Second
		slack = 3 * time.Second // scheduling on a busy 2-core CI machine under -race
	)
	oldH, oldB := headerTimeout, bodyTimeout
	headerTimeout, bodyTimeout = bound, bound
	t.Cleanup(func() { headerTimeout, bodyTimeout = oldH, oldB })
	rn := start(t)
	addr := rn.a.Addr()
	st := rn.stream(t, "")

	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make([]result, conns)
	var wg sync.WaitGroup
	sent := make(chan struct{}, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				results[i].err = err
				sent <- struct{}{}
				return
			}
			defer c.Close()
			body := `{"receipt_id":"R1","lines":[{"line_no":1`
			_, err = fmt.Fprintf(c, "POST /v1/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n%s", apiTok, body)
			begun := time.Now()
			sent <- struct{}{}
			if err != nil {
				results[i].err = err
				return
			}
			_ = c.SetReadDeadline(begun.Add(bound + slack + 5*time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			results[i].took = time.Since(begun)
			if err != nil {
				results[i].err = err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i].status = resp.StatusCode
		})
	}
	for range conns {
		<-sent
	}

	// A client stalled inside its headers is dropped after headerTimeout.
	hc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer hc.Close()
	_, err = io.WriteString(hc, "POST /v1/sales HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	require.NoError(t, err)
	hStart := time.Now()

	// Others are served while the 200 stall.
	var normal []time.Duration
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		require.Equal(t, http.StatusOK, rn.get(t, "/v1/status", nil))
		var m map[string]any
		rn.post(t, "/v1/quote", map[string]any{"lines": []map[string]any{{"line_no": 1, "sku": "A", "qty": 1, "unit_price": 100}}}, &m)
		normal = append(normal, time.Since(t0))
		time.Sleep(bound / 10)
	}
	slices.Sort(normal)
	require.Less(t, normal[len(normal)-1], time.Second, "a normal request during the stall must be answered promptly")

	_ = hc.SetReadDeadline(time.Now().Add(bound + slack + 5*time.Second))
	n, err := hc.Read(make([]byte, 1))
	hTook := time.Since(hStart)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF, "a client stalled in its headers must be disconnected")
	require.Less(t, hTook, bound+slack)

	wg.Wait()
	var took []time.Duration
	for i, r := range results {
		require.NoError(t, r.err, "connection %d", i)
		require.Equal(t, http.StatusRequestTimeout, r.status, "connection %d", i)
		require.Less(t, r.took, bound+slack, "connection %d answered late", i)
		took = append(took, r.took)
	}
	slices.Sort(took)
	t.Logf("%d stalled bodies (bound %v): 408 after min %v, median %v, max %v; normal status+quote during the stall: median %v, max %v; header stall cut after %v",
		conns, bound, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		normal[len(normal)/2].Round(time.Microsecond), normal[len(normal)-1].Round(time.Microsecond), hTook.Round(time.Millisecond))

	// The stream, opened before the stall, still delivers after it.
	_, err = rn.a.hub.Publish(events.TypeSync, "", map[string]string{"probe": "after-stall"})
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		e := st.next(t, events.TypeSync)
		if strings.Contains(string(e.Data), "after-stall") {
			return
		}
	}
	t.Fatal("the event stream did not deliver after the stall")
}
