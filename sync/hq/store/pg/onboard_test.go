package pg_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// ledgerInbox hands pulled states to a till ledger, as the agent does; a
// snapshot goes through the ledger's bulk load.
type ledgerInbox struct {
	l      *ledger.Ledger
	spent  *time.Duration // time in ApplyMemberStates, when set
	stages *loadStages    // the bulk load's stages, when set
}

// loadStages splits the till's wall time of a snapshot load: waiting for
// the next decoded batch (HQ, the wire and the decode), in Add, in Finish.
type loadStages struct {
	last                     time.Time // the last Add returned (or the start)
	first, wait, add, finish time.Duration
	finishCPU, finishQueue   time.Duration
}

// runQueueWait is how long this process's threads have waited for a CPU
// while runnable (/proc/self/task/*/schedstat, second field; 0 where
// there is none): on a shared machine, wall time beyond CPU time that is
// not this is waiting on the disk or the network.
func runQueueWait() time.Duration {
	files, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var total time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) >= 2 {
			ns, _ := strconv.ParseInt(fs[1], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total
}

func (in ledgerInbox) ApplyMemberStates(states []wire.MemberState) error {
	if in.spent != nil {
		defer func(t time.Time) { *in.spent += time.Since(t) }(time.Now())
	}
	out, err := ledgerStates(states)
	if err != nil {
		return err
	}
	return in.l.ApplyMemberStates(out)
}

// LoadSnapshot takes a snapshot through the ledger's bulk load.
func (in ledgerInbox) LoadSnapshot() (client.SnapshotLoad, error) {
	ld, err := in.l.LoadMembers()
	return ledgerLoad{ld: ld, spent: in.spent, stages: in.stages}, err
}

type ledgerLoad struct {
	ld     *ledger.MemberLoad
	spent  *time.Duration
	stages *loadStages
}

func (l ledgerLoad) Add(states []wire.MemberState) error {
	if st := l.stages; st != nil {
		now := time.Now()
		if st.first == 0 {
			st.first = now.Sub(st.last)
		}
		st.wait += now.Sub(st.last)
		defer func() { st.last = time.Now(); st.add += st.last.Sub(now) }()
	}
	defer func(t time.Time) { *l.spent += time.Since(t) }(time.Now())
	out, err := ledgerStates(states)
	if err != nil {
		return err
	}
	return l.ld.Add(out)
}

func (l ledgerLoad) Finish() error {
	if st := l.stages; st != nil {
		now, c, q := time.Now(), cpuTime(), runQueueWait()
		st.wait += now.Sub(st.last) // the end of the stream
		defer func() { st.finish, st.finishCPU, st.finishQueue = time.Since(now), cpuTime()-c, runQueueWait()-q }()
	}
	defer func(t time.Time) { *l.spent += time.Since(t) }(time.Now())
	return l.ld.Finish()
}

func (l ledgerLoad) Abort() { l.ld.Abort() }

func ledgerStates(states []wire.MemberState) ([]ledger.MemberState, error) {
	out := make([]ledger.MemberState, 0, len(states))
	for _, s := range states {
		ms := ledger.MemberState{Member: s.Member, Points: s.Points, StoredValue: s.StoredValue, Coupons: s.Coupons, Flagged: s.Flagged}
		if s.LastSale != "" {
			t, err := time.Parse(time.RFC3339, s.LastSale)
			if err != nil {
				return nil, err
			}
			ms.LastSale = t
		}
		out = append(out, ms)
	}
	return out, nil
}

func (in ledgerInbox) ApplyProgram(src []byte) error     { return in.l.ApplyProgram(src) }
func (in ledgerInbox) SyncCursor() (string, error)       { return in.l.SyncCursor() }
func (in ledgerInbox) SetSyncCursor(cursor string) error { return in.l.SetSyncCursor(cursor) }

// populate writes n members the way ingest leaves them (one change log row
// per transaction of 5,000 enrolments), then a history: half of them
// change again in transactions of 500, leaving their first log entries
// stale.
func populate(ctx context.Context, t *testing.T, st *pg.Store, n int) {
	const per = 5000
	for from := 0; from < n; from += per {
		_, err := st.Pool().Exec(ctx, `WITH m AS (
			INSERT INTO members (id, data, points, stored_value, last_sale)
			SELECT 'M' || lpad(i::text, 8, '0'),
				jsonb_build_object('id', 'M' || lpad(i::text, 8, '0'), 'name', 'Member ' || i, 'tier', 'silver',
					'mobile', '138' || lpad(i::text, 8, '0'), 'enrolled_at', '2025-01-01T00:00:00Z',
					'card_tokens', jsonb_build_array(md5('c' || i) || md5('d' || i))),
				i % 997, (i % 13) * 100, '2026-01-01T00:00:00Z'::timestamptz + i * interval '1 second'
			FROM generate_series($1::int, $2::int) AS i RETURNING id)
			INSERT INTO member_changes (ids) SELECT array_agg(id) FROM m`, from, min(from+per, n)-1)
		require.NoError(t, err)
	}
	for from := 0; from < n; from += 1000 {
		_, err := st.Pool().Exec(ctx, `WITH m AS (
			UPDATE members SET points = points + 10, xid = pg_current_xact_id()
			WHERE id IN (SELECT 'M' || lpad(i::text, 8, '0') FROM generate_series($1::int, $2::int, 2) AS i) RETURNING id)
			INSERT INTO member_changes (ids) SELECT array_agg(id) FROM m`, from, min(from+1000, n)-1)
		require.NoError(t, err)
	}
	_, err := st.Pool().Exec(ctx, `VACUUM ANALYZE members, member_changes`)
	require.NoError(t, err)
}

// TestOnboardBench: a new till with an empty ledger onboarded from an HQ
// on PostgreSQL holding 100k and 1M members (serve, transfer, apply, one
// lookup by card), and the time of a feed page at each size.
func TestOnboardBench(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") == "" {
		t.Skip("set POSAGENT_HQ_BENCH=1 to run the onboarding benchmark")
	}
	base := testURL(t)
	sizes := benchSizes(t, "POSAGENT_HQ_BENCH_MEMBERS", 100_000, 1_000_000)
	// Larger sizes (5M) measure the feed page and HQ's produce only.
	onboardMax := 1_000_000
	if v := os.Getenv("POSAGENT_HQ_BENCH_ONBOARD_MAX"); v != "" {
		var err error
		onboardMax, err = strconv.Atoi(v)
		require.NoError(t, err, "POSAGENT_HQ_BENCH_ONBOARD_MAX")
	}
	var bin string // posagent, built for the first onboarding
	for _, n := range sizes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		u, drop, err := pg.FreshSchema(ctx, base, "hqbench_")
		require.NoError(t, err)
		st, err := pg.Open(ctx, u, pg.Options{PruneEvery: -1})
		require.NoError(t, err)
		t0 := time.Now()
		populate(ctx, t, st, n)
		t.Logf("%d members: populated in %v", n, time.Since(t0).Round(time.Millisecond))

		// Feed pages at limit 500: from the start, and from the middle.
		var cur string
		var firsts, lasts []time.Duration
		for i := 0; i < 5000; i++ {
			s := time.Now()
			ch, err := st.Changes(ctx, cur, 500)
			require.NoError(t, err)
			d := time.Since(s)
			if i < 20 {
				firsts = append(firsts, d)
			}
			lasts = append(lasts, d)
			if len(lasts) > 20 {
				lasts = lasts[1:]
			}
			cur = ch.Cursor
			if !ch.More {
				break
			}
		}
		var plan []string
		rows, err := st.Pool().Query(ctx, `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) `+pg.FeedPageSQL, uint64(0), "", 501, uint64(0), []uint64{}, uint64(1)<<62) // $6: no transaction held back
		require.NoError(t, err)
		for rows.Next() {
			var l string
			require.NoError(t, rows.Scan(&l))
			plan = append(plan, l)
		}
		require.NoError(t, rows.Err())
		t.Logf("%d members: feed page (limit 500) median %v over the first 20 pages, %v over the last 20", n, median(firsts), median(lasts))
		t.Logf("feed page plan:\n%s", strings.Join(plan, "\n"))
		require.NotContains(t, strings.Join(plan, "\n"), "Seq Scan", "a feed page must not scan a table")

		// HQ's share alone: every member read from PostgreSQL and made a
		// state, nothing sent.
		s0, c0 := time.Now(), cpuTime()
		var produced int
		_, err = st.Snapshot(ctx, func(wire.MemberState) error { produced++; return nil })
		require.NoError(t, err)
		require.Equal(t, n, produced)
		t.Logf("%d members: HQ produce (read from PostgreSQL, scanned into states) %v, CPU in this process %v",
			n, time.Since(s0).Round(time.Millisecond), (cpuTime() - c0).Round(time.Millisecond))
		if n > onboardMax {
			t.Logf("%d members: onboarding skipped (above POSAGENT_HQ_BENCH_ONBOARD_MAX=%d)", n, onboardMax)
			require.NoError(t, st.Close())
			require.NoError(t, drop())
			cancel()
			continue
		}

		// Onboarding: HQ serving over loopback HTTP, a till with an empty ledger.
		srv := hq.NewServer(st, hq.Options{})
		tok, err := srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
		require.NoError(t, err)
		ts := httptest.NewServer(srv)
		// HQ produce, encode and send, the transfer and the till's decode,
		// states thrown away: the stream's whole cost.
		formats := []string{wire.SnapshotBinary}
		if os.Getenv("POSAGENT_HQ_BENCH_JSON") != "" {
			formats = append(formats, "application/x-ndjson")
		}
		for _, f := range formats {
			s0, c0 := time.Now(), cpuTime()
			got, wireBytes := readSnapshot(ctx, t, ts.URL, tok, f)
			require.Equal(t, n, got)
			t.Logf("%d members: stream %s (HQ produce+encode, transfer, till decode) %v, CPU in this process (HQ and till) %v, %.1f MB on the wire (%d bytes/member)",
				n, f, time.Since(s0).Round(time.Millisecond), (cpuTime() - c0).Round(time.Millisecond), float64(wireBytes)/1e6, wireBytes/int64(n))
		}
		// The snapshot alone, into memory: HQ's and the wire's share.
		mem := memstore.New("S1")
		mc, err := client.New(client.Config{URL: ts.URL, Token: tok, Store: "S1"}, mem, mem, nil)
		require.NoError(t, err)
		s0 = time.Now()
		require.NoError(t, mc.SyncNow(ctx))
		t.Logf("%d members: snapshot served and decoded into memory in %v", n, time.Since(s0).Round(time.Millisecond))
		require.Equal(t, n, mem.Members())
		mem, mc = nil, nil

		// The onboarding itself against a real `hq serve --pg` process,
		// so HQ's CPU, PostgreSQL's and the till's (this process) are
		// told apart, with the till's wall time split into stages.
		if bin == "" {
			bin = filepath.Join(t.TempDir(), "posagent")
			build := exec.Command("go", "build", "-o", bin, "posagent/cmd/posagent")
			build.Stderr = os.Stderr
			require.NoError(t, build.Run())
		}
		p, err := hqrun.StartHQ(hqrun.HQ{Command: []string{bin, "hq"}, PG: u, AdminToken: "onboard-bench-admin"})
		require.NoError(t, err)
		require.NoError(t, p.Wait(time.Minute))
		l, err := ledger.Open(t.TempDir()+"/ledger.db", ledger.Options{Store: "S1", Till: "T1"})
		require.NoError(t, err)
		out := memstore.New("S1")
		var spent time.Duration
		stages := &loadStages{}
		c, err := client.New(client.Config{URL: p.URL, Token: tok, Store: "S1"}, out, ledgerInbox{l: l, spent: &spent, stages: stages}, nil)
		require.NoError(t, err)
		hq0, pg0, box0, till0, q0 := hqrun.ProcCPU(p.Cmd.Process.Pid, false), hqrun.PostgresCPU(), hqrun.BoxCPU(), cpuTime(), runQueueWait()
		s := time.Now()
		stages.last = s
		require.NoError(t, c.SyncNow(ctx))
		applied := time.Since(s)
		k := n - 3
		mv, err := l.MemberByToken(md5s("c", k) + md5s("d", k))
		require.NoError(t, err)
		ready := time.Since(s)
		hqCPU, pgCPU, boxCPU, tillCPU, tillQueue := hqrun.ProcCPU(p.Cmd.Process.Pid, false)-hq0, hqrun.PostgresCPU()-pg0, hqrun.BoxCPU()-box0, cpuTime()-till0, runQueueWait()-q0
		p.Stop()
		require.Equal(t, fmt.Sprintf("M%08d", k), mv.Member.ID)
		t.Logf("%d members: onboarding (snapshot served, transferred, applied) %v, of which in the ledger's apply %v; ready to look up %v (%.0f members/s); target < 30 s for 1M",
			n, applied.Round(time.Millisecond), spent.Round(time.Millisecond), ready.Round(time.Millisecond), float64(n)/ready.Seconds())
		t.Logf("%d members: stages (wall) till waiting on the stream %v (first batch after %v), Add %v, Finish %v (CPU %v, threads waiting for a CPU %v); CPU: till %v (its threads waited for a CPU %v), hq serve %v, PostgreSQL %v; the box's busy CPU meanwhile %v of %v available (%d cores)",
			n, stages.wait.Round(time.Millisecond), stages.first.Round(time.Millisecond), stages.add.Round(time.Millisecond), stages.finish.Round(time.Millisecond),
			stages.finishCPU.Round(time.Millisecond), stages.finishQueue.Round(time.Millisecond), tillCPU.Round(time.Millisecond), tillQueue.Round(time.Millisecond),
			hqCPU.Round(time.Millisecond), pgCPU.Round(time.Millisecond), boxCPU.Round(time.Millisecond), (ready * time.Duration(runtime.NumCPU())).Round(time.Millisecond), runtime.NumCPU())
		require.EqualValues(t, n, c.Status().MembersApplied)
		require.NoError(t, l.Close())
		ts.Close()
		require.NoError(t, st.Close())
		require.NoError(t, drop())
		cancel()
	}
}

// readSnapshot takes HQ's snapshot in the given format, decodes every
// member and throws it away; it returns the count and the bytes received.
func readSnapshot(ctx context.Context, t *testing.T, url, tok, format string) (int, int64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+wire.PathSnapshot, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("Accept", format)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, format, resp.Header.Get("Content-Type"))
	cr := &countReader{r: resp.Body}
	zr, err := gzip.NewReader(bufio.NewReaderSize(cr, 64<<10))
	require.NoError(t, err)
	n := 0
	if format == wire.SnapshotBinary {
		rd := wire.NewSnapshotReader(zr)
		for {
			var m wire.MemberState
			end, err := rd.Next(&m)
			require.NoError(t, err)
			if end != nil {
				require.EqualValues(t, n, end.Members)
				return n, cr.n
			}
			n++
		}
	}
	dec := json.NewDecoder(zr)
	for {
		var l wire.SnapshotLine
		require.NoError(t, dec.Decode(&l))
		if l.End != nil {
			require.EqualValues(t, n, l.End.Members)
			return n, cr.n
		}
		n++
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// cpuTime is the CPU time (user+system) this process has used: work done,
// whatever else the box runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// md5s is PostgreSQL's md5(prefix || i).
func md5s(prefix string, i int) string {
	return fmt.Sprintf("%x", md5.Sum([]byte(prefix+strconv.Itoa(i))))
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// benchSizes reads a comma-separated list of sizes from env, or gives def.
func benchSizes(t *testing.T, env string, def ...int) []int {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		var n int
		_, err := fmt.Sscan(f, &n)
		require.NoError(t, err, "%s", env)
		sizes = append(sizes, n)
	}
	return sizes
}
