package loyalty

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func basket50() Basket {
	var b Basket
	for i := 0; i < 50; i++ {
		b.Lines = append(b.Lines, Line{
			LineNo: i + 1, SKU: fmt.Sprintf("SKU%03d", i%7), Qty: int64(i%4 + 1), UnitPrice: int64(199 + i*1337%25000),
			Discountable: i%5 != 0, EarnsPoints: i%9 != 0,
		})
	}
	b.Coupon = &Coupon{ID: "c", Threshold: 10000, Value: 1500, SKUs: []string{"SKU001", "SKU003", "SKU005"}}
	b.RedeemPoints = 3000
	return b
}

// BenchmarkQuote50 prices a 50-line basket with a coupon, redemption and a
// multiplier, and reports the per-quote p50 and p99.
func BenchmarkQuote50(b *testing.B) {
	p := DefaultProgram()
	bk := basket50()
	m := &Member{ID: "m", Tier: "gold", Birthday: "03-18", Points: 100000}
	at := local(2026, 3, 18, 12, 0, 0)
	if _, err := p.Quote(bk, m, at); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := p.Quote(bk, m, at); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durs)
	pct := func(f float64) float64 { return float64(durs[int(f*float64(len(durs)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}
