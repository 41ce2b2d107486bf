package hq_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/gateway/gatewaytest"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

var gwSecret = []byte("0123456789abcdef-gateway")

// fakeClock runs at wall speed from base; Skip jumps it ahead.
type fakeClock struct {
	base, start time.Time
	skip        atomic.Int64
}

func newClock(base time.Time) *fakeClock { return &fakeClock{base: base, start: time.Now()} }
func (c *fakeClock) Now() time.Time {
	return c.base.Add(time.Since(c.start) + time.Duration(c.skip.Load()))
}
func (c *fakeClock) Skip(d time.Duration) { c.skip.Add(int64(d)) }

// outboxStores opens each store kind for a test: bbolt always, PostgreSQL
// when POSAGENT_TEST_PG names one.
func outboxStores(t *testing.T) map[string]func(t *testing.T) hq.Store {
	out := map[string]func(t *testing.T) hq.Store{
		"bolt": func(t *testing.T) hq.Store {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
	if url := os.Getenv("POSAGENT_TEST_PG"); url != "" {
		out["pg"] = func(t *testing.T) hq.Store { return openPGSchema(t, pgSchema(t, url)) }
	} else {
		t.Log("PostgreSQL outbox sender tests skipped: set POSAGENT_TEST_PG")
	}
	return out
}

func pgSchema(t *testing.T, url string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, drop, err := pg.FreshSchema(ctx, url, "hqsend_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	return u
}

func openPGSchema(t *testing.T, u string) hq.Store {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func runSender(t *testing.T, s *hq.Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statuses(t *testing.T, ob hq.Outbox) map[string]string {
	ms, err := ob.Messages(context.Background(), hq.OutboxFilter{Limit: 10000})
	require.NoError(t, err)
	out := map[string]string{}
	for _, m := range ms {
		out[m.ID] = m.Status
	}
	return out
}

// A gateway that is slow, fails, loses answers and refuses: every message
// that should go out is taken exactly once by id (repeats only where an
// answer was lost), none in quiet hours, none for a member who opted out
// or never consented.
func TestSenderDeliversOnceOutsideQuietHours(t *testing.T) {
	for name, open := range outboxStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			ob := st.(hq.Outbox)
			sh, err := time.LoadLocation("Asia/Shanghai")
			require.NoError(t, err)
			ny, err := time.LoadLocation("America/New_York")
			require.NoError(t, err)
			require.NoError(t, st.AddCredential(ctx, hq.Credential{Role: hq.RoleStore, ID: "S1", TimeZone: "Asia/Shanghai", TokenHash: hq.HashToken("t1"), CreatedAt: time.Now()}))
			require.NoError(t, st.AddCredential(ctx, hq.Credential{Role: hq.RoleStore, ID: "S2", TimeZone: "America/New_York", TokenHash: hq.HashToken("t2"), CreatedAt: time.Now()}))
			// 10:00 in Shanghai is 22:00 the evening before in New York.
			clk := newClock(time.Date(2026, 3, 10, 10, 0, 0, 0, sh))
			quiet, err := hq.ParseQuietHours("21:00-09:00")
			require.NoError(t, err)

			const refused = "m/013"
			plan := func(id string, n int) gatewaytest.Action {
				var i int
				fmt.Sscanf(id, "m/%d", &i)
				switch {
				case id == refused:
					return gatewaytest.Action{Status: 400}
				case i%5 == 1 && n <= 2:
					return gatewaytest.Action{Status: 503}
				case i%5 == 2:
					return gatewaytest.Action{Delay: 100 * time.Millisecond}
				case i%7 == 3 && n == 1:
					return gatewaytest.Action{Lose: true, Delay: 2 * time.Second}
				}
				return gatewaytest.Action{}
			}
			gw := gatewaytest.New(gwSecret, clk.Now, plan)
			t.Cleanup(gw.Close)

			var ms []messages.Message
			want := map[string]bool{}
			for i := range 50 {
				member, store := fmt.Sprintf("M%02d", i%25), "S1"
				if i >= 40 {
					store = "S2"
				}
				m := hqtest.Msg(fmt.Sprintf("m/%03d", i), member, clk.Now().Add(-time.Minute))
				m.Store = store
				ms = append(ms, m)
			}
			for i := range 25 {
				if i == 24 { // M24 never consents
					continue
				}
				require.NoError(t, ob.SetConsent(ctx, fmt.Sprintf("M%02d", i), true, clk.Now().Add(-time.Hour), "test"))
			}
			require.NoError(t, ob.Enqueue(ctx, ms))
			// M23 opts out after its messages were written: checked at send.
			require.NoError(t, ob.OptOut(ctx, "M23", clk.Now(), "gateway"))
			for i, m := range ms {
				if m.Member != "M24" && m.Member != "M23" && m.ID != refused {
					want[m.ID] = i >= 40
				}
			}

			// The timeout leaves the slow answers (100 ms) room on a busy box;
			// only the lost ones (2 s) run past it.
			s, err := hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: gwSecret, Timeout: time.Second,
				Rate: 500, Burst: 5, Batch: 4, MaxAttempts: 5, Backoff: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
				Poll: 20 * time.Millisecond, Quiet: quiet, Now: clk.Now})
			require.NoError(t, err)
			runSender(t, s)

			countTaken := func(s2 bool) int {
				n := 0
				for _, r := range gw.Taken() {
					if r.Store == "S2" == s2 {
						n++
					}
				}
				return n
			}
			wantS1 := 0
			for _, s2 := range want {
				if !s2 {
					wantS1++
				}
			}
			waitFor(t, "the Shanghai store's messages", 20*time.Second, func() bool {
				st := statuses(t, ob)
				return countTaken(false) == wantS1 && st[refused] == hq.MsgDead
			})
			time.Sleep(200 * time.Millisecond)
			require.Zero(t, countTaken(true), "nothing for New York in its quiet hours")

			// 09:05 in New York, 21:05 in Shanghai.
			clk.Skip(11*time.Hour + 5*time.Minute)
			late := hqtest.Msg("m/late", "M01", clk.Now())
			require.NoError(t, ob.Enqueue(ctx, []messages.Message{late}))
			waitFor(t, "the New York store's messages", 20*time.Second, func() bool { return countTaken(true) == len(want)-wantS1 })
			time.Sleep(200 * time.Millisecond)

			stats := gw.Stats()
			var got []string
			for _, r := range gw.Taken() {
				got = append(got, r.ID)
				loc := sh
				if r.Store == "S2" {
					loc = ny
				}
				_, inQuiet := quiet.Until(r.At, loc)
				require.False(t, inQuiet, "%s arrived at %s local", r.ID, r.At.In(loc).Format(time.Kitchen))
			}
			var wantIDs []string
			for id := range want {
				wantIDs = append(wantIDs, id)
			}
			sort.Strings(wantIDs)
			require.Equal(t, wantIDs, got, "every message once by id; none for M23 (opted out), M24 (no consent), none refused, not the one due in quiet hours")
			require.Empty(t, stats.Overlaps, "one message posted twice at once")
			require.Zero(t, stats.BadSigned)
			require.NotEmpty(t, stats.Lost, "the plan loses answers")
			for id := range stats.Duplicates {
				require.Contains(t, stats.Lost, id, "%s repeated though its answer was not lost", id)
			}
			final := statuses(t, ob)
			for id := range want {
				require.Equal(t, hq.MsgSent, final[id], id)
			}
			require.Equal(t, hq.MsgDead, final[refused])
			require.Equal(t, hq.MsgPending, final["m/late"], "held back by Shanghai's quiet hours")
			for _, m := range ms {
				if m.Member == "M23" {
					require.Equal(t, hq.MsgSuppressed, final[m.ID])
				}
				if m.Member == "M24" {
					require.NotContains(t, final, m.ID, "never stored without consent")
				}
			}
			dead, err := ob.Messages(ctx, hq.OutboxFilter{Status: hq.MsgDead})
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Contains(t, dead[0].LastError, "400")
		})
	}
}

// Failures past MaxAttempts end in the dead list; retry sends again.
func TestSenderDeadLetterAndRetry(t *testing.T) {
	for name, open := range outboxStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			ob := st.(hq.Outbox)
			var down atomic.Bool
			down.Store(true)
			gw := gatewaytest.New(gwSecret, nil, func(string, int) gatewaytest.Action {
				if down.Load() {
					return gatewaytest.Action{Status: 502}
				}
				return gatewaytest.Action{}
			})
			t.Cleanup(gw.Close)
			require.NoError(t, ob.SetConsent(ctx, "M1", true, time.Now(), "test"))
			require.NoError(t, ob.Enqueue(ctx, []messages.Message{hqtest.Msg("d/1", "M1", time.Now())}))
			s, err := hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: gwSecret, Timeout: time.Second, Rate: 100,
				MaxAttempts: 3, Backoff: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond, Poll: 10 * time.Millisecond})
			require.NoError(t, err)
			runSender(t, s)
			waitFor(t, "the dead letter", 10*time.Second, func() bool { return statuses(t, ob)["d/1"] == hq.MsgDead })
			require.Equal(t, 3, gw.Stats().Requests, "three attempts, then dead")
			dead, err := ob.Messages(ctx, hq.OutboxFilter{Status: hq.MsgDead})
			require.NoError(t, err)
			require.Contains(t, dead[0].LastError, "502")
			down.Store(false)
			require.NoError(t, ob.RetryMessage(ctx, "d/1"))
			waitFor(t, "the retried message", 10*time.Second, func() bool { return statuses(t, ob)["d/1"] == hq.MsgSent })
			require.Equal(t, 1, gw.Stats().Taken)
		})
	}
}

// A gateway that does not know the secret refuses every request (401): the
// message is dead at once, not retried.
func TestSenderWrongSecret(t *testing.T) {
	st := outboxStores(t)["bolt"](t)
	ob := st.(hq.Outbox)
	ctx := context.Background()
	gw := gatewaytest.New([]byte("another-secret-of-16+"), nil, nil)
	t.Cleanup(gw.Close)
	require.NoError(t, ob.SetConsent(ctx, "M1", true, time.Now(), "test"))
	require.NoError(t, ob.Enqueue(ctx, []messages.Message{hqtest.Msg("w/1", "M1", time.Now())}))
	s, err := hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: gwSecret, Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	runSender(t, s)
	waitFor(t, "the refusal", 10*time.Second, func() bool { return statuses(t, ob)["w/1"] == hq.MsgDead })
	require.Equal(t, 1, gw.Stats().BadSigned)
	require.Zero(t, gw.Stats().Taken)

	_, err = hq.NewSender(st, hq.SenderConfig{URL: "ftp://x", Secret: gwSecret})
	require.ErrorContains(t, err, "http")
	_, err = hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: []byte("short")})
	require.ErrorContains(t, err, "16 bytes")
}

// Two senders on one PostgreSQL database, each with its own pool: no
// message is posted by both at once, and none twice.
func TestSenderTwoOnOneDatabase(t *testing.T) {
	url := hqtest.PostgresURL(t)
	u := pgSchema(t, url)
	a, b := openPGSchema(t, u), openPGSchema(t, u)
	ctx := context.Background()
	gw := gatewaytest.New(gwSecret, nil, func(id string, n int) gatewaytest.Action {
		return gatewaytest.Action{Delay: 15 * time.Millisecond}
	})
	t.Cleanup(gw.Close)
	ob := a.(hq.Outbox)
	var ms []messages.Message
	for i := range 120 {
		member := fmt.Sprintf("M%d", i%10)
		if i < 10 {
			require.NoError(t, ob.SetConsent(ctx, member, true, time.Now().Add(-time.Hour), "test"))
		}
		ms = append(ms, hqtest.Msg(fmt.Sprintf("two/%03d", i), member, time.Now().Add(-time.Minute)))
	}
	require.NoError(t, ob.Enqueue(ctx, ms))
	for _, st := range []hq.Store{a, b} {
		s, err := hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: gwSecret, Timeout: 2 * time.Second, Rate: 1000, Burst: 10,
			Batch: 3, Poll: 10 * time.Millisecond})
		require.NoError(t, err)
		runSender(t, s)
	}
	waitFor(t, "all messages", 30*time.Second, func() bool { return gw.Stats().Taken == len(ms) })
	time.Sleep(100 * time.Millisecond)
	stats := gw.Stats()
	require.Empty(t, stats.Overlaps)
	require.Empty(t, stats.Duplicates)
	require.Equal(t, len(ms), stats.Requests)
}

// The rate limit holds: at 20 a second with a burst of 1, no second of
// the gateway's log holds more than 21 messages, and 30 take at least
// 1.45 s.
func TestSenderRateLimit(t *testing.T) {
	st := outboxStores(t)["bolt"](t)
	ob := st.(hq.Outbox)
	ctx := context.Background()
	gw := gatewaytest.New(gwSecret, nil, nil)
	t.Cleanup(gw.Close)
	require.NoError(t, ob.SetConsent(ctx, "M1", true, time.Now().Add(-time.Hour), "test"))
	var ms []messages.Message
	for i := range 30 {
		ms = append(ms, hqtest.Msg(fmt.Sprintf("r/%02d", i), "M1", time.Now().Add(-time.Minute)))
	}
	require.NoError(t, ob.Enqueue(ctx, ms))
	s, err := hq.NewSender(st, hq.SenderConfig{URL: gw.URL, Secret: gwSecret, Rate: 20, Burst: 1, Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	runSender(t, s)
	waitFor(t, "all messages", 20*time.Second, func() bool { return gw.Stats().Taken == len(ms) })
	var at []time.Time
	for _, r := range gw.Taken() {
		at = append(at, r.At)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	require.GreaterOrEqual(t, at[len(at)-1].Sub(at[0]), 1450*time.Millisecond)
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		require.LessOrEqual(t, n, 21, "messages in the second from %s", at[i])
	}
}
