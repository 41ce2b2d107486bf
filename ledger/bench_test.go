package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// rawSync is a 4 KiB write + fdatasync in the ledger's directory: the floor
// a durable commit on this disk cannot beat.
type rawSync struct {
	f   *os.File
	buf []byte
	i   int64
}

func newRawSync(b *testing.B, dir string) *rawSync {
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	return &rawSync{f: f, buf: make([]byte, 4096)}
}

func (r *rawSync) sample(b *testing.B) time.Duration {
	start := time.Now()
	if _, err := r.f.WriteAt(r.buf, (r.i%64)*4096); err != nil {
		b.Fatal(err)
	}
	r.i++
	if err := unix.Fdatasync(int(r.f.Fd())); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func benchLedger(b *testing.B, dir string, members int) *Ledger {
	l, err := Open(filepath.Join(dir, "bench.db"), Options{Store: "S1", Till: "T1", Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < members; i++ {
		if _, err := l.Enrol(ctx, EnrolRequest{Key: fmt.Sprint(i), Member: benchMember(i)}); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// writeStats snapshots pages written and group commits, so a benchmark
// reports only its own commits (not the enrolments before it).
type writeStats struct{ pages, groups, requests, ckpts, walBytes int64 }

func snapWrites(l *Ledger) writeStats {
	s := l.db.Stats()
	g, r := l.CommitStats()
	return writeStats{s.TxStats.GetWrite(), g, r, l.ckpts.Load(), l.walBytes.Load()}
}

// report adds bbolt pages written per sale (checkpoints; bbolt counts one
// per node written, meta page included), log bytes per sale, sales per
// group and bbolt commits per 1000 sales.
func (w writeStats) report(b *testing.B, l *Ledger, sales int) {
	now := snapWrites(l)
	pages, groups, reqs := now.pages-w.pages, now.groups-w.groups, now.requests-w.requests
	b.ReportMetric(float64(pages)/float64(max(sales, 1)), "pages/sale")
	b.ReportMetric(float64(now.walBytes-w.walBytes)/float64(max(sales, 1)), "wal-B/sale")
	b.ReportMetric(float64(reqs)/float64(max(groups, 1)), "sales/group")
	b.ReportMetric(1000*float64(now.ckpts-w.ckpts)/float64(max(sales, 1)), "ckpt/1k-sales")
}

func benchMember(i int) entry.Member {
	return entry.Member{ID: fmt.Sprintf("M%d", i), Name: "bench"}
}

func benchLines() []loyalty.Line {
	return []loyalty.Line{line(1, 2, 1999), line(2, 1, 4550), line(3, 3, 880), {LineNo: 4, SKU: "tobacco", Qty: 1, UnitPrice: 2500, EarnsPoints: false}}
}

// BenchmarkSaleCommitOneTill: durable sale commit latency on one till, with
// the raw write+fdatasync latency of the same directory for comparison.
func BenchmarkSaleCommitOneTill(b *testing.B) {
	dir := b.TempDir()
	l := benchLedger(b, dir, 1)
	defer l.Close()
	raw := newRawSync(b, dir)
	defer raw.f.Close()
	// A bare one-key bbolt commit on the same disk: what bbolt itself costs
	// (two fdatasyncs), the floor for any bbolt ledger.
	bare, err := bolt.Open(filepath.Join(dir, "bare.db"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	var bareLat []time.Duration
	lat := make([]time.Duration, 0, b.N)
	var rawLat []time.Duration
	ws := snapWrites(l)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := l.CommitSale(ctx, SaleRequest{ReceiptID: fmt.Sprint(i), MemberID: "M0", Lines: benchLines()}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		// Interleaved, so both see the same disk and the same load.
		b.StopTimer()
		rawLat = append(rawLat, raw.sample(b))
		bs := time.Now()
		if err := bare.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put(u64(uint64(i)), []byte("x"))
		}); err != nil {
			b.Fatal(err)
		}
		bareLat = append(bareLat, time.Since(bs))
		b.StartTimer()
	}
	b.StopTimer()
	p50, p99, f50 := pct(lat, 0.50), pct(lat, 0.99), pct(rawLat, 0.50)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(f50.Microseconds()), "fsync-p50-µs")
	b.ReportMetric(float64(p50)/float64(f50), "p50/fsync")
	b.ReportMetric(float64(pct(bareLat, 0.5))/float64(f50), "bare-bbolt/fsync")
	ws.report(b, l, b.N)
}

// BenchmarkSaleCommit8Tills: throughput of 8 tills committing at once (each
// till one sale at a time), coalesced by group commit.
func BenchmarkSaleCommit8Tills(b *testing.B) {
	l := benchLedger(b, b.TempDir(), 8)
	defer l.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	ws := snapWrites(l)
	b.ResetTimer()
	start := time.Now()
	for t := 0; t < 8; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				_, err := l.CommitSale(ctx, SaleRequest{Till: fmt.Sprintf("T%d", t), ReceiptID: fmt.Sprint(i),
					MemberID: fmt.Sprintf("M%d", t), Lines: benchLines()})
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "sales/s")
	ws.report(b, l, b.N)
}
