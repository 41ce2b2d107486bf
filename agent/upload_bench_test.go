package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"posagent/agent/config"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/faultproxy"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
)

const (
	ubAPIToken = "upload-bench-api-token-0123456789"
	ubTokenKey = "00112233445566778899aabbccddeeff"
	// ubWait bounds each wait of the benchmark; generous, since the box
	// may be busy with other builds (and -race is several times slower).
	ubWait = 60 * time.Second
	// ubLong bounds the fill and the upload of 50,000 sales: seconds
	// normally, but about a minute each under -race on two busy cores.
	ubLong = 5 * time.Minute
)

// TestOfflineUploadAgentBench is issue 5's benchmark on the real till path:
// a real agent (bbolt ledger, its own sync client) that sold 50,000 times
// to members while HQ was unreachable, then the link comes back and the
// cashier presses "sync now". It times the upload until the ledger's
// backlog is empty (HQ acknowledges a batch only once its store committed
// it), then checks HQ holds exactly what the ledger does. The real HQ
// server runs in-process on loopback over the bolt store with fsync on,
// behind a fault proxy that refuses connections while the store is
// offline. It prints figures and asserts only exactness (target < 10 s).
//
//	POSAGENT_SYNC_BENCH=1 go test -run OfflineUploadAgentBench -v ./agent/
func TestOfflineUploadAgentBench(t *testing.T) {
	if os.Getenv("POSAGENT_SYNC_BENCH") != "1" {
		t.Skip("set POSAGENT_SYNC_BENCH=1 to run the agent's 50k offline upload benchmark")
	}
	const (
		sales   = 50000
		members = 300
		workers = 8 // POS clients committing at once during the fill
	)
	ctx := context.Background()

	// ---- HQ: bolt store, fsync on, on loopback behind the fault proxy.
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tok, err := srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.New(strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })

	// ---- The till agent, with the shipped sync settings.
	cfg := config.Default()
	cfg.Store, cfg.Till = "S1", "T1"
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.Token = ubAPIToken
	cfg.TokenKey = ubTokenKey
	// These tests are about other things; cashier accounts have their own.
	cfg.Cashiers.AllowPOSWithoutCashier = true
	cfg.HQ.URL, cfg.HQ.Token = px.URL(), tok
	a := ubStart(t, cfg)
	led := a.Ledger()
	hc := &http.Client{Timeout: ubLong} // one press may upload everything
	t.Cleanup(hc.CloseIdleConnections)
	syncNow := func() (int, error) {
		req, err := http.NewRequest("POST", "http://"+a.Addr()+"/v1/sync/now", nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+ubAPIToken)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	backlog := func() int {
		n, _, err := led.Backlog()
		if err != nil {
			t.Fatalf("ledger backlog: %v", err)
		}
		return n
	}

	// ---- Online: the members enrol and HQ knows them.
	ids := make([]string, members)
	for i := range ids {
		ids[i] = fmt.Sprintf("M%03d", i)
		if _, err := led.Enrol(ctx, ledger.EnrolRequest{Key: "enrol-" + ids[i], Cashier: "c1",
			Member: entry.Member{ID: ids[i], Name: "会员" + ids[i], Mobile: fmt.Sprintf("1390000%04d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(ubWait)
	for backlog() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the enrolments did not reach HQ within %v (backlog %d, sync %+v)", ubWait, backlog(), a.sync.Status())
		}
		_, _ = syncNow()
	}

	// ---- The link goes down; the sync client notices on its next exchange.
	px.Set(faultproxy.Refuse())
	px.CutAll()
	deadline = time.Now().Add(ubWait)
	for !a.offline() {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not notice HQ is unreachable within %v", ubWait)
		}
		_, _ = syncNow() // refused: the round fails and the agent is offline
	}

	// ---- Fill: 50,000 member sales, committed offline through the ledger
	// by several POS clients at once. Each worker owns its members, so it
	// knows their points and what they redeemed offline.
	progs := led.Programs()
	p, err := progs.At(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	redeemCap := p.OfflineRedeemCapPerDay()
	skus := []struct {
		sku   string
		price int64
	}{{"TEA", 990}, {"RICE", 2500}, {"OIL", 4800}, {"WINE", 12800}, {"COAT", 35000}}
	type fillSums struct {
		due, redeemed int64
		redemptions   int
	}
	sums := make([]fillSums, workers)
	fillCtx, cancelFill := context.WithTimeout(ctx, ubLong)
	defer cancelFill()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 5))
			var own []string
			for i := w; i < members; i += workers {
				own = append(own, ids[i])
			}
			count := sales / workers
			if w < sales%workers {
				count++
			}
			redeemed := map[string]int64{}
			for k := range count {
				m := own[k%len(own)]
				var lines []loyalty.Line
				for n := range 1 + rnd.IntN(3) {
					s := skus[rnd.IntN(len(skus))]
					lines = append(lines, loyalty.Line{LineNo: n + 1, SKU: s.sku, Qty: int64(1 + rnd.IntN(3)), UnitPrice: s.price,
						Discountable: s.sku != "TEA", EarnsPoints: true})
				}
				req := ledger.SaleRequest{ReceiptID: fmt.Sprintf("OFF-%d-%05d", w, k), MemberID: m, Cashier: "c2",
					Lines: lines, Offline: true}
				// Every seventh visit the member pays part with points, as
				// long as the member has them and the offline cap allows
				// (the smallest basket is 9.90 yuan, so up to 4 yuan of
				// points is within half of it).
				if (k/len(own))%7 == 6 {
					amt := int64(100 * (1 + rnd.IntN(4)))
					v, err := led.Member(m)
					if err != nil {
						errs <- fmt.Errorf("member %s: %w", m, err)
						return
					}
					if v.Points >= amt && redeemed[m]+amt <= redeemCap {
						req.RedeemPoints = amt
					}
				}
				e, err := led.CommitSale(fillCtx, req)
				if err != nil {
					errs <- fmt.Errorf("sale %s for %s: %w", req.ReceiptID, m, err)
					return
				}
				if e.Sale.RedeemPoints != req.RedeemPoints || (req.RedeemPoints > 0) != e.Sale.OfflineRedeem {
					errs <- fmt.Errorf("sale %s redeemed %d (offline %v), asked %d", req.ReceiptID, e.Sale.RedeemPoints, e.Sale.OfflineRedeem, req.RedeemPoints)
					return
				}
				redeemed[m] += req.RedeemPoints
				sums[w].due += e.Sale.Due
				sums[w].redeemed += req.RedeemPoints
				if req.RedeemPoints > 0 {
					sums[w].redemptions++
				}
			}
		})
	}
	wg.Wait()
	fill := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	var fs fillSums
	for _, s := range sums {
		fs.due += s.due
		fs.redeemed += s.redeemed
		fs.redemptions += s.redemptions
	}
	if fs.redemptions == 0 {
		t.Fatal("no sale redeemed points offline")
	}

	// What the ledger holds: everything, and the backlog is the offline
	// work (sales and the tier changes they brought).
	ls := ubLedgerSums(t, led)
	if ls.sales != sales || ls.due != fs.due {
		t.Fatalf("ledger holds %d sales due %d; committed %d due %d", ls.sales, ls.due, sales, fs.due)
	}
	pending := backlog()
	if pending < sales {
		t.Fatalf("backlog %d before the link is back, want at least %d", pending, sales)
	}
	if !a.offline() {
		t.Fatal("the agent thinks HQ is reachable while the proxy refuses")
	}
	batches0 := a.sync.Status().Batches

	// ---- The link is back: the cashier presses "sync now" (again if a
	// press meets a connection the proxy cut) until nothing is pending.
	px.Set(faultproxy.Pass())
	start = time.Now()
	pressCtx, stopPress := context.WithCancel(ctx)
	pressed := make(chan struct{})
	go func() {
		defer close(pressed)
		for pressCtx.Err() == nil {
			_, _ = syncNow()
		}
	}()
	deadline = start.Add(ubLong)
	for backlog() != 0 {
		if time.Now().After(deadline) {
			stopPress()
			<-pressed
			t.Fatalf("upload not done within %v: backlog %d of %d, sync %+v", ubLong, backlog(), pending, a.sync.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	upload := time.Since(start)
	stopPress()
	select {
	case <-pressed:
	case <-time.After(ubWait):
		t.Fatal("the last sync now did not return")
	}
	batches := a.sync.Status().Batches - batches0

	// ---- HQ holds exactly what the ledger does.
	tot, err := srv.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := tot.Stores["S1"]
	if got == nil {
		t.Fatal("HQ holds nothing of store S1")
	}
	if got.Sales != sales || got.Entries != int64(ls.entries) || got.SalesDue != ls.due ||
		got.Points != ls.points || got.StoredValue != ls.storedValue || tot.OpenDeadLetters != 0 {
		t.Fatalf("HQ totals %+v (open dead letters %d); ledger: %d entries, %d sales, due %d, points %d, stored value %d",
			*got, tot.OpenDeadLetters, ls.entries, ls.sales, ls.due, ls.points, ls.storedValue)
	}

	line := fmt.Sprintf("BENCH agent 50k offline upload: upload=%.2fs (%.0f entries/s) target<10s; fill=%.2fs; batches=%d; entries=%d sales=%d redemptions=%d (%d points)",
		upload.Seconds(), float64(pending)/upload.Seconds(), fill.Seconds(), batches, pending, sales, fs.redemptions, fs.redeemed)
	fmt.Println(line)
	t.Log(line)
}

// ubStart runs an agent until the test ends.
func ubStart(t *testing.T, cfg config.Config) *Agent {
	t.Helper()
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	a.OnReady(func() { close(ready) })
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(ubWait):
			t.Error("agent did not stop in time")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped at start: %v", err)
	case <-time.After(ubWait):
		t.Fatal("agent not ready in time")
	}
	return a
}

type ubSums struct {
	entries, sales           int
	due, points, storedValue int64
}

// ubLedgerSums adds up every entry in the ledger as HQ's totals do.
func ubLedgerSums(t *testing.T, l *ledger.Ledger) ubSums {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(l.Export(pw, nil)) }()
	defer pr.Close()
	var s ubSums
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e entry.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("ledger export: %v", err)
		}
		s.entries++
		s.points += e.PointsDelta
		s.storedValue += e.StoredValueDelta
		if e.Sale != nil { // as HQ counts sales
			s.sales++
			s.due += e.Sale.Due
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("ledger export: %v", err)
	}
	return s
}
