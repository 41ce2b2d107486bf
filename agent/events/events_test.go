package events

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const wait = 20 * time.Second

func TestRingAndResume(t *testing.T) {
	h := NewHub(4)
	start := h.LastID()
	var ids []uint64
	for i := 0; i < 6; i++ {
		e, err := h.Publish(TypeDevice, "T1", map[string]int{"n": i})
		require.NoError(t, err)
		ids = append(ids, e.ID)
	}
	for i := 1; i < len(ids); i++ {
		require.Greater(t, ids[i], ids[i-1])
	}
	require.Greater(t, ids[0], start)

	// Resume within the ring: exactly what came after.
	s, backlog, gap := h.Subscribe("", ids[3], true, 8)
	require.False(t, gap)
	require.Len(t, backlog, 2)
	require.Equal(t, ids[4], backlog[0].ID)
	h.Unsubscribe(s)

	// Resume from before the ring: gap, and what is left.
	s, backlog, gap = h.Subscribe("", ids[0], true, 8)
	require.True(t, gap)
	require.Len(t, backlog, 4)
	h.Unsubscribe(s)

	// An id this hub never issued (from the future) is a gap.
	s, _, gap = h.Subscribe("", ids[5]+100, true, 8)
	require.True(t, gap)
	h.Unsubscribe(s)
	h.Unsubscribe(s) // twice is fine
	require.Equal(t, 0, h.Subscribers())
}

func TestTillFilter(t *testing.T) {
	h := NewHub(16)
	s1, _, _ := h.Subscribe("T1", 0, false, 8)
	s2, _, _ := h.Subscribe("T2", 0, false, 8)
	all, _, _ := h.Subscribe("", 0, false, 8)
	_, _ = h.Publish(TypeMember, "T1", "a")
	_, _ = h.Publish(TypeSync, "", "b")
	require.Equal(t, "a", string(unquote(t, (<-s1.C).Data)))
	require.Equal(t, "b", string(unquote(t, (<-s1.C).Data)))
	require.Equal(t, "b", string(unquote(t, (<-s2.C).Data)), "T2 never sees T1's member")
	require.Len(t, all.C, 2)
	for _, s := range []*Sub{s1, s2, all} {
		h.Unsubscribe(s)
	}
}

func unquote(t *testing.T, raw json.RawMessage) string {
	var s string
	require.NoError(t, json.Unmarshal(raw, &s))
	return s
}

func TestSlowSubscriberDroppedOthersServed(t *testing.T) {
	h := NewHub(64)
	slow, _, _ := h.Subscribe("", 0, false, 2)
	fast, _, _ := h.Subscribe("", 0, false, 64)
	for i := 0; i < 10; i++ {
		_, _ = h.Publish(TypeDevice, "", i) // never blocks
	}
	n := 0
	for range slow.C {
		n++
	}
	require.Equal(t, 2, n)
	require.True(t, slow.Dropped())
	require.Len(t, fast.C, 10)
	h.Unsubscribe(fast)
}

func get(t *testing.T, ctx context.Context, url, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func next(t *testing.T, d *Decoder) Event {
	t.Helper()
	type res struct {
		e   Event
		err error
	}
	ch := make(chan res, 1)
	go func() { e, err := d.Next(); ch <- res{e, err} }()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.e
	case <-time.After(wait):
		t.Fatal("no event in time")
		return Event{}
	}
}

func waitSubs(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for h.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("want %d subscribers, have %d", n, h.Subscribers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSSEStreamAndResume(t *testing.T) {
	h := NewHub(32)
	srv := httptest.NewServer(h.Handler(SSEOptions{}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	resp := get(t, ctx, srv.URL+"?till=T1", "")
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	waitSubs(t, h, 1)
	_, _ = h.Publish(TypeMember, "T2", map[string]string{"who": "other till"})
	e1, _ := h.Publish(TypeMember, "T1", map[string]string{"who": "alice"})
	d := NewDecoder(resp.Body)
	got := next(t, d)
	require.Equal(t, e1.ID, got.ID)
	require.Equal(t, TypeMember, got.Type)
	require.Equal(t, "T1", got.Till)
	require.JSONEq(t, `{"who":"alice"}`, string(got.Data))
	resp.Body.Close()
	waitSubs(t, h, 0)

	// Missed while away, then resume with Last-Event-ID.
	e2, _ := h.Publish(TypeReadError, "T1", map[string]string{"hint": "swipe again"})
	resp = get(t, ctx, srv.URL+"?till=T1", strconv.FormatUint(got.ID, 10))
	d = NewDecoder(resp.Body)
	got = next(t, d)
	require.Equal(t, e2.ID, got.ID)
	require.Equal(t, TypeReadError, got.Type)
	resp.Body.Close()

	// ?after= works the same, and a bad id is a 400.
	resp = get(t, ctx, srv.URL+"?after="+strconv.FormatUint(e1.ID, 10), "")
	got = next(t, NewDecoder(resp.Body))
	require.Equal(t, e2.ID, got.ID)
	resp.Body.Close()
	resp = get(t, ctx, srv.URL+"?after=x", "")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp.Body.Close()
}

func TestSSEGapSendsReset(t *testing.T) {
	h := NewHub(2)
	srv := httptest.NewServer(h.Handler(SSEOptions{}))
	defer srv.Close()
	first, _ := h.Publish(TypeDevice, "", 1)
	for i := 0; i < 3; i++ {
		_, _ = h.Publish(TypeDevice, "", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := get(t, ctx, srv.URL, strconv.FormatUint(first.ID, 10))
	defer resp.Body.Close()
	d := NewDecoder(resp.Body)
	require.Equal(t, TypeReset, next(t, d).Type)
	require.Equal(t, TypeDevice, next(t, d).Type)
	require.Equal(t, TypeDevice, next(t, d).Type)
}

// A client that stops reading is dropped with a resume event; one that
// reads keeps getting every event meanwhile.
func TestSSESlowClientDoesNotBlockOthers(t *testing.T) {
	h := NewHub(4096)
	srv := httptest.NewServer(h.Handler(SSEOptions{Buffer: 4}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := get(t, ctx, srv.URL, "")
	defer slow.Body.Close()
	fast := get(t, ctx, srv.URL, "")
	defer fast.Body.Close()
	waitSubs(t, h, 2)

	fd := NewDecoder(fast.Body)
	const n = 2000
	big := make([]byte, 2048) // fill the slow client's socket quickly
	for i := range big {
		big[i] = 'x'
	}
	for i := 0; i < n; i++ {
		_, err := h.Publish(TypeDevice, "", map[string]any{"i": i, "pad": string(big)})
		require.NoError(t, err)
		got := next(t, fd)
		var v struct{ I int }
		require.NoError(t, json.Unmarshal(got.Data, &v))
		require.Equal(t, i, v.I)
	}
	// The slow client eventually sees the resume event (after whatever it
	// had buffered) and the end of its stream.
	sd := NewDecoder(slow.Body)
	var last Event
	for {
		e, err := sd.Next()
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		require.NoError(t, err)
		last = e
	}
	require.Equal(t, TypeResume, last.Type)
	require.NotZero(t, last.ID)
}
