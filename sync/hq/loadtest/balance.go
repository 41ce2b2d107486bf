package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"posagent/sync/wire"
)

// balancer is the stores' HTTP transport: each request goes to the next HQ
// process in turn (round robin, no stickiness; a till's next batch may land
// at another process), through a connection pool per process. It reads
// HQ's acks on the way back to credit each process with the entries it
// newly stored, and times each upload.
type balancer struct {
	backends []*backend
	next     atomic.Uint64

	mu     sync.Mutex
	marks  map[string]uint64      // store/till → highest ack seen
	ranges map[string][][2]uint64 // store/till → batches newly stored, for the raw COPY replay
	lat    []time.Duration        // upload round trips answered 200
	pulls  []time.Duration        // changes pages answered 200, round trips
	keep   bool
}

type backend struct {
	host    string
	tr      *http.Transport
	uploads atomic.Int64 // answered 200
	entries atomic.Int64 // newly stored by its uploads
	refused atomic.Int64 // 429/503 (back-pressure) answers
	failed  atomic.Int64 // transport errors and other non-2xx answers
	cut     atomic.Int64 // of them: the client gave up waiting (its 30 s request timeout)
	pulls   atomic.Int64 // changes pages answered 200
}

func newBalancer(hosts []string, conns int, keepRanges bool) *balancer {
	b := &balancer{marks: map[string]uint64{}, ranges: map[string][][2]uint64{}, keep: keepRanges}
	per := max(1, conns/len(hosts))
	for _, h := range hosts {
		b.backends = append(b.backends, &backend{host: h, tr: &http.Transport{
			MaxConnsPerHost: per, MaxIdleConnsPerHost: per, IdleConnTimeout: 90 * time.Second,
		}})
	}
	return b
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	be := b.backends[b.next.Add(1)%uint64(len(b.backends))]
	r := req.Clone(req.Context())
	r.URL.Host, r.Host = be.host, be.host
	upload := r.URL.Path == wire.PathBatches
	t0 := time.Now()
	resp, err := be.tr.RoundTrip(r)
	if err != nil {
		be.failed.Add(1)
		if req.Context().Err() != nil {
			be.cut.Add(1)
		}
		return nil, err
	}
	if r.URL.Path == wire.PathChanges && resp.StatusCode == http.StatusOK {
		be.pulls.Add(1)
		rt := time.Since(t0) // to the headers: the page is read by the client
		b.mu.Lock()
		b.pulls = append(b.pulls, rt)
		b.mu.Unlock()
	}
	if !upload {
		return resp, nil
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		be.refused.Add(1)
		return resp, nil
	default:
		be.failed.Add(1)
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		be.failed.Add(1)
		if req.Context().Err() != nil {
			be.cut.Add(1)
		}
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rt := time.Since(t0)
	var ack wire.Ack
	if json.Unmarshal(body, &ack) != nil {
		return resp, nil // the client reports what is wrong with it
	}
	be.uploads.Add(1)
	k := ack.Store + "/" + ack.Till
	b.mu.Lock()
	b.lat = append(b.lat, rt)
	if prev := b.marks[k]; ack.Acked > prev {
		// One till's uploads go one at a time, so the mark only grows
		// here and the difference is what this upload stored.
		b.marks[k] = ack.Acked
		be.entries.Add(int64(ack.Acked - prev))
		if b.keep {
			b.ranges[k] = append(b.ranges[k], [2]uint64{prev + 1, ack.Acked})
		}
	}
	b.mu.Unlock()
	return resp, nil
}

func (b *balancer) close() {
	for _, be := range b.backends {
		be.tr.CloseIdleConnections()
	}
}

// percentiles returns p50, p99 and max of ds (sorted in place).
func percentiles(ds []time.Duration) (p50, p99, mx time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	at := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return at(0.50), at(0.99), ds[len(ds)-1]
}
