package multitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/client/memstore"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// fleetPlan sizes a run of simulated stores.
type fleetPlan struct {
	stores, tills  int
	waves, perTill int  // each till writes perTill entries in each of waves waves
	batch          int  // the client's BatchMax
	members        int  // members shared by all stores
	noPull         bool // stores only upload (no member feed pulls)
}

// sim is one store: its outbox (the till ledgers as the client sees them)
// and its sync client.
type sim struct {
	id    string
	out   *memstore.Store
	cl    *client.Client
	tills []*hqtest.Till
}

// newFleet issues a credential per store (directly in the database) and
// makes each store's sync client, pointed at url.
func newFleet(t testing.TB, direct, url string, p fleetPlan) []*sim {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := pg.Open(ctx, direct, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	defer st.Close()
	srv := hq.NewServer(st, hq.Options{})
	sims := make([]*sim, p.stores)
	for i := range sims {
		s := &sim{id: fmt.Sprintf("S%03d", i), out: nil}
		s.out = memstore.New(s.id)
		tok, err := srv.IssueCredential(ctx, hq.RoleStore, s.id, "", "Asia/Shanghai")
		require.NoError(t, err)
		var in client.Inbox = s.out
		if p.noPull {
			in = nil
		}
		s.cl, err = client.New(client.Config{URL: url, Token: tok, Store: s.id, BatchMax: p.batch, Parallel: 2,
			BackoffBase: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, RequestTimeout: 30 * time.Second}, s.out, in, nil)
		require.NoError(t, err)
		for k := 0; k < p.tills; k++ {
			s.tills = append(s.tills, &hqtest.Till{Store: s.id, Till: fmt.Sprintf("T%d", k+1)})
		}
		sims[i] = s
	}
	return sims
}

// write appends a wave of entries to every till of s: sales earning and
// redeeming points and paying with stored value, top-ups, and now and then
// a void, over members every store shares.
func (s *sim) write(t testing.TB, p fleetPlan, wave int) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(wave) * time.Hour)
	for k, tl := range s.tills {
		var last *entry.Entry
		for j := 0; j < p.perTill; j++ {
			n := int(tl.Seq) + 1
			m := fmt.Sprintf("M%04d", (n*31+k*7+len(s.id)*13+int(s.id[len(s.id)-1]))%p.members)
			when := at.Add(time.Duration(j) * time.Second)
			var e entry.Entry
			switch {
			case n%17 == 0 && last != nil:
				e = tl.Void(*last, when)
				last = nil
			case n%5 == 0:
				e = tl.TopUp(m, when, 10000, 500)
			default:
				due := 1000 + int64(n%40)*250
				sv := int64(0)
				if n%3 == 0 {
					sv = 200
				}
				e = tl.Sale(m, when, due, due/100, int64(n%2), sv, "")
				last = &e
			}
			_, err := s.out.Append(tl.Till, e)
			require.NoError(t, err)
		}
	}
}

// done tells whether HQ acked every entry of every till.
func (s *sim) done() bool {
	for _, tl := range s.tills {
		a, err := s.out.Acked(tl.Till)
		if err != nil || a != tl.Seq {
			return false
		}
	}
	return true
}

// acked is how many of s's entries HQ acked.
func (s *sim) acked() int64 {
	var n int64
	for _, tl := range s.tills {
		a, _ := s.out.Acked(tl.Till)
		n += int64(a)
	}
	return n
}

// runFleet has every store write its waves and sync (SyncNow, retried until
// its tills are acked), all at once. It returns when every entry is acked,
// or fails the test at the deadline.
func runFleet(t testing.TB, sims []*sim, p fleetPlan, lb *balancer, deadline time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(sims))
	for i, s := range sims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := 0; w < p.waves; w++ {
				s.write(t, p, w)
				for !s.done() {
					if ctx.Err() != nil {
						errs[i] = fmt.Errorf("store %s: not all acked: %w (last sync error: %v)", s.id, ctx.Err(), s.cl.Status().LastError)
						return
					}
					if err := s.cl.SyncNow(ctx); err != nil {
						time.Sleep(20 * time.Millisecond) // the balancer has a backend down, or HQ is busy
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			for i, be := range lb.backends {
				t.Logf("backend %d: %d uploads, %d cut, last: %v", i, be.uploads.Load(), be.cut.Load(), be.lastCut.Load())
			}
		}
		require.NoError(t, err)
	}
}

// checkExactlyOnce: HQ holds each of the tills' entries exactly once, as
// written, acks each till to its last entry, and its totals and member
// balances equal the sums of the tills' entries. direct opens the schema;
// hqURL is any HQ process (its admin API).
func checkExactlyOnce(t testing.TB, direct, hqURL string, sims []*sim) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	st, err := pg.Open(ctx, direct, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	defer st.Close()

	want := map[string]entry.Entry{}
	var all []entry.Entry
	type sums struct{ entries, sales, due, topups, voids, points, sv int64 }
	perStore := map[string]*sums{}
	for _, s := range sims {
		ss := &sums{}
		perStore[s.id] = ss
		for _, tl := range s.tills {
			acked, err := st.TillAcked(ctx, s.id, tl.Till)
			require.NoError(t, err)
			require.Equal(t, tl.Seq, acked, "HQ's mark of %s/%s", s.id, tl.Till)
			for _, e := range s.out.Entries(tl.Till) {
				want[e.ID()] = e
				all = append(all, e)
				ss.entries++
				ss.points += e.PointsDelta
				ss.sv += e.StoredValueDelta
				switch {
				case e.Sale != nil:
					ss.sales++
					ss.due += e.Sale.Due
				case e.TopUp != nil:
					ss.topups++
				case e.Void != nil:
					ss.voids++
				}
			}
		}
	}

	// The export holds every entry once, as the till wrote it.
	seen := map[string]int{}
	for _, x := range exportAll(t, st, len(want)) {
		id := x.Entry.ID()
		seen[id]++
		w, ok := want[id]
		require.True(t, ok, "HQ holds %s, which no till wrote", id)
		gb, _ := json.Marshal(x.Entry)
		wb, _ := json.Marshal(w)
		require.JSONEq(t, string(wb), string(gb), "entry %s", id)
	}
	var twice []string
	for id, n := range seen {
		if n != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", id, n))
		}
	}
	sort.Strings(twice)
	require.Empty(t, twice, "entries stored more than once")
	require.Len(t, seen, len(want), "entries stored")
	dl, err := st.DeadLetters(ctx, true)
	require.NoError(t, err)
	require.Empty(t, dl)

	// Balances: each member's equals the sum of the tills' deltas.
	ds, err := hq.Deltas(all)
	require.NoError(t, err)
	var pts, sv int64
	for _, d := range ds {
		m, err := st.Member(ctx, d.MemberID)
		require.NoError(t, err)
		require.Equal(t, d.Points, m.Points, "points of %s", d.MemberID)
		require.Equal(t, d.StoredValue, m.StoredValue, "stored value of %s", d.MemberID)
		pts += d.Points
		sv += d.StoredValue
	}

	// HQ's own totals, from a running process.
	req, err := http.NewRequestWithContext(ctx, "GET", hqURL+"/admin/totals", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tot hq.Totals
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tot))
	require.Equal(t, pts, tot.MemberPoints)
	require.Equal(t, sv, tot.MemberStoredValue)
	require.Len(t, tot.Stores, len(sims))
	for id, w := range perStore {
		g := tot.Stores[id]
		require.NotNil(t, g, "store %s in HQ's totals", id)
		require.Equal(t, *w, sums{g.Entries, g.Sales, g.SalesDue, g.TopUps, g.Voids, g.Points, g.StoredValue}, "totals of store %s", id)
	}
}

// killMidUpload SIGKILLs victim once a fraction of all entries is acked
// and an upload is under way at it. It returns at once; the returned
// func waits and tells whether the kill happened with an upload in flight.
func killMidUpload(sims []*sim, total int64, victim *hqProc, be *backend, stop <-chan struct{}) func() bool {
	var killed atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range 600_000 { // 10 minutes at most
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var acked int64
			for _, s := range sims {
				acked += s.acked()
			}
			if acked*3 >= total && be.inflight.Load() > 0 {
				victim.kill()
				killed.Store(true)
				return
			}
		}
	}()
	return func() bool { <-done; return killed.Load() }
}

// exportAll follows st's export feed from the start until it has handed out
// n entries (or 60 s have passed) and returns them. The feed hands out only
// what no transaction still open anywhere on the server could precede, so
// another client's open transaction holds it back for a while.
func exportAll(t testing.TB, st *pg.Store, n int) []wire.ExportedEntry {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []wire.ExportedEntry
	cursor := ""
	for range 1_000_000 {
		page, err := st.Export(ctx, cursor, 1000)
		require.NoError(t, err)
		out = append(out, page.Entries...)
		cursor = page.Cursor
		if page.More {
			continue
		}
		if len(out) >= n || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}
