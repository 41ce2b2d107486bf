//go:build linux

package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices/token"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
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
	timeSwipes(b, r, s)
}

// timeSwipes swipes once to warm up, then b.N times, each timed from the
// last byte written until the member event is decoded; it reports p50,
// p99 and max.
func timeSwipes(b *testing.B, r *reader, s *stream) {
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

// BenchmarkSwipeToEventRefreshed is BenchmarkSwipeToEvent for a till synced
// to a real HQ on loopback (bbolt): each swipe also looks the member up at
// HQ and applies HQ's state to the ledger (a durable write) before the
// event goes out.
//
//	go test -run '^$' -bench SwipeToEventRefreshed -benchtime 300x ./agent/
func BenchmarkSwipeToEventRefreshed(b *testing.B) {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "hq.db"), bolt.Options{IdentityFeed: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	ts := httptest.NewServer(srv)
	b.Cleanup(ts.Close)
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	if err != nil {
		b.Fatal(err)
	}
	key, _ := config.Config{TokenKey: tokenKey}.TokenKeyBytes()
	t9 := &hqtest.Till{Store: "S1", Till: "T9"}
	en := t9.Enrol("M7", time.Now().Add(-time.Hour))
	en.Enrol.Member.CardTokens = []string{token.Hash(key, pan)}
	if _, err := st.Ingest(context.Background(), hqtest.Batch(en, t9.Points("M7", time.Now(), 100, "welcome"))); err != nil {
		b.Fatal(err)
	}
	r := newReader(b)
	rn := startWith(b, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token = ts.URL, tok
		c.Devices = []config.Device{{Name: "msr", Till: "T1", Transport: "serial", Path: r.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "msr"}}
	})
	rn.waitOnline(b)
	deadline := time.Now().Add(wait)
	for _, err := rn.a.led.Member("M7"); err != nil; _, err = rn.a.led.Member("M7") {
		if time.Now().After(deadline) {
			b.Fatal("M7 did not reach the till")
		}
		_ = rn.a.sync.SyncNow(context.Background())
	}
	s := rn.stream(b, "T1")
	timeSwipes(b, r, s)
	resp, err := http.Get(rn.base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`posagent_member_refresh_seconds_count{result="applied"} %d`, b.N+1); !strings.Contains(string(body), want) {
		b.Fatalf("not every swipe was refreshed: want %s in\n%s", want, body)
	}
}
