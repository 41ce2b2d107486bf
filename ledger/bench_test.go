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

// rawFsync measures a 4 KiB write + fdatasync in dir: the floor a durable
// commit on this disk cannot beat.
func rawFsync(b *testing.B, dir string, n int) []time.Duration {
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i%64)*4096); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
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
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := l.CommitSale(ctx, SaleRequest{ReceiptID: fmt.Sprint(i), MemberID: "M0", Lines: benchLines()}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	raw := rawFsync(b, dir, max(200, min(b.N, 1000)))
	p50, p99, f50 := pct(lat, 0.50), pct(lat, 0.99), pct(raw, 0.50)
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(f50.Microseconds()), "fsync-p50-µs")
	b.ReportMetric(float64(p50)/float64(f50), "p50/fsync")
	g, _ := l.CommitStats()
	b.ReportMetric(float64(func() int64 { s := l.db.Stats(); return s.TxStats.GetWrite() }())/float64(max(g, 1)), "pages/commit")
}

// BenchmarkSaleCommit8Tills: throughput of 8 tills committing at once (each
// till one sale at a time), coalesced by group commit.
func BenchmarkSaleCommit8Tills(b *testing.B) {
	l := benchLedger(b, b.TempDir(), 8)
	defer l.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
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
	g, r := l.CommitStats()
	b.ReportMetric(float64(r)/float64(max(g, 1)), "requests/commit")
	b.ReportMetric(float64(func() int64 { s := l.db.Stats(); return s.TxStats.GetWrite() }())/float64(max(g, 1)), "pages/commit")
}
