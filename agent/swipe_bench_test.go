//go:build linux

package agent

import (
	"slices"
	"testing"
	"time"

	"posagent/agent/api"
	"posagent/agent/events"
)

// BenchmarkSwipeToEvent measures the last byte of a swipe written to the
// reader's pty until an SSE client of the agent has decoded the member
// event: framing, decoding, token hash, ledger lookup, fan-out and HTTP.
// It reports p50 and p99 (target p99 < 5 ms).
//
//	go test -run '^$' -bench SwipeToEvent -benchtime 500x ./agent/
func BenchmarkSwipeToEvent(b *testing.B) {
	r := newReader(b)
	rn := start(b, r)
	var en api.EnrolResponse
	rn.post(b, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "card": pan}, &en)
	s := rn.stream(b, "T1")
	rn.waitOnline(b)
	// One warm-up swipe so connections and caches are in place.
	r.write(b, swipe)
	s.next(b, events.TypeMember)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.write(b, swipe)
		t0 := time.Now() // the write returned: the last byte is on the line
		e := s.next(b, events.TypeMember, events.TypeReadError)
		lat = append(lat, time.Since(t0))
		if e.Type != events.TypeMember {
			b.Fatalf("read error on a good swipe: %s", e.Data)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	b.ReportMetric(float64(q(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
