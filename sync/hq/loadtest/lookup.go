package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"posagent/sync/wire"
)

// lookups are the stores' member look-ups at HQ during the day, made by a
// fixed set of workers so that a slow HQ delays look-ups, not the writing
// of the day; a look-up that finds every worker busy and the queue full is
// counted as skipped, never waited for.
type lookups struct {
	on     bool
	hc     *http.Client
	tokens []string
	q      chan lookup
	wg     sync.WaitGroup
	once   sync.Once

	ok, unknown, failed, skipped atomic.Int64
	mu                           sync.Mutex
	lat                          []time.Duration
}

type lookup struct {
	store int
	id    string
}

// A till waits for one look-up at a time; a chain's tills wait side by
// side, so the workers are many (each mostly waiting on HQ).
const (
	lookupWorkers = 512
	lookupQueue   = 16384
)

func newLookups(on bool, hc *http.Client, tokens []string) *lookups {
	l := &lookups{on: on, hc: hc, tokens: tokens, q: make(chan lookup, lookupQueue)}
	if !on {
		return l
	}
	for range lookupWorkers {
		l.wg.Go(func() {
			for r := range l.q {
				l.do(r)
			}
		})
	}
	return l
}

func (l *lookups) ask(store int, id string) {
	if !l.on {
		return
	}
	select {
	case l.q <- lookup{store, id}:
	default:
		l.skipped.Add(1)
	}
}

func (l *lookups) do(r lookup) {
	// The till's own bound on the wait (agent: member_refresh_timeout).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hq"+wire.PathMembers+url.PathEscape(r.id), nil)
	if err != nil {
		l.failed.Add(1)
		return
	}
	req.Header.Set("Authorization", "Bearer "+l.tokens[r.store])
	t0 := time.Now()
	resp, err := l.hc.Do(req)
	if err != nil {
		l.failed.Add(1)
		return
	}
	defer resp.Body.Close()
	var lk wire.MemberLookup
	switch {
	case resp.StatusCode == http.StatusNotFound:
		// A member whose enrolment is still in another till's backlog.
		_, _ = io.Copy(io.Discard, resp.Body)
		l.unknown.Add(1)
	case resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&lk) != nil:
		l.failed.Add(1)
	default:
		l.ok.Add(1)
		d := time.Since(t0)
		l.mu.Lock()
		l.lat = append(l.lat, d)
		l.mu.Unlock()
	}
}

// close waits for the look-ups asked so far.
func (l *lookups) close() {
	l.once.Do(func() {
		close(l.q)
		l.wg.Wait()
	})
}

func (l *lookups) report(out io.Writer) {
	if !l.on {
		return
	}
	l.mu.Lock()
	p50, p99, mx := percentiles(l.lat)
	l.mu.Unlock()
	fmt.Fprintf(out, "member look-ups: %d answered, %d not (yet) at HQ, %d failed or over 2 s, %d skipped (queue full); round trip p50 %v p99 %v max %v\n",
		l.ok.Load(), l.unknown.Load(), l.failed.Load(), l.skipped.Load(), p50.Round(time.Millisecond), p99.Round(time.Millisecond), mx.Round(time.Millisecond))
}
