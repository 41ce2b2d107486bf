package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBearerSchemeCaseInsensitive: the auth scheme is case-insensitive
// (RFC 9110 §11.1), so "bearer" and "BEARER" work like "Bearer".
func TestBearerSchemeCaseInsensitive(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"Bearer " + apiToken, http.StatusOK},
		{"bearer " + apiToken, http.StatusOK},
		{"BEARER " + apiToken, http.StatusOK},
		{"bEaReR  " + apiToken, http.StatusOK}, // 1*SP before the credentials
		{"Bearer" + apiToken, http.StatusUnauthorized},
		{"Bearerx " + apiToken, http.StatusUnauthorized},
		{"Basic " + apiToken, http.StatusUnauthorized},
		{"bearer wrong-token-wrong-token", http.StatusUnauthorized},
		{"bearer ", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest("GET", f.srv.URL+"/v1/status", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", tc.header)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, tc.want, resp.StatusCode, "Authorization: %q", tc.header)
	}
}

// stalledPost opens a connection, sends the headers of a sale and part of
// its body, and returns the connection with a reader for the answer.
func stalledPost(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	body := `{"receipt_id":"R1","lines":[`
	_, err = fmt.Fprintf(c, "POST /v1/sales HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n%s", apiToken, body)
	require.NoError(t, err)
	return c, bufio.NewReader(c)
}

// TestStalledBodyAnswered408: a body that stops arriving is answered 408
// once the body timeout passes, while the event stream (no body) stays
// open well past it.
func TestStalledBodyAnswered408(t *testing.T) {
	const bound = 300 * time.Millisecond
	f := newFixture(t, func(o *Options) { o.BodyTimeout = bound })
	addr := strings.TrimPrefix(f.srv.URL, "http://")

	// An event stream opened before the stalls.
	req, err := http.NewRequest("GET", f.srv.URL+"/v1/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, http.StatusOK, stream.StatusCode)

	start := time.Now()
	c, rd := stalledPost(t, addr)
	defer c.Close()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(bound+5*time.Second)))
	resp, err := http.ReadResponse(rd, nil)
	require.NoError(t, err, "a stalled body must be answered")
	took := time.Since(start)
	var e Error
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.Equal(t, "request_timeout", e.Code)
	require.NotEmpty(t, e.MessageZH)
	require.GreaterOrEqual(t, took, bound)
	require.Less(t, took, bound+2*time.Second)
	t.Logf("stalled body answered %d after %v (bound %v)", resp.StatusCode, took.Round(time.Millisecond), bound)

	// A body that arrives whole in time is not affected, and the stream
	// outlives several bounds.
	time.Sleep(3 * bound)
	f.ok(t, "GET", "/v1/status", nil, nil)
	_, err = f.hub.Publish("test", "", map[string]int{"n": 1})
	require.NoError(t, err)
	lines := bufio.NewScanner(stream.Body)
	got := false
	deadline := time.AfterFunc(5*time.Second, func() { stream.Body.Close() })
	defer deadline.Stop()
	for i := 0; i < 100 && lines.Scan(); i++ {
		if strings.HasPrefix(lines.Text(), "event: test") {
			got = true
			break
		}
	}
	require.True(t, got, "the event stream must outlive the body timeout: %v", lines.Err())
}
