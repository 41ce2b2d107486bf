package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// chainConfig is a chain's business day synced to HQ processes.
type chainConfig struct {
	PG       string        // server URL; a fresh schema is made in it
	Procs    int           // hq serve processes
	Bouncer  bool          // HQ connects through a PgBouncer
	Stores   int           // stores
	Tills    int           // tills per store
	PerTill  int           // entries each till writes in the day
	Members  int           // chain members the sales name
	Duration time.Duration // the opening hours compressed into this
	Poll     time.Duration // the sync client's poll (the agent's 1 s)
	// PullEvery is how often each store pulls HQ's changes (the agent's
	// 30 s); below 0: never.
	PullEvery time.Duration
	Conns     int           // connections to the HQ processes, all together
	Timeout   time.Duration // give up when not all is acked by then
	Compare   bool          // replay the stored batches as raw COPY afterwards
	// MaxInFlight is each process's --max-inflight (0: hq serve's default).
	MaxInFlight int
	// HQ is the hq command line before "serve"; empty: build
	// ./cmd/posagent once and run its "hq".
	HQ    []string
	HQEnv []string
	// HQCPUs, above 0, holds each HQ process to that many CPUs (a cgroup;
	// needs root), each standing for a machine of its own; PostgreSQL and
	// this program are not held.
	HQCPUs float64
	// MemberFeed is each process's --member-feed ("": hq serve's default).
	MemberFeed string
	// Lookups: every entry naming a member is followed by the store's
	// look-up of that member at HQ, as a till looks a member up when it is
	// identified (with the identity feed, how its balances arrive).
	Lookups bool
	Seed    uint64
	Out     io.Writer
}

// chainResult is what a run measured (the test reads it).
type chainResult struct {
	Written, Stored int64
	Elapsed         time.Duration
	PerProc         []int64
	TotalsOK        bool
	Pulled          int64 // member states the stores' pulls applied over the day
	LookedUp        int64 // member look-ups HQ answered
}

const loadAdminToken = "hqload-admin-token"

// outbox is a store's till ledgers as the sync client sees them; Ack
// records how long each entry waited from being written to HQ's ack.
type outbox struct {
	*memstore.Store
	acked *atomic.Int64
	mu    *sync.Mutex
	lat   *[]time.Duration
}

func (o outbox) Ack(till string, upTo uint64) error {
	prev, err := o.Store.Acked(till)
	if err != nil {
		return err
	}
	if err := o.Store.Ack(till, upTo); err != nil || upTo <= prev {
		return err
	}
	es, err := o.Store.Pending(till, prev, int(upTo-prev))
	if err != nil {
		return err
	}
	now := time.Now()
	o.mu.Lock()
	for _, e := range es {
		*o.lat = append(*o.lat, now.Sub(e.At))
	}
	o.mu.Unlock()
	o.acked.Add(int64(upTo - prev))
	return nil
}

// fill checks what every run against HQ processes needs and sets the
// defaults: the agent's 1 s poll, an hour's timeout, and connsPerStore
// connections a store unless -conns says (bounded for the file limit).
func (c *chainConfig) fill(connsPerStore int) error {
	if c.PG == "" {
		return errors.New("several HQ processes share one PostgreSQL database: give -pg URL")
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Hour
	}
	if c.Conns <= 0 {
		c.Conns = min(connsPerStore*c.Stores, 4096)
	}
	return nil
}

func runChain(ctx context.Context, c chainConfig) (res chainResult, err error) {
	out := c.Out
	if c.Procs < 1 || c.Stores < 1 || c.Tills < 1 || c.PerTill < 1 || c.Members < 1 || c.Duration < 0 {
		return res, errors.New("-procs, -stores, -tills, -per-till and -members must be above 0, -duration 0 or more")
	}
	if c.PullEvery == 0 {
		c.PullEvery = 30 * time.Second // the agent's
	}
	// A connection per upload a store may have open (two tills at once),
	// so uploads queue at HQ, whose back-pressure is what is tested, not
	// in this program.
	if err := c.fill(2); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()

	f, err := startFleet(ctx, c, "hqchain_")
	if err != nil {
		return res, err
	}
	defer f.close()
	procs, st, schema, via := f.procs, f.st, f.schema, f.via
	tokens, err := issueTokens(ctx, st, c.Stores)
	if err != nil {
		return res, err
	}

	// The stores: an outbox and a sync client each, configured as the
	// agent configures it (500-entry batches, 2 s batch age, 1 s poll,
	// two tills at once, backoff and Retry-After as they come).
	lb := newBalancer(f.hosts, c.Conns, c.Compare)
	defer lb.close()
	hc := &http.Client{Transport: lb}
	var acked atomic.Int64
	var latMu sync.Mutex
	var entryLat []time.Duration
	var members, programs atomic.Int64 // applied by the stores' pulls
	if err := seedMembers(ctx, f.st, c.Members); err != nil {
		return res, err
	}
	cursor, err := startCursor(ctx, f.st)
	if err != nil {
		return res, err
	}
	stores := make([]*memstore.Store, c.Stores)
	clients := make([]*client.Client, c.Stores)
	tills := make([][]*till, c.Stores)
	for i := range stores {
		id := storeID(i)
		stores[i] = memstore.New(id)
		ob := outbox{Store: stores[i], acked: &acked, mu: &latMu, lat: &entryLat}
		var in client.Inbox
		if c.PullEvery > 0 {
			in = &inbox{members: &members, programs: &programs, cursor: cursor}
		}
		clients[i], err = client.New(client.Config{URL: "http://hq", Token: tokens[i], Store: id,
			BatchMax: 500, BatchAge: 2 * time.Second, Poll: c.Poll, PullEvery: max(c.PullEvery, 0), HTTPClient: hc}, ob, in, nil)
		if err != nil {
			return res, err
		}
		for k := 0; k < c.Tills; k++ {
			tills[i] = append(tills[i], &till{b: hqTill(id, k), rnd: rand.New(rand.NewPCG(c.Seed, uint64(i*c.Tills+k))), members: c.Members})
		}
	}
	evs := schedule(c.Stores, c.Tills, c.PerTill, c.Seed)
	written := int64(len(evs))
	day := "written before the stores come online (a day's backlog synced at once)"
	if c.Duration > 0 {
		day = fmt.Sprintf("the day (10:00-22:00) in %v (%.0f entries/s offered on average, %.0f at the peak hour)", c.Duration, float64(written)/c.Duration.Seconds(),
			float64(written)*float64(hourWeights[2])/float64(sum(hourWeights[:]))*float64(len(hourWeights))/c.Duration.Seconds())
	}
	inflight := "64 (default)"
	if c.MaxInFlight > 0 {
		inflight = strconv.Itoa(c.MaxInFlight)
	}
	pulling := "never pull"
	if c.PullEvery > 0 {
		pulling = fmt.Sprintf("pull every %v", c.PullEvery)
	}
	capped := ""
	if c.HQCPUs > 0 {
		capped = fmt.Sprintf(", each held to %.2f CPU by a cgroup (PostgreSQL and the stores are not)", c.HQCPUs)
	}
	feed := c.MemberFeed
	if feed == "" {
		feed = "all (default)"
	}
	if c.Lookups && c.Duration > 0 {
		pulling += ", and look up at HQ each member an entry names"
	}
	fmt.Fprintf(out, "chain: %d stores × %d tills × %d entries = %d entries, %s; %d HQ process(es) %s, --max-inflight %s --member-feed %s each%s; %d connections; the stores %s\n",
		c.Stores, c.Tills, c.PerTill, written, day, c.Procs, via, inflight, feed, capped, c.Conns, pulling)

	// The day's entries are built before the clock starts (the figure is
	// HQ's, not the builders'); writing stamps them with the wall clock, so
	// the clients' batch age works as it does in a store.
	built := make([][]entry.Entry, c.Stores*c.Tills)
	for i := range built {
		t := tills[i/c.Tills][i%c.Tills]
		built[i] = make([]entry.Entry, c.PerTill)
		for j := range built[i] {
			built[i][j] = t.next(time.Now())
		}
	}
	lk := newLookups(c.Lookups && c.Duration > 0, hc, tokens)
	defer lk.close()
	write := func(ev event, next []int) error {
		i := int(ev.store)*c.Tills + int(ev.till)
		e := built[i][next[i]]
		next[i]++
		now := time.Now()
		if c.Duration == 0 { // written over the opening hours just past
			now = now.Add(-time.Duration((1 - ev.at) * float64(12*time.Hour)))
		}
		e.At, e.Local = now.UTC(), now.In(hqtest.Shanghai).Format(time.RFC3339)
		if _, err := stores[ev.store].Append(e.Till, e); err != nil {
			return fmt.Errorf("store %s till %s: %w", e.Store, e.Till, err)
		}
		if e.MemberID != "" && e.Kind != entry.KindEnrol {
			lk.ask(int(ev.store), e.MemberID)
		}
		return nil
	}
	next := make([]int, len(built))
	if c.Duration == 0 {
		// The stores were offline all day and come back at once.
		for _, ev := range evs {
			if err := write(ev, next); err != nil {
				return res, err
			}
		}
	}

	cpu0 := cpuNow(procs, f.postmaster)
	runCtx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	start := time.Now()
	for _, cl := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); _ = cl.Run(runCtx) }()
	}
	defer func() { stopClients(); wg.Wait() }()

	// Two writers on schedule, each with its half of the stores, so a
	// till's entries stay in order and one slow writer does not hold up
	// the other's stores.
	const writers = 2
	werrs := make([]error, writers)
	var wwg sync.WaitGroup
	for w := 0; w < writers && c.Duration > 0; w++ {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := 0; i < len(evs) && werrs[w] == nil; {
				due := time.Duration(evs[i].at * float64(c.Duration))
				if wait := due - time.Since(start); wait > 0 {
					select {
					case <-ctx.Done():
						werrs[w] = fmt.Errorf("writing the day: %w", ctx.Err())
						continue
					case <-time.After(max(wait, 2*time.Millisecond)):
					}
				}
				now := time.Since(start)
				for ; i < len(evs) && time.Duration(evs[i].at*float64(c.Duration)) <= now; i++ {
					if int(evs[i].store)%writers != w {
						continue
					}
					if werrs[w] = write(evs[i], next); werrs[w] != nil {
						break
					}
				}
			}
		}()
	}
	wwg.Wait()
	if err := errors.Join(werrs...); err != nil {
		return res, err
	}
	wroteIn := time.Since(start)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var short error // the run ended before every entry was acked
	for acked.Load() < written && short == nil {
		select {
		case <-ctx.Done():
			short = fmt.Errorf("%d of %d entries acked when the run ended (%v; -timeout %v)", acked.Load(), written, ctx.Err(), c.Timeout)
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	cpu1 := cpuNow(procs, f.postmaster)
	rss := make([]int64, len(procs))
	for i, p := range procs {
		rss[i] = p.PeakRSS()
	}
	pulls, pulled := countPulls(lb), members.Load()
	var quiet string // the pulls after the day
	if c.PullEvery > 0 && short == nil {
		if quiet, err = quietPulls(ctx, f, lb, c.PullEvery); err != nil {
			return res, err
		}
	}
	stopClients()
	wg.Wait()

	res.Written, res.Elapsed = written, elapsed
	rate := func(n int64) float64 { return float64(n) / elapsed.Seconds() }
	if short != nil {
		// A run cut short still shows what it reached.
		written = acked.Load()
		fmt.Fprintf(out, "run ended early: %v\n", short)
	}
	fmt.Fprintf(out, "written in %v, all acked after %v: %.0f entries/s overall\n", wroteIn.Round(time.Millisecond), elapsed.Round(time.Millisecond), rate(written))
	var uploads, refused, failed, cut int64
	for i, be := range lb.backends {
		res.PerProc = append(res.PerProc, be.entries.Load())
		uploads += be.uploads.Load()
		refused += be.refused.Load()
		failed += be.failed.Load()
		cut += be.cut.Load()
		fmt.Fprintf(out, "  process %d: %d entries (%.0f entries/s) in %d uploads, %d refused (429/503), %d failed (%d timed out); peak RSS %.1f MB; CPU %.1f s (%.1f ms per 1,000 entries)\n",
			i+1, be.entries.Load(), rate(be.entries.Load()), be.uploads.Load(), be.refused.Load(), be.failed.Load(), be.cut.Load(), float64(rss[i])/(1<<20),
			(cpu1.procs[i] - cpu0.procs[i]).Seconds(), float64((cpu1.procs[i]-cpu0.procs[i]).Microseconds())/float64(max(1, be.entries.Load())))
	}
	p50, p99, mx := percentiles(lb.lat)
	fmt.Fprintf(out, "uploads: %d answered 200 (%.1f entries each, %.0f/s), %d refused, %d failed (%d timed out); upload round trip p50 %v p99 %v max %v\n",
		uploads, float64(written)/float64(max(1, uploads)), float64(uploads)/elapsed.Seconds(), refused, failed, cut, p50.Round(time.Millisecond), p99.Round(time.Millisecond), mx.Round(time.Millisecond))
	if c.Duration > 0 { // a backlog's entries were written hours ago
		p50, p99, mx = percentiles(entryLat)
		fmt.Fprintf(out, "entry written → acked: p50 %v p99 %v max %v (includes the 2 s batch age and the 1 s poll)\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond), mx.Round(time.Millisecond))
	}
	if c.PullEvery > 0 {
		lb.mu.Lock()
		p50, p99, mx = percentiles(lb.pulls)
		lb.mu.Unlock()
		fmt.Fprintf(out, "pulls over the day: %d changes pages answered (%.1f/s), %d member states and %d programs applied; pull round trip p50 %v p99 %v max %v\n",
			pulls, float64(pulls)/elapsed.Seconds(), pulled, programs.Load(), p50.Round(time.Millisecond), p99.Round(time.Millisecond), mx.Round(time.Millisecond))
		fmt.Fprint(out, quiet)
	}
	lk.close()
	lk.report(out)
	res.Pulled, res.LookedUp = pulled, lk.ok.Load()
	printCPU(out, cpu0, cpu1, elapsed, written, uploads)

	post := ctx
	if short != nil { // the run's context is over; the size is still worth having
		var cancel context.CancelFunc
		post, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
	}
	if err := dbSize(post, out, st, schema, written); err != nil {
		return res, err
	}
	if short != nil {
		return res, short
	}
	for _, p := range procs[1:] {
		p.Stop() // the checks below and the COPY run with one process left
	}
	if res.Stored, res.TotalsOK, err = checkTotals(ctx, out, procs[0].URL, st, stores, tills, c.Members); err != nil {
		return res, err
	}
	procs[0].Stop()
	if c.Compare {
		if err := rawCopy(ctx, out, st, stores, lb.ranges, rate(written), res.PerProc, elapsed); err != nil {
			return res, err
		}
	}
	if !res.TotalsOK {
		return res, errors.New("HQ's totals differ from the tills'")
	}
	return res, nil
}

// seedPoints is what each member of the chain holds before the day, so the
// day's redemptions spend points members have, as at a till, rather than
// flag every member who redeems.
const seedPoints = 2000

// seedMembers enrols the chain's members (named as till.next names them)
// before the day, as years of trading leave them, in transactions of
// 20,000 that each log their members in the feed, as ingest does.
func seedMembers(ctx context.Context, st *pg.Store, n int) error {
	const per = 20000
	for from := 0; from < n; from += per {
		_, err := st.Pool().Exec(ctx, `WITH m AS (
			INSERT INTO members (id, data, points, stored_value)
			SELECT 'M' || lpad(i::text, 6, '0'),
				jsonb_build_object('id', 'M' || lpad(i::text, 6, '0'), 'name', 'Member ' || i, 'tier', 'silver',
					'mobile', '139' || lpad(i::text, 8, '0'), 'enrolled_at', '2025-01-01T00:00:00Z'), $3::int8, 0
			FROM generate_series($1::int, $2::int) AS i RETURNING id)
			INSERT INTO member_changes (ids) SELECT array_agg(id) FROM m`, from, min(from+per, n)-1, seedPoints)
		if err != nil {
			return fmt.Errorf("enrolling the chain's %d members before the day: %w", n, err)
		}
	}
	return nil
}

// fleet is the HQ side of a run: a fresh schema (dropped by close), a
// PgBouncer when asked, the hq serve processes, a store of its own on the
// schema, and the PostgreSQL cluster's postmaster for its CPU.
type fleet struct {
	direct, schema, via string
	procs               []*hqrun.Proc
	hosts               []string
	st                  *pg.Store
	postmaster          int    // 0 when the server is on another host
	app                 string // the HQ processes' application_name
	undo                []func()
}

// backendsCPU is the CPU each of the HQ processes' PostgreSQL backends
// (found by their application_name) has used so far: unlike the
// cluster's, it leaves out other users of the server.
func (f *fleet) backendsCPU(ctx context.Context) (map[int]time.Duration, error) {
	rows, err := f.st.Pool().Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, f.app)
	if err != nil {
		return nil, err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	out := map[int]time.Duration{}
	for _, p := range pids {
		out[int(p)] = procCPU(int(p), false)
	}
	return out, nil
}

// cpuSince is what the backends in b used since a (a backend started
// since counts whole; one that ended is lost).
func cpuSince(a, b map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range b {
		d += t - a[pid]
	}
	return d
}

// close stops what startFleet started, last first.
func (f *fleet) close() {
	for i := len(f.undo) - 1; i >= 0; i-- {
		f.undo[i]()
	}
}

// startFleet starts c.Procs hq serve processes on a fresh schema named
// after prefix and waits until they serve.
func startFleet(ctx context.Context, c chainConfig, prefix string) (f *fleet, err error) {
	f = &fleet{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	direct, drop, err := pg.FreshSchema(ctx, c.PG, prefix)
	if err != nil {
		return f, fmt.Errorf("make a schema in %s: %w", c.PG, err)
	}
	f.undo = append(f.undo, func() { _ = drop() })
	pcfg, err := pgx.ParseConfig(direct)
	if err != nil {
		return f, err
	}
	f.direct, f.schema = direct, pcfg.RuntimeParams["search_path"]
	f.app = f.schema
	hqURL, via := direct, "directly"
	if c.Bouncer {
		bin, err := hqrun.PgBouncerPath()
		if err != nil {
			return f, err
		}
		b, err := hqrun.StartBouncer(bin, c.PG, f.schema)
		if err != nil {
			return f, err
		}
		f.undo = append(f.undo, b.Close)
		hqURL, via = b.URL, "through PgBouncer (transaction pooling)"
	}
	// Named, the processes' backends can be told from the server's others.
	if hqURL, err = withParam(hqURL, "application_name", f.app); err != nil {
		return f, err
	}
	f.via = via
	cmd := c.HQ
	if len(cmd) == 0 {
		bin, clean, err := buildPosagent(ctx)
		if err != nil {
			return f, err
		}
		f.undo = append(f.undo, clean)
		cmd = []string{bin, "hq"}
	}
	for range c.Procs {
		var args []string
		if c.MaxInFlight > 0 {
			args = []string{"--max-inflight", strconv.Itoa(c.MaxInFlight)}
		}
		if c.MemberFeed != "" {
			args = append(args, "--member-feed", c.MemberFeed)
		}
		p, err := hqrun.StartHQ(hqrun.HQ{Command: cmd, PG: hqURL, Env: c.HQEnv, AdminToken: loadAdminToken, Args: args, CPUs: c.HQCPUs})
		if err != nil {
			return f, err
		}
		f.undo = append(f.undo, p.Stop)
		f.procs = append(f.procs, p)
	}
	for _, p := range f.procs {
		if err := p.Wait(2 * time.Minute); err != nil {
			return f, err
		}
		u, err := url.Parse(p.URL)
		if err != nil {
			return f, err
		}
		f.hosts = append(f.hosts, u.Host)
	}
	if f.st, err = pg.Open(ctx, direct, pg.Options{MaxConns: 8, PruneEvery: -1}); err != nil {
		return f, err
	}
	f.undo = append(f.undo, func() { _ = f.st.Close() })
	var backend int32
	if err := f.st.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return f, err
	}
	f.postmaster = hqrun.Postmaster(int(backend))
	return f, nil
}

// withParam sets a connection parameter in a postgres:// URL or a
// key=value string.
func withParam(conn, key, value string) (string, error) {
	if !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://") {
		return conn + " " + key + "=" + value, nil
	}
	u, err := url.Parse(conn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// buildPosagent builds ./cmd/posagent into a temporary directory.
func buildPosagent(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "hqload-bin")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "posagent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "posagent/cmd/posagent")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build posagent/cmd/posagent (run from the repository, or give -hq-bin): %v\n%s", err, b)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// issueTokens issues a credential per store in the database, four at a
// time (as `hq store add` would, without a process each).
func issueTokens(ctx context.Context, st hq.Store, n int) ([]string, error) {
	srv := hq.NewServer(st, hq.Options{})
	tokens := make([]string, n)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && errs[w] == nil; i += len(errs) {
				tokens[i], errs[w] = srv.IssueCredential(ctx, hq.RoleStore, storeID(i), "", "Asia/Shanghai")
			}
		}()
	}
	wg.Wait()
	return tokens, errors.Join(errs...)
}

type cpuSample struct {
	procs         []time.Duration
	postgres, box time.Duration
	cluster       time.Duration // the run's PostgreSQL cluster only
	self          time.Duration
}

func cpuNow(procs []*hqrun.Proc, postmaster int) cpuSample {
	s := cpuSample{postgres: postgresCPU(), box: boxCPU(), self: selfCPU(), cluster: hqrun.ClusterCPU(postmaster)}
	for _, p := range procs {
		s.procs = append(s.procs, procCPU(p.Cmd.Process.Pid, false))
	}
	return s
}

// printCPU splits the machine's busy CPU over the run between the HQ
// processes, PostgreSQL, this program (the stores) and the rest.
func printCPU(out io.Writer, a, b cpuSample, elapsed time.Duration, entries, uploads int64) {
	var hqCPU time.Duration
	for i := range a.procs {
		hqCPU += b.procs[i] - a.procs[i]
	}
	pgCPU, self, box := b.postgres-a.postgres, b.self-a.self, b.box-a.box
	other := box - hqCPU - pgCPU - self
	cores := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()/elapsed.Seconds()) }
	fmt.Fprintf(out, "CPU over the run, in cores busy: HQ %s, PostgreSQL %s, stores (this program) %s, rest of the box %s; box %s busy of %d\n",
		cores(hqCPU), cores(pgCPU), cores(self), cores(max(0, other)), cores(box), numCPU())
	// What scales with cores: CPU per unit of work, of HQ and of the run's
	// own PostgreSQL cluster (others' queries on it count too).
	cl := b.cluster - a.cluster
	per := func(d time.Duration, n int64) float64 { return d.Seconds() / float64(max(1, n)) }
	fmt.Fprintf(out, "CPU per 1,000 entries: HQ %.3f s, PostgreSQL cluster %.3f s, together %.3f s; per upload answered 200: HQ %.2f ms, PostgreSQL %.2f ms\n",
		per(hqCPU, entries)*1000, per(cl, entries)*1000, per(hqCPU+cl, entries)*1000, per(hqCPU, uploads)*1000, per(cl, uploads)*1000)
}

// dbSize prints the schema's tables' size (with indexes and TOAST) and the
// bytes it takes per million entries.
func dbSize(ctx context.Context, out io.Writer, st *pg.Store, schema string, entries int64) error {
	rows, err := st.Pool().Query(ctx, `SELECT c.relname, pg_total_relation_size(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') ORDER BY 2 DESC`, schema)
	if err != nil {
		return fmt.Errorf("database size: %w", err)
	}
	type rel struct {
		name string
		size int64
	}
	var rels []rel
	var total int64
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.name, &r.size); err != nil {
			return err
		}
		rels = append(rels, r)
		total += r.size
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var top []string
	for _, r := range rels[:min(5, len(rels))] {
		top = append(top, fmt.Sprintf("%s %.1f MB", r.name, float64(r.size)/(1<<20)))
	}
	fmt.Fprintf(out, "database: %.1f MB in %d tables, %.0f MB per million entries (largest: %s)\n",
		float64(total)/(1<<20), len(rels), float64(total)/(1<<20)/float64(entries)*1e6, strings.Join(top, ", "))
	return nil
}

// checkTotals compares HQ's /admin/totals (from a running process) with
// the sums of the tills' own entries, store by store, and checks in the
// database that each till's mark is its last entry and the entries table
// holds exactly what the tills wrote, with no dead letters. It returns the
// entries HQ holds.
func checkTotals(ctx context.Context, out io.Writer, hqURL string, st *pg.Store, stores []*memstore.Store, tills [][]*till, members int) (int64, bool, error) {
	want := map[string]*hq.StoreTotals{}
	var chain hq.StoreTotals
	seeded := int64(members) * seedPoints
	marks := map[string]uint64{}
	for i, s := range stores {
		w := &hq.StoreTotals{}
		want[storeID(i)] = w
		for _, t := range tills[i] {
			es := s.Entries(t.b.Till)
			marks[t.b.Store+"/"+t.b.Till] = uint64(len(es))
			for k := range es {
				addTotals(w, &es[k])
				addTotals(&chain, &es[k])
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", hqURL+"/admin/totals", nil)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Authorization", "Bearer "+loadAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("HQ totals: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, false, fmt.Errorf("HQ totals: %s %s", resp.Status, b)
	}
	var tot hq.Totals
	if err := json.NewDecoder(resp.Body).Decode(&tot); err != nil {
		return 0, false, fmt.Errorf("HQ totals: %w", err)
	}
	var bad []string
	for id, w := range want {
		if g := tot.Stores[id]; g == nil || *g != *w {
			bad = append(bad, id)
		}
	}
	sort.Strings(bad)
	if len(tot.Stores) != len(want) {
		bad = append(bad, fmt.Sprintf("HQ has %d stores, the chain %d", len(tot.Stores), len(want)))
	}
	if tot.Chain != chain {
		bad = append(bad, fmt.Sprintf("chain: HQ %+v, tills %+v", tot.Chain, chain))
	}
	if tot.MemberPoints != seeded+chain.Points || tot.MemberStoredValue != chain.StoredValue {
		bad = append(bad, fmt.Sprintf("member balances: HQ %d points %d fen, the members' %d points before the day and the tills' deltas %d points %d fen",
			tot.MemberPoints, tot.MemberStoredValue, seeded, chain.Points, chain.StoredValue))
	}
	if tot.OpenDeadLetters+tot.ResolvedDeadLetter != 0 {
		bad = append(bad, fmt.Sprintf("%d dead letters", tot.OpenDeadLetters+tot.ResolvedDeadLetter))
	}

	// Stored once: the table's count is the tills' count (the primary key
	// is (store, till, seq)), and every till's mark is its last entry.
	var rows, distinct int64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (store, till, seq)) FROM entries`).Scan(&rows, &distinct); err != nil {
		return 0, false, err
	}
	if rows != chain.Entries || distinct != rows {
		bad = append(bad, fmt.Sprintf("entries table: %d rows, %d distinct, tills wrote %d", rows, distinct, chain.Entries))
	}
	trs, err := st.Pool().Query(ctx, `SELECT store, till, acked FROM tills`)
	if err != nil {
		return 0, false, err
	}
	var tillRows int
	var wrongMarks int
	for trs.Next() {
		var s, t string
		var a int64
		if err := trs.Scan(&s, &t, &a); err != nil {
			return 0, false, err
		}
		tillRows++
		if uint64(a) != marks[s+"/"+t] {
			wrongMarks++
		}
	}
	if err := trs.Err(); err != nil {
		return 0, false, err
	}
	if tillRows != len(marks) || wrongMarks > 0 {
		bad = append(bad, fmt.Sprintf("tills: HQ has %d, %d with a mark other than their last entry; the chain has %d", tillRows, wrongMarks, len(marks)))
	}
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("… %d more", len(bad)-10))
		}
		fmt.Fprintf(out, "totals check FAILED: %s\n", strings.Join(bad, "; "))
		return rows, false, nil
	}
	fmt.Fprintf(out, "totals check: HQ's /admin/totals equal the tills' sums for all %d stores and the chain (%d entries: %d sales %d fen, %d refunds, %d voids, %d top-ups; %d points, %d fen stored value), each entry stored once, every till's mark at its last entry, no dead letters\n",
		len(want), chain.Entries, chain.Sales, chain.SalesDue, chain.Refunds, chain.Voids, chain.TopUps, chain.Points, chain.StoredValue)
	return rows, true, nil
}

// addTotals sums e as HQ's StoreTotals does.
func addTotals(t *hq.StoreTotals, e *entry.Entry) {
	t.Entries++
	t.Points += e.PointsDelta
	t.StoredValue += e.StoredValueDelta
	switch {
	case e.Sale != nil:
		t.Sales++
		t.SalesDue += e.Sale.Due
	case e.Refund != nil:
		t.Refunds++
		t.RefundAmount += e.Refund.Amount
	case e.Void != nil:
		t.Voids++
	case e.TopUp != nil:
		t.TopUps++
	}
}

// rawCopy replays the batches HQ stored, as the same rows, with COPY into
// a scratch table shaped like entries (indexes included): one transaction
// per batch, a till's batches in order, four writers (one HQ process's
// pool). JSON encoding is counted, as ingest does it.
func rawCopy(ctx context.Context, out io.Writer, st *pg.Store, stores []*memstore.Store, ranges map[string][][2]uint64, hqRate float64, perProc []int64, elapsed time.Duration) error {
	if _, err := st.Pool().Exec(ctx, `CREATE TABLE raw_entries (LIKE entries INCLUDING ALL)`); err != nil {
		return fmt.Errorf("raw COPY table: %w", err)
	}
	byStore := map[string]*memstore.Store{}
	for i, s := range stores {
		byStore[storeID(i)] = s
	}
	keys := make([]string, 0, len(ranges))
	for k := range ranges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cols := []string{"store", "till", "seq", "kind", "member_id", "at", "received_at", "body"}
	work := make(chan string)
	const writers = 4
	errs := make([]error, writers)
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if errs[w] != nil {
					continue
				}
				store, tl, _ := strings.Cut(k, "/")
				for _, r := range ranges[k] {
					es, err := byStore[store].Pending(tl, r[0]-1, int(r[1]-r[0]+1))
					if err != nil {
						errs[w] = err
						break
					}
					now := time.Now().UTC()
					rows := make([][]any, len(es))
					for i := range es {
						e := &es[i]
						body, err := json.Marshal(e)
						if err != nil {
							errs[w] = err
							break
						}
						rows[i] = []any{e.Store, e.Till, int64(e.Seq), string(e.Kind), e.MemberID, e.At, now, body}
					}
					if errs[w] != nil {
						break
					}
					if errs[w] = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
						_, err := tx.CopyFrom(ctx, pgx.Identifier{"raw_entries"}, cols, pgx.CopyFromRows(rows))
						return err
					}); errs[w] != nil {
						break
					}
					n.Add(int64(len(es)))
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raw COPY: %w", err)
	}
	took := time.Since(start)
	copyRate := float64(n.Load()) / took.Seconds()
	fmt.Fprintf(out, "raw COPY of the same %d entries in the same %d batches (4 writers, one transaction a batch, JSON encoding included): %.0f entries/s in %v\n",
		n.Load(), batches(ranges), copyRate, took.Round(time.Millisecond))
	fmt.Fprintf(out, "HQ vs raw COPY: overall %.2f×", hqRate/copyRate)
	for i, e := range perProc {
		fmt.Fprintf(out, ", process %d %.2f×", i+1, float64(e)/elapsed.Seconds()/copyRate)
	}
	fmt.Fprintln(out)
	return nil
}

func batches(ranges map[string][][2]uint64) int {
	n := 0
	for _, r := range ranges {
		n += len(r)
	}
	return n
}
