// Package gatewaytest is a fake message gateway on loopback for tests: it
// verifies HQ's signature, keeps each message id once, and can be told to
// be slow, fail, time out (after taking the message) or refuse.
package gatewaytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"

	"posagent/sync/hq/gateway"
)

// Action is what the gateway does with one request.
type Action struct {
	Delay  time.Duration // wait this long before answering
	Status int           // answer this (0: 200, or 409 for an id taken already); a 5xx or 4xx takes nothing
	// Lose: take the message, then hold the answer for Delay (longer than
	// HQ's timeout): HQ sees a timeout for a message the gateway has.
	Lose bool
}

// Plan picks the action for the n-th request (1-based) carrying id.
type Plan func(id string, n int) Action

// Received is one message the gateway took, with when.
type Received struct {
	gateway.Message
	At time.Time // by the gateway's clock
}

// Gateway is the fake.
type Gateway struct {
	URL    string
	secret []byte
	now    func() time.Time
	srv    *httptest.Server

	mu        sync.Mutex
	plan      Plan
	requests  map[string]int // id → requests seen (signed ones)
	taken     map[string]Received
	dups      map[string]int // id → repeats after it was taken
	lost      map[string]int // id → answers deliberately lost
	inflight  map[string]int
	overlaps  []string // ids posted while a post of the same id was open
	badSigned int
}

// New starts a fake gateway on 127.0.0.1 with the secret; now is its clock
// (nil: time.Now). Close it when done.
func New(secret []byte, now func() time.Time, plan Plan) *Gateway {
	if now == nil {
		now = time.Now
	}
	g := &Gateway{secret: secret, now: now, plan: plan, requests: map[string]int{}, taken: map[string]Received{},
		dups: map[string]int{}, lost: map[string]int{}, inflight: map[string]int{}}
	g.srv = httptest.NewUnstartedServer(http.HandlerFunc(g.serve))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("gatewaytest: listen on loopback: %v", err))
	}
	g.srv.Listener = ln
	g.srv.Start()
	g.URL = g.srv.URL + "/send"
	return g
}

// Close stops the gateway.
func (g *Gateway) Close() { g.srv.CloseClientConnections(); g.srv.Close() }

// SetPlan replaces the plan.
func (g *Gateway) SetPlan(p Plan) { g.mu.Lock(); g.plan = p; g.mu.Unlock() }

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := gateway.Verify(g.secret, r.Header, body, g.now(), 0); err != nil {
		g.mu.Lock()
		g.badSigned++
		g.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var m gateway.Message
	if err := json.Unmarshal(body, &m); err != nil || m.ID == "" || r.Header.Get(gateway.HeaderIdempotency) != m.ID {
		http.Error(w, "bad message", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.requests[m.ID]++
	n := g.requests[m.ID]
	if g.inflight[m.ID] > 0 {
		g.overlaps = append(g.overlaps, m.ID)
	}
	g.inflight[m.ID]++
	var a Action
	if g.plan != nil {
		a = g.plan(m.ID, n)
	}
	g.mu.Unlock()
	defer func() { g.mu.Lock(); g.inflight[m.ID]--; g.mu.Unlock() }()

	if a.Status != 0 && a.Status/100 != 2 { // refuse, taking nothing
		sleep(r, a.Delay)
		http.Error(w, fmt.Sprintf("fake gateway says %d", a.Status), a.Status)
		return
	}
	status := g.take(m, a.Lose)
	sleep(r, a.Delay)
	if a.Lose {
		return // the client has given up by now
	}
	w.WriteHeader(status)
}

// take keeps m once by id: 200 the first time, 409 after.
func (g *Gateway) take(m gateway.Message, lose bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if lose {
		g.lost[m.ID]++
	}
	if _, ok := g.taken[m.ID]; ok {
		g.dups[m.ID]++
		return http.StatusConflict
	}
	g.taken[m.ID] = Received{Message: m, At: g.now()}
	return http.StatusOK
}

func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

// Taken lists the messages taken, by id.
func (g *Gateway) Taken() []Received {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Received, 0, len(g.taken))
	for _, r := range g.taken {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Stats are the gateway's counts.
type Stats struct {
	Requests   int            // signed requests
	Taken      int            // distinct ids taken
	Duplicates map[string]int // repeats of an id already taken
	Lost       map[string]int // answers lost on purpose
	Overlaps   []string       // ids posted twice at once
	BadSigned  int            // requests refused for their signature
}

// Stats returns a copy of the counts.
func (g *Gateway) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{Taken: len(g.taken), Duplicates: map[string]int{}, Lost: map[string]int{}, Overlaps: append([]string(nil), g.overlaps...), BadSigned: g.badSigned}
	for _, n := range g.requests {
		s.Requests += n
	}
	for k, v := range g.dups {
		s.Duplicates[k] = v
	}
	for k, v := range g.lost {
		s.Lost[k] = v
	}
	return s
}
