package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqrun"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// The -kpi mode: a chain's multi-year history of N entries is loaded into
// a fresh schema the fast way (entries COPYed straight into their month
// partitions, the KPI aggregates folded in memory by hq.AggBuilder, the
// fold ingest runs, and written with COPY), then a real `posagent hq serve
// --pg` answers GET /kpi over loopback HTTP and its time, HQ's peak RSS
// and CPU are printed for a full month, the last month, a month before
// the history (no sales) and a month after it, at each size.
//
//	go run ./sync/hq/loadtest -kpi 1000000,10000000 -pg postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
var (
	kpiStores = flag.Int("kpi-stores", 100, "with -kpi: stores of the chain")
	kpiTills  = flag.Int("kpi-tills", 3, "with -kpi: tills per store")
	kpiYears  = flag.Int("kpi-years", 3, "with -kpi: years of history, ending 2025-12-31")
	kpiReps   = flag.Int("kpi-reps", 15, "with -kpi: requests timed per month (after one untimed)")
	kpiKeep   = flag.Bool("kpi-keep", false, "with -kpi: keep the loaded schemas (their URLs are printed) instead of dropping them")
)

type kpiConfig struct {
	PG                   string
	Sizes                []int
	Stores, Tills, Years int
	Reps                 int
	HQ                   []string
	Out                  io.Writer
}

// parseSizes reads "1000000,10000000" (k and M suffixes allowed).
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mul := 1
		switch {
		case strings.HasSuffix(f, "M"):
			mul, f = 1_000_000, strings.TrimSuffix(f, "M")
		case strings.HasSuffix(f, "k"):
			mul, f = 1_000, strings.TrimSuffix(f, "k")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 1_000_000_000/mul || n*mul < 1000 {
			return nil, fmt.Errorf("-kpi %q: want entry counts of at least 1000, comma-separated (1000000,10M)", s)
		}
		out = append(out, n*mul)
	}
	return out, nil
}

type kpiResult struct {
	entries, members     int
	load, loadCPU        time.Duration
	copyWait             time.Duration
	heap                 uint64
	dbMB                 float64
	months               []string
	first, median, worst []time.Duration
	hqCPU                time.Duration
	rss                  int64
}

func runKPI(ctx context.Context, c kpiConfig) error {
	if c.PG == "" {
		return errors.New("-kpi loads PostgreSQL: give -pg URL")
	}
	if c.Stores < 1 || c.Tills < 1 || c.Years < 1 || c.Years > 20 || c.Reps < 1 {
		return errors.New("-kpi-stores, -kpi-tills and -kpi-reps must be above 0, -kpi-years 1 to 20")
	}
	if len(c.HQ) == 0 {
		bin, clean, err := buildPosagent(ctx)
		if err != nil {
			return err
		}
		defer clean()
		c.HQ = []string{bin, "hq"}
	}
	// Every size is loaded first and then timed side by side, request by
	// request in turn, so a busy moment of the machine falls on all sizes
	// alike and their ratio means something.
	res := make([]kpiResult, len(c.Sizes))
	urls := make([]string, len(c.Sizes))
	for i, n := range c.Sizes {
		u, drop, err := kpiLoad(ctx, c, n, &res[i])
		if drop != nil {
			defer func() {
				if *kpiKeep {
					fmt.Fprintf(c.Out, "%d entries: schema kept: %s\n", n, u)
				} else if err := drop(); err != nil {
					fmt.Fprintf(c.Out, "%d entries: dropping the schema: %v\n", n, err)
				}
			}()
		}
		if err != nil {
			return fmt.Errorf("%d entries: %w", n, err)
		}
		urls[i] = u
	}
	if err := kpiTime(ctx, c, urls, res); err != nil {
		return err
	}
	out := c.Out
	fmt.Fprintf(out, "\n/kpi of a real hq serve --pg over loopback (%d stores × %d tills, %d years; median of %d, first request, slowest):\n", c.Stores, c.Tills, c.Years, c.Reps)
	fmt.Fprintf(out, "%-11s %-9s", "entries", "members")
	for _, m := range res[0].months {
		fmt.Fprintf(out, " %-27s", m)
	}
	fmt.Fprintf(out, " %-8s %-9s %s\n", "HQ RSS", "HQ CPU", "loaded in (CPU of this process), database")
	for _, r := range res {
		fmt.Fprintf(out, "%-11d %-9d", r.entries, r.members)
		for i := range r.months {
			fmt.Fprintf(out, " %-27s", fmt.Sprintf("%v / %v / %v", ms(r.median[i]), ms(r.first[i]), ms(r.worst[i])))
		}
		fmt.Fprintf(out, " %-8s %-9v %v (%v CPU, COPY waited on %v), %.0f MB\n", fmt.Sprintf("%d MB", r.rss>>20), r.hqCPU.Round(10*time.Millisecond),
			r.load.Round(time.Second), r.loadCPU.Round(time.Second), r.copyWait.Round(time.Second), r.dbMB)
	}
	a, b := res[0], res[len(res)-1]
	worst := time.Duration(0)
	var rss int64
	for _, r := range res {
		rss = max(rss, r.rss)
		worst = max(worst, slices.Max(r.median))
	}
	fmt.Fprintf(out, "targets: /kpi < 1 s at %d entries: slowest median %v; HQ RSS < 200 MB: %d MB; empty month / full month at %d: %.2f×; %d vs %d entries, full month: %.2f×, empty month: %.2f×\n",
		b.entries, ms(slices.Max(b.median)), rss>>20, b.entries, float64(b.median[2])/float64(b.median[0]), b.entries, a.entries,
		float64(b.median[0])/float64(a.median[0]), float64(b.median[2])/float64(a.median[2]))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// kpiLoad loads n entries into a fresh schema; the caller drops it.
func kpiLoad(ctx context.Context, c kpiConfig, n int, r *kpiResult) (u string, drop func() error, err error) {
	out := c.Out
	u, drop, err = pg.FreshSchema(ctx, c.PG, "hqkpi_")
	if err != nil {
		return "", nil, fmt.Errorf("make a schema in %s: %w", c.PG, err)
	}
	pcfg, err := pgx.ParseConfig(u)
	if err != nil {
		return u, drop, err
	}
	schema := pcfg.RuntimeParams["search_path"]
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4, PruneEvery: -1})
	if err != nil {
		return u, drop, err
	}
	defer st.Close()

	fmt.Fprintf(out, "%d entries: loading (%d stores × %d tills, %d years)\n", n, c.Stores, c.Tills, c.Years)
	t0, cpu0 := time.Now(), selfCPU()
	g := newChainHistory(n, c.Stores, c.Tills, c.Years)
	b := hq.NewAggBuilder(hq.DefaultAggConfig)
	type chunk struct {
		es  []entry.Entry
		rcv []time.Time
	}
	// The fold of one chunk runs while the previous one is copied.
	work := make(chan chunk, 2)
	failed, copied := make(chan struct{}), make(chan error, 1)
	var copyWait time.Duration
	go func() {
		var err error
		for ch := range work {
			if err == nil {
				if err = st.CopyEntries(ctx, ch.es, ch.rcv); err != nil {
					close(failed)
				}
			}
		}
		copied <- err
	}()
	const size = 20_000
	last := time.Now()
	for done := 0; done < n; {
		ch := chunk{es: make([]entry.Entry, 0, size), rcv: make([]time.Time, 0, size)}
		for len(ch.es) < size && done < n {
			e, rcv := g.next()
			ch.es, ch.rcv = append(ch.es, e), append(ch.rcv, rcv)
			done++
		}
		b.Add(ch.es)
		for _, id := range g.takeSettled() {
			b.Settle(id)
		}
		w := time.Now()
		select {
		case work <- ch:
		case <-failed:
			close(work)
			return u, drop, <-copied
		}
		copyWait += time.Since(w)
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			fmt.Fprintf(out, "  %d of %d entries (%v)\n", done, n, time.Since(t0).Round(time.Second))
		}
	}
	close(work)
	if err := <-copied; err != nil {
		return u, drop, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heap = ms.HeapInuse
	d := b.Dump()
	if err := st.LoadAggregates(ctx, d); err != nil {
		return u, drop, err
	}
	if _, err := st.Pool().Exec(ctx, `VACUUM ANALYZE agg_days, agg_months, agg_sales, agg_members, agg_visits, agg_totals`); err != nil {
		return u, drop, err
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE entries`); err != nil {
		return u, drop, err
	}
	r.entries, r.members, r.load, r.loadCPU, r.copyWait = n, g.members, time.Since(t0), selfCPU()-cpu0, copyWait
	runtime.GC()
	fmt.Fprintf(out, "%d entries: loaded in %v (this process %v CPU; heap %d MB at the end of the fold)\n", n, r.load.Round(time.Second), r.loadCPU.Round(time.Second), r.heap>>20)
	var sz strings.Builder
	if err := dbSize(ctx, &sz, st, schema, int64(n)); err != nil {
		return u, drop, err
	}
	fmt.Fprint(out, "  ", sz.String())
	if err := st.Pool().QueryRow(ctx, `SELECT sum(pg_total_relation_size(c.oid))/1048576.0 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		WHERE s.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&r.dbMB); err != nil {
		return u, drop, err
	}
	st.Close()
	r.months = []string{
		"full " + g.start.AddDate(c.Years/2, 5, 0).Format("2006-01"),
		"last " + g.end.AddDate(0, -1, 0).Format("2006-01"),
		"empty " + g.start.AddDate(0, -6, 0).Format("2006-01"),
		"after " + g.end.AddDate(0, 2, 0).Format("2006-01"),
	}
	return u, drop, nil
}

// kpiTime starts an hq serve on each loaded schema and times /kpi of each
// month on each in turn.
func kpiTime(ctx context.Context, c kpiConfig, urls []string, res []kpiResult) error {
	out := c.Out
	procs := make([]*hqrun.Proc, len(urls))
	for i, u := range urls {
		p, err := hqrun.StartHQ(hqrun.HQ{Command: c.HQ, PG: u, AdminToken: loadAdminToken})
		if err != nil {
			return err
		}
		defer p.Stop()
		if err := p.Wait(2 * time.Minute); err != nil {
			return err
		}
		procs[i] = p
	}
	times := make([][][]time.Duration, len(urls)) // size, month, request
	cpu0 := make([]time.Duration, len(urls))
	for i, p := range procs {
		times[i] = make([][]time.Duration, len(res[i].months))
		cpu0[i] = procCPU(p.Cmd.Process.Pid, false)
	}
	for rep := 0; rep <= c.Reps; rep++ {
		for i, p := range procs {
			for m, name := range res[i].months {
				month := name[strings.IndexByte(name, ' ')+1:]
				s := time.Now()
				if err := getKPI(ctx, p.URL, month); err != nil {
					return err
				}
				times[i][m] = append(times[i][m], time.Since(s))
			}
		}
	}
	for i, p := range procs {
		r := &res[i]
		for _, ds := range times[i] {
			r.first = append(r.first, ds[0])
			ds = ds[1:]
			slices.Sort(ds)
			r.median, r.worst = append(r.median, ds[len(ds)/2]), append(r.worst, ds[len(ds)-1])
		}
		r.hqCPU, r.rss = procCPU(p.Cmd.Process.Pid, false)-cpu0[i], p.PeakRSS()
		if strings.Contains(p.Log.String(), "rebuilding KPI aggregates") {
			return errors.New("hq serve rebuilt the aggregates: the loaded configuration differs from its settings")
		}
		fmt.Fprintf(out, "%d entries: /kpi median", r.entries)
		for m, name := range r.months {
			fmt.Fprintf(out, " %s %v;", name, r.median[m])
		}
		fmt.Fprintf(out, " HQ peak RSS %d MB, CPU for %d requests %v\n", r.rss>>20, len(r.months)*(c.Reps+1), r.hqCPU)
	}
	return nil
}

// getKPI asks HQ for month's report and reads it whole.
func getKPI(ctx context.Context, url, month string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/kpi?month="+month+"&format=json", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+loadAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/kpi?month=%s: %s %s", month, resp.Status, body)
	}
	return err
}

// chainHistory makes a chain's history in the order stored: every day of
// the years before 2026 in order, sales at 10:00-22:00 store time, received
// by HQ a few minutes later. Members enrol through the period at a store
// that becomes their home (four in five of their sales there); nine sales
// in ten name a member; 3 % of sales are refunded (half of them or whole)
// and 1 % voided, soon after, out of the recent sales; 1 % of entries are
// top-ups.
type chainHistory struct {
	r          *rand.Rand
	n, made    int
	tills      []*hqtest.Till
	perStore   int
	members    int
	enrolled   int
	home       []int32 // member k's home store
	start, end time.Time
	days       int
	recent     []entry.Entry
	settled    []string
}

func newChainHistory(n, stores, tills, years int) *chainHistory {
	g := &chainHistory{r: rand.New(rand.NewPCG(11, uint64(n))), n: n, perStore: tills, members: max(1, n/10)}
	g.end = time.Date(2026, 1, 1, 0, 0, 0, 0, hqtest.Shanghai)
	g.start = g.end.AddDate(-years, 0, 0)
	g.days = int(g.end.Sub(g.start).Hours()/24 + 0.5)
	g.home = make([]int32, g.members)
	for s := 0; s < stores; s++ {
		for t := 0; t < tills; t++ {
			g.tills = append(g.tills, &hqtest.Till{Store: fmt.Sprintf("S%04d", s+1), Till: fmt.Sprintf("T%d", t+1)})
		}
	}
	return g
}

func (g *chainHistory) member(k int) string { return fmt.Sprintf("M%08d", k+1) }

// till picks a till of store s with one of its four cashiers.
func (g *chainHistory) till(s int) *hqtest.Till {
	tl := g.tills[s*g.perStore+g.r.IntN(g.perStore)]
	tl.Cashier = fmt.Sprintf("%s-c%d", tl.Store, 1+g.r.IntN(4))
	return tl
}

// next is the next entry and when HQ received it.
func (g *chainHistory) next() (entry.Entry, time.Time) {
	g.made++
	day := min(g.days-1, (g.made-1)*g.days/g.n)
	at := g.start.AddDate(0, 0, day).Add(10*time.Hour + time.Duration(g.r.IntN(12*3600))*time.Second)
	rcv := at.Add(time.Duration(60+g.r.IntN(1800)) * time.Second)
	stores := len(g.tills) / g.perStore
	if g.enrolled < g.members && g.enrolled*g.n <= (g.made-1)*g.members {
		s := g.r.IntN(stores)
		g.home[g.enrolled] = int32(s)
		g.enrolled++
		return g.till(s).Enrol(g.member(g.enrolled-1), at), rcv
	}
	k := g.r.IntN(100)
	if k < 4 && len(g.recent) > 0 {
		s := g.recent[g.r.IntN(len(g.recent))]
		tl := g.tillOf(s)
		if k == 0 {
			return tl.Void(s, at), rcv
		}
		return tl.Refund(s, at, s.Sale.Due/(1+int64(k%2)), s.Sale.PointsEarned/(1+int64(k%2)), 0, k%2 == 0), rcv
	}
	m, s := "", g.r.IntN(stores)
	if g.r.IntN(10) > 0 && g.enrolled > 0 {
		mk := g.r.IntN(g.enrolled)
		m = g.member(mk)
		if g.r.IntN(5) > 0 {
			s = int(g.home[mk])
		}
	}
	tl := g.till(s)
	if k == 4 && m != "" {
		return tl.TopUp(m, at, 10_000, 500), rcv
	}
	due := 500 + int64(g.r.IntN(20_000))
	e := tl.Sale(m, at, due, due/100, 0, 0, "")
	// The recent sales are those of about the last hour of the chain.
	if len(g.recent) < 2000 {
		g.recent = append(g.recent, e)
	} else {
		i := g.r.IntN(len(g.recent))
		g.settled = append(g.settled, g.recent[i].ID())
		g.recent[i] = e
	}
	return e, rcv
}

// takeSettled returns the sales that left the recent ones since the last
// call: no later entry reverses them.
func (g *chainHistory) takeSettled() []string {
	s := g.settled
	g.settled = nil
	return s
}

func (g *chainHistory) tillOf(s entry.Entry) *hqtest.Till {
	for _, tl := range g.tills {
		if tl.Store == s.Store && tl.Till == s.Till {
			tl.Cashier = s.Cashier
			return tl
		}
	}
	return g.tills[0]
}
