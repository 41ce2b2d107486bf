// Command loadtest puts HQ under load on loopback and prints what it
// sustains.
//
// Without -procs it runs N simulated stores syncing at once against one HQ
// in this process and prints throughput (entries/s) and acknowledgement
// latency (p50, p99). Storage: a temporary bbolt file, or PostgreSQL with
// -pg URL (a fresh schema, dropped afterwards).
//
//	go run ./sync/hq/loadtest -stores 1000 -batches 5 -batch 100
//	go run ./sync/hq/loadtest -stores 1000 -pg postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//
// With -procs N it runs a chain's business day: N real `posagent hq serve
// --pg` processes (built once from ./cmd/posagent) on one fresh schema,
// -stores × -tills tills writing -per-till entries each (sales with and
// without members, refunds, voids, enrolments, top-ups) over opening hours
// compressed into -duration, each store syncing with the real sync client
// over a round-robin balancer. It prints entries/s overall and per
// process, upload and entry-to-ack latency, each process's peak RSS, the
// CPU split between HQ, PostgreSQL and the stores, the database's size,
// a totals check against the tills, and with -compare a raw COPY of the
// same batches.
//
//	go run ./sync/hq/loadtest -procs 3 -stores 10000 -tills 5 -per-till 20 -duration 2m -compare -pg postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
//
// The stores also pull HQ's changes every -pull-every (30 s, as the
// agent); the pulls over the day and the CPU per pull of one interval of
// pulls after it are printed. With -pulls there is no day: the stores only
// pull, and HQ's CPU per pull is measured over -duration:
//
//	go run ./sync/hq/loadtest -procs 2 -pulls -stores 10000 -duration 60s -pg postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

func main() {
	stores := flag.Int("stores", 1000, "simulated stores")
	batches := flag.Int("batches", 5, "without -procs: batches each store uploads")
	size := flag.Int("batch", 100, "without -procs: entries per batch")
	pgURL := flag.String("pg", "", "PostgreSQL URL (without -procs, default: a temporary bbolt file)")
	inflight := flag.Int("max-inflight", 64, "HQ's bound on uploads processed at once (with -procs: each process's --max-inflight)")
	var c chainConfig
	flag.IntVar(&c.Procs, "procs", 0, "run a chain's day against this many hq serve processes (needs -pg)")
	flag.BoolVar(&c.Bouncer, "bouncer", false, "with -procs: HQ connects through a PgBouncer (transaction pooling) started for the run")
	flag.IntVar(&c.Tills, "tills", 5, "with -procs: tills per store")
	flag.IntVar(&c.PerTill, "per-till", 40, "with -procs: entries each till writes in the day")
	flag.IntVar(&c.Members, "members", 200000, "with -procs: the chain's members")
	flag.DurationVar(&c.Duration, "duration", 2*time.Minute, "with -procs: the opening hours (10:00-22:00) compressed into this; 0: the whole day is written before the stores sync")
	flag.DurationVar(&c.Poll, "poll", time.Second, "with -procs: the sync client's poll")
	flag.DurationVar(&c.PullEvery, "pull-every", 30*time.Second, "with -procs: how often each store pulls HQ's changes, as the agent's sync client does (the pulls of one such interval after the day are measured); -1s: never")
	pullsOnly := flag.Bool("pulls", false, "with -procs: no day; the stores only pull, every -pull-every, and HQ's CPU per pull is measured over -duration once each has pulled once")
	flag.IntVar(&c.Conns, "conns", 0, "with -procs: connections to the HQ processes, all together (default: 2 per store, at most 4096)")
	flag.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "with -procs: give up when not every entry is acked by then")
	flag.Float64Var(&c.HQCPUs, "hq-cpus", 0, "with -procs: hold each HQ process to this many CPUs with a cgroup (Linux, root), as if each ran on a machine of that size")
	flag.StringVar(&c.MemberFeed, "member-feed", "", "with -procs: each process's --member-feed (all or identity; default: hq serve's)")
	flag.BoolVar(&c.Lookups, "lookups", false, "with -procs and -duration above 0: each store looks up at HQ (GET /v1/members/{id}) every member an entry of its names, as a till does when a member is identified")
	flag.BoolVar(&c.Compare, "compare", false, "with -procs: afterwards, COPY the same entries in the same batches into a scratch table and compare")
	hqBin := flag.String("hq-bin", "", "with -procs: a posagent binary to run (default: go build ./cmd/posagent)")
	flag.Uint64Var(&c.Seed, "seed", 1, "with -procs: the simulation's random seed")
	kpi := flag.String("kpi", "", "time /kpi of a real hq serve --pg over a chain history of these many entries (e.g. 1M,10M), loaded with COPY (needs -pg; -kpi-* flags)")
	flag.Parse()
	var err error
	if *kpi != "" {
		var k kpiConfig
		if k.Sizes, err = parseSizes(*kpi); err == nil {
			k.PG, k.Stores, k.Tills, k.Years, k.Reps, k.Out = *pgURL, *kpiStores, *kpiTills, *kpiYears, *kpiReps, os.Stdout
			if *hqBin != "" {
				k.HQ = []string{*hqBin, "hq"}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			err = runKPI(ctx, k)
			stop()
		}
	} else if c.Procs > 0 {
		c.PG, c.Stores, c.MaxInFlight, c.Out = *pgURL, *stores, *inflight, os.Stdout
		if *hqBin != "" {
			c.HQ = []string{*hqBin, "hq"}
		}
		// Interrupted, the run still stops its processes and drops its
		// schema.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		if *pullsOnly {
			_, err = runPulls(ctx, c)
		} else {
			_, err = runChain(ctx, c)
		}
		stop()
	} else {
		err = run(*stores, *batches, *size, *pgURL, *inflight)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func numCPU() int { return runtime.NumCPU() }

// hqTill is till k (T1, T2, …) of store id.
func hqTill(id string, k int) hqtest.Till {
	return hqtest.Till{Store: id, Till: "T" + strconv.Itoa(k+1)}
}

func run(stores, batches, size int, pgURL string, inflight int) error {
	ctx := context.Background()
	var st hq.Store
	backend := "bbolt"
	if pgURL != "" {
		u, drop, err := pg.FreshSchema(ctx, pgURL, "hqload_")
		if err != nil {
			return err
		}
		defer drop()
		p, err := pg.Open(ctx, u, pg.Options{MaxConns: int32(min(inflight, 32))})
		if err != nil {
			return err
		}
		st, backend = p, "postgresql"
	} else {
		dir, err := os.MkdirTemp("", "hqload")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		b, err := bolt.Open(filepath.Join(dir, "hq.db"), bolt.Options{NoSync: os.Getenv("HQLOAD_NOSYNC") == "1"})
		if err != nil {
			return err
		}
		st = b
	}
	defer st.Close()
	srv := hq.NewServer(st, hq.Options{MaxInFlight: inflight})
	tokens := make([]string, stores)
	for i := range tokens {
		tok, err := srv.IssueCredential(ctx, hq.RoleStore, storeID(i), "", "")
		if err != nil {
			return err
		}
		tokens[i] = tok
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + wire.PathBatches
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: stores, MaxConnsPerHost: stores}, Timeout: 2 * time.Minute}

	// Bodies are built before the clock starts: the figure is HQ's.
	bodies := make([][][]byte, stores)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range bodies {
		tl := &hqtest.Till{Store: storeID(i), Till: "T1"}
		for k := 0; k < batches; k++ {
			es := make([]entry.Entry, size)
			for j := range es {
				es[j] = tl.Sale(fmt.Sprintf("M%06d", (i*7919+k*size+j)%200000), t0.Add(time.Duration(k*size+j)*time.Second), 1500, 15, 0, 0, "")
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			if err := json.NewEncoder(zw).Encode(wire.Batch{Store: tl.Store, Till: tl.Till, First: es[0].Seq, Last: es[size-1].Seq, Entries: es}); err != nil {
				return err
			}
			zw.Close()
			bodies[i] = append(bodies[i], buf.Bytes())
		}
	}

	var lat []time.Duration
	var mu sync.Mutex
	var retries, failures atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < stores; i++ { // one goroutine per store: 1,000 stores at once
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for _, body := range bodies[i] {
				sent := time.Now()
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tokens[i])
					req.Header.Set("Content-Encoding", "gzip")
					resp, err := client.Do(req)
					if err != nil {
						failures.Add(1)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable || attempt > 50 {
						failures.Add(1)
						return
					}
					retries.Add(1)
					wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(time.Duration(max(wait, 1)) * time.Second) // honour Retry-After, as the till does
				}
				mu.Lock()
				lat = append(lat, time.Since(sent))
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)

	total, err := srv.Totals(ctx)
	if err != nil {
		return err
	}
	want := int64(stores * batches * size)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Printf("backend=%s stores=%d batches/store=%d entries/batch=%d max-inflight=%d\n", backend, stores, batches, size, inflight)
	fmt.Printf("entries stored %d of %d, failures %d, 503 retries %d\n", total.Chain.Entries, want, failures.Load(), retries.Load())
	fmt.Printf("elapsed %v, throughput %.0f entries/s, %.0f batches/s\n", elapsed.Round(time.Millisecond), float64(total.Chain.Entries)/elapsed.Seconds(), float64(len(lat))/elapsed.Seconds())
	fmt.Printf("ack latency p50 %v p99 %v max %v\n", pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
	if total.Chain.Entries != want || failures.Load() > 0 {
		return fmt.Errorf("HQ holds %d entries, expected %d", total.Chain.Entries, want)
	}
	return nil
}

func storeID(i int) string { return fmt.Sprintf("S%04d", i) }
