package messagetest

import (
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

type store interface {
	hq.Store
	hq.Outbox
	hq.MessageDayStore
}

// members in the generated chain: enough for every kind of reminder many
// times over (and 29 February birthdays) in a run of a few seconds.
const members = 300

// outage are days HQ's day jobs did not run; the next day catches up.
var outage = map[string]bool{"2027-06-10": true, "2027-06-11": true}

func TestYearOfRemindersBolt(t *testing.T) {
	c := generate(1, members)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	runYear(t, c, []store{st})
}

// Two HQ processes on one PostgreSQL database (two stores, two pools):
// uploads go to either, and both run every day's job at the same moment.
func TestYearOfRemindersPostgresTwoProcesses(t *testing.T) {
	base := hqtest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Skipf("PostgreSQL tests skipped: POSAGENT_TEST_PG=%q is not reachable: %v", base, err)
	}
	conn.Close(ctx)
	u, drop, err := pg.FreshSchema(ctx, base, "msgtest_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	var ss []store
	for range 2 {
		st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4, PruneEvery: -1})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		ss = append(ss, st)
	}
	runYear(t, generate(2, members), ss)
}

var expiringPoints = regexp.MustCompile(`您有(\d+)分积分`)

func runYear(t *testing.T, c *chain, ss []store) {
	ctx := context.Background()
	set, err := messages.NewSettings(loyalty.DefaultProgram(), nil)
	require.NoError(t, err)
	for _, s := range ss {
		s.SetMessageSettings(set)
	}
	for _, m := range c.members {
		if m.consent {
			require.NoError(t, ss[0].SetConsent(ctx, m.id, true, c.start.t, "store:S1"))
		}
	}
	ran := map[string]int{}
	n := 0
	for d := c.start; !c.end.before(d); d = d.add(1) {
		if !d.before(c.jobsFrom) && !outage[d.String()] {
			// Every process runs the jobs at 00:05, before the day's uploads.
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, s := range ss {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rs, err := hq.RunMessageDays(ctx, s, set, d.at(0, 5))
					mu.Lock()
					defer mu.Unlock()
					require.NoError(t, err)
					for _, r := range rs {
						if r.Ran {
							ran[r.Day]++
						}
					}
				}()
			}
			wg.Wait()
		}
		for _, b := range c.batches[d.String()] {
			n++
			ack, err := ss[n%len(ss)].Ingest(ctx, b)
			require.NoError(t, err)
			require.Empty(t, ack.DeadLettered)
		}
	}
	for d := c.jobsFrom; !c.end.before(d); d = d.add(1) {
		require.Equal(t, 1, ran[d.String()], "day %s ran %d times", d, ran[d.String()])
	}

	got, err := ss[0].Messages(ctx, hq.OutboxFilter{Limit: 1 << 30})
	require.NoError(t, err)
	want, wantCoupons := c.expected()
	gotIDs := map[string]bool{}
	byKind := map[messages.Kind]int{}
	wantKind := map[string]int{}
	for id := range want {
		wantKind[id[:strings.IndexByte(id, '/')]]++
	}
	for _, m := range got {
		require.False(t, gotIDs[m.ID], "message %s twice", m.ID)
		gotIDs[m.ID] = true
		byKind[m.Kind]++
		member := c.byID[m.Member]
		require.NotNil(t, member, m.ID)
		require.Equal(t, member.mobile, m.To, m.ID)
		if m.Kind == messages.KindPointsExpiring {
			p := expiringPoints.FindStringSubmatch(m.Text)
			require.NotNil(t, p, m.Text)
			require.Equal(t, strconv.FormatInt(c.expiringOn1Dec(m.Member), 10), p[1], m.ID)
		}
	}
	var missing, extra []string
	for id := range want {
		if !gotIDs[id] {
			missing = append(missing, id)
		}
	}
	for id := range gotIDs {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	t.Logf("messages by kind: %v (expected %v)", byKind, wantKind)
	require.Empty(t, missing, "expected, not sent")
	require.Empty(t, extra, "sent, not expected")
	// The day jobs' coupons, to every member concerned.
	gotCoupons := map[string]bool{}
	for _, m := range c.members {
		rec, err := ss[0].Member(ctx, m.id)
		require.NoError(t, err)
		for _, cp := range rec.Coupons {
			if cp.Known && (strings.HasPrefix(cp.ID, "birthday-") || strings.HasPrefix(cp.ID, "recall-")) {
				gotCoupons[cp.ID] = true
			}
		}
	}
	require.Equal(t, wantCoupons, gotCoupons)
	require.Greater(t, len(wantCoupons), wantKind["birthday"]+wantKind["recall"], "no member out of reach had a coupon; the generated year tests nothing of it")
	for _, k := range []string{"after_sale", "birthday", "points_expiring", "recall", "tier_upgrade"} {
		require.Positive(t, wantKind[k], "the generated year has no %s reminder; it tests nothing", k)
	}
}
