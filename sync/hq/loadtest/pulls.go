package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"posagent/ledger/staff"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// inbox is a store's till ledger as the sync client's pull sees it. It
// counts the member states and programs applied and keeps the cursor and
// the cashier list's version, but holds no member: ten thousand stores
// each holding the chain's members would not fit in this program.
type inbox struct {
	members, programs *atomic.Int64 // all stores together

	mu       sync.Mutex
	cursor   string
	cashiers string
}

func (in *inbox) ApplyMemberStates(states []wire.MemberState) error {
	in.members.Add(int64(len(states)))
	return nil
}

func (in *inbox) ApplyProgram([]byte) error { in.programs.Add(1); return nil }

func (in *inbox) SyncCursor() (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cursor, nil
}

func (in *inbox) SetSyncCursor(c string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cursor = c
	return nil
}

// CashiersVersion and ApplyCashiers make the client ask for the store's
// cashiers with every pull, as the agent's ledger does.
func (in *inbox) CashiersVersion() (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cashiers, nil
}

func (in *inbox) ApplyCashiers(version string, _ []staff.Cashier) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cashiers = version
	return nil
}

var _ client.CashierInbox = (*inbox)(nil)

// pullsResult is what a pulls run measured (the test reads it).
type pullsResult struct {
	Pulls       int64   // changes pages answered 200 while measured
	PerSecond   float64 // of them
	HQPerPull   time.Duration
	PGPerPull   time.Duration
	Members     int64 // member states applied while measured
	FirstPulled time.Duration
}

// runPulls measures what the member feed's pulls cost HQ when nothing
// else happens: c.Stores stores' sync clients, each pulling every
// c.PullEvery as the agent does, their starts spread over one c.PullEvery.
// Once every store has pulled once (its snapshot and first page), HQ's and
// the PostgreSQL cluster's CPU are measured over c.Duration and divided
// by the changes pages answered.
func runPulls(ctx context.Context, c chainConfig) (res pullsResult, err error) {
	out := c.Out
	if c.Procs < 1 || c.Stores < 1 || c.Duration <= 0 || c.PullEvery <= 0 {
		return res, errors.New("-procs and -stores must be above 0, -duration and -pull-every above 0")
	}
	if err := c.fill(1); err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	f, err := startFleet(ctx, c, "hqpulls_")
	if err != nil {
		return res, err
	}
	defer f.close()
	tokens, err := issueTokens(ctx, f.st, c.Stores)
	if err != nil {
		return res, err
	}
	lb := newBalancer(f.hosts, c.Conns, false)
	defer lb.close()
	hc := &http.Client{Transport: lb}
	var members, programs atomic.Int64
	cursor, err := startCursor(ctx, f.st)
	if err != nil {
		return res, err
	}
	clients := make([]*client.Client, c.Stores)
	for i := range clients {
		id := storeID(i)
		if clients[i], err = client.New(client.Config{URL: "http://hq", Token: tokens[i], Store: id, Poll: c.Poll, PullEvery: c.PullEvery, HTTPClient: hc},
			memstore.New(id), &inbox{members: &members, programs: &programs, cursor: cursor}, nil); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(out, "pulls: %d stores pulling every %v (poll %v) from %d HQ process(es) %s; %d connections; nothing else runs\n",
		c.Stores, c.PullEvery, c.Poll, c.Procs, f.via, c.Conns)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	start := time.Now()
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread over one interval, as tills switched on through the
			// morning are, not all in the same second.
			select {
			case <-runCtx.Done():
				return
			case <-time.After(time.Duration(int64(c.PullEvery) * int64(i) / int64(len(clients)))):
			}
			_ = cl.Run(runCtx)
		}()
	}
	// Every store pulls once: its snapshot and the first page after it.
	for pulled := 0; pulled < len(clients); {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%d of %d stores had pulled when the run ended (%v; -timeout %v)", pulled, len(clients), ctx.Err(), c.Timeout)
		case <-time.After(100 * time.Millisecond):
		}
		pulled = 0
		for _, cl := range clients {
			if !cl.Status().LastPull.IsZero() {
				pulled++
			}
		}
	}
	res.FirstPulled = time.Since(start)
	pulls0 := countPulls(lb)
	m0 := members.Load()
	cpu0 := cpuNow(f.procs, f.postmaster)
	be0, err := f.backendsCPU(ctx)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return res, fmt.Errorf("the run ended while measuring: %w", ctx.Err())
	case <-time.After(c.Duration):
	}
	elapsed := time.Since(t0)
	cpu1 := cpuNow(f.procs, f.postmaster)
	be1, err := f.backendsCPU(ctx)
	if err != nil {
		return res, err
	}
	res.Pulls, res.Members = countPulls(lb)-pulls0, members.Load()-m0
	stop()
	wg.Wait()

	var failures int
	for _, cl := range clients {
		if cl.Status().Failures > 0 {
			failures++
		}
	}
	var hqCPU time.Duration
	for i := range f.procs {
		hqCPU += cpu1.procs[i] - cpu0.procs[i]
	}
	pgCPU, clusterCPU := cpuSince(be0, be1), cpu1.cluster-cpu0.cluster
	res.PerSecond = float64(res.Pulls) / elapsed.Seconds()
	n := time.Duration(max(1, res.Pulls))
	res.HQPerPull, res.PGPerPull = hqCPU/n, pgCPU/n
	lb.mu.Lock()
	p50, p99, mx := percentiles(lb.pulls)
	lb.mu.Unlock()
	fmt.Fprintf(out, "every store had pulled once after %v (measured from %v on); then %d pulls in %v: %.0f pulls/s (%.0f/s per 10,000 stores at this interval), %d member states applied, %d stores failing at the end\n",
		res.FirstPulled.Round(time.Millisecond), t0.Sub(start).Round(time.Millisecond), res.Pulls, elapsed.Round(time.Millisecond), res.PerSecond, 10000/c.PullEvery.Seconds(), res.Members, failures)
	fmt.Fprintf(out, "pull round trip p50 %v p99 %v max %v (over the whole run)\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond), mx.Round(time.Microsecond))
	fmt.Fprintf(out, "CPU per pull: HQ %.0f µs, PostgreSQL (HQ's backends) %.0f µs, together %.0f µs; the whole PostgreSQL cluster, others' work included, %.0f µs; in cores busy: HQ %.2f, PostgreSQL %.2f, stores (this program) %.2f\n",
		us(res.HQPerPull), us(res.PGPerPull), us(res.HQPerPull+res.PGPerPull), us(clusterCPU/n),
		hqCPU.Seconds()/elapsed.Seconds(), pgCPU.Seconds()/elapsed.Seconds(), (cpu1.self-cpu0.self).Seconds()/elapsed.Seconds())
	if 10000/c.PullEvery.Seconds() > 0 {
		per := (res.HQPerPull + res.PGPerPull).Seconds() * 10000 / c.PullEvery.Seconds()
		fmt.Fprintf(out, "10,000 stores pulling every %v would keep %.2f cores busy (HQ and PostgreSQL) with pulls alone\n", c.PullEvery, per)
	}
	return res, nil
}

// startCursor is the feed's cursor as the stores hold it when the run
// starts: in step with HQ (empty), as the chain's stores were the evening
// before, so ten thousand snapshots at once are not what is measured.
func startCursor(ctx context.Context, st *pg.Store) (string, error) {
	cur, err := st.Snapshot(ctx, func(wire.MemberState) error { return nil })
	if err != nil {
		return "", fmt.Errorf("the stores' starting cursor: %w", err)
	}
	return cur, nil
}

// quietPulls measures the pulls of the stores' clients, still running,
// over one interval once the day's uploads are done: each store pulls
// about once, the first of them with the day's last changes. It returns
// the line to print.
func quietPulls(ctx context.Context, f *fleet, lb *balancer, every time.Duration) (string, error) {
	n0, cpu0 := countPulls(lb), cpuNow(f.procs, f.postmaster)
	be0, err := f.backendsCPU(ctx)
	if err != nil {
		return "", err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("the run ended while measuring the pulls after the day: %w", ctx.Err())
	case <-time.After(every):
	}
	elapsed := time.Since(t0)
	cpu1 := cpuNow(f.procs, f.postmaster)
	be1, err := f.backendsCPU(ctx)
	if err != nil {
		return "", err
	}
	pulls := countPulls(lb) - n0
	var hqCPU time.Duration
	for i := range f.procs {
		hqCPU += cpu1.procs[i] - cpu0.procs[i]
	}
	n := time.Duration(max(1, pulls))
	pgCPU := cpuSince(be0, be1)
	return fmt.Sprintf("pulls after the day (uploads done, %v): %d pulls (%.1f/s); CPU per pull: HQ %.0f µs, PostgreSQL (HQ's backends) %.0f µs\n",
		elapsed.Round(time.Millisecond), pulls, float64(pulls)/elapsed.Seconds(), us(hqCPU/n), us(pgCPU/n)), nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// countPulls is the changes pages answered so far, all processes.
func countPulls(lb *balancer) int64 {
	var n int64
	for _, be := range lb.backends {
		n += be.pulls.Load()
	}
	return n
}
