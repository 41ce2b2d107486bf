package hq

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"

	"posagent/ledger/entry"
)

// Entry totals per store (what /admin/totals shows) are kept at ingest
// with the other aggregates, so the report reads one record per store
// instead of every entry. They are kept exactly, in 128 bits: a sum that
// leaves the int64 range is still exact, and only the report shows it at
// the limit (flagged), whatever order the entries came in.

// Total counters, the columns of a totals record (StoreTotals' fields).
const (
	TotEntries = iota
	TotSales
	TotSalesDue
	TotRefunds
	TotRefundAmount
	TotVoids
	TotTopUps
	TotPoints
	TotStoredValue
	TotCounters
)

// TotalNames names the counters (PostgreSQL column names).
var TotalNames = [TotCounters]string{"entries", "sales", "sales_due", "refunds", "refund_amount", "voids", "topups", "points", "stored_value"}

// Sum is a 128-bit two's complement integer: sums of int64s that never wrap
// in practice (2^64 int64s).
type Sum struct {
	Hi int64
	Lo uint64
}

// SumOf is v as a Sum.
func SumOf(v int64) Sum { return Sum{Hi: v >> 63, Lo: uint64(v)} }

// Add adds o.
func (s *Sum) Add(o Sum) {
	var c uint64
	s.Lo, c = bits.Add64(s.Lo, o.Lo, 0)
	hi, _ := bits.Add64(uint64(s.Hi), uint64(o.Hi), c)
	s.Hi = int64(hi)
}

// Int64 is s, or the nearest int64 limit and false when s is beyond it.
func (s Sum) Int64() (int64, bool) {
	switch {
	case s.Hi == 0 && s.Lo <= math.MaxInt64, s.Hi == -1 && s.Lo > math.MaxInt64:
		return int64(s.Lo), true
	case s.Hi < 0:
		return math.MinInt64, false
	default:
		return math.MaxInt64, false
	}
}

// Big is s as a big.Int.
func (s Sum) Big() *big.Int {
	b := new(big.Int).SetInt64(s.Hi)
	b.Lsh(b, 64)
	return b.Add(b, new(big.Int).SetUint64(s.Lo))
}

func (s Sum) String() string { return s.Big().String() }

// MarshalJSON writes s as a JSON number.
func (s Sum) MarshalJSON() ([]byte, error) { return []byte(s.String()), nil }

// ParseSum reads a decimal integer within 128 bits.
func ParseSum(t string) (Sum, error) {
	b, ok := new(big.Int).SetString(t, 10)
	if !ok {
		return Sum{}, fmt.Errorf("hq: total %q is not an integer", t)
	}
	if b.BitLen() > 127 {
		return Sum{}, fmt.Errorf("hq: total %s is beyond 128 bits", t)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
	hi := new(big.Int).Rsh(b, 64).Int64() // arithmetic shift: floor, as two's complement
	return Sum{Hi: hi, Lo: lo}, nil
}

// TotalSums is one store's totals record.
type TotalSums [TotCounters]Sum

// Zero reports whether every sum is 0.
func (t *TotalSums) Zero() bool { return *t == TotalSums{} }

// AddAll adds every sum of o.
func (t *TotalSums) AddAll(o *TotalSums) {
	for i := range t {
		t[i].Add(o[i])
	}
}

// AddEntry counts e as StoreTotals.add does.
func (t *TotalSums) AddEntry(e *entry.Entry) {
	t[TotEntries].Add(SumOf(1))
	t[TotPoints].Add(SumOf(e.PointsDelta))
	t[TotStoredValue].Add(SumOf(e.StoredValueDelta))
	switch {
	case e.Sale != nil:
		t[TotSales].Add(SumOf(1))
		t[TotSalesDue].Add(SumOf(e.Sale.Due))
	case e.Refund != nil:
		t[TotRefunds].Add(SumOf(1))
		t[TotRefundAmount].Add(SumOf(e.Refund.Amount))
	case e.Void != nil:
		t[TotVoids].Add(SumOf(1))
	case e.TopUp != nil:
		t[TotTopUps].Add(SumOf(1))
	}
}

// StoreTotals is the report's form: sums beyond int64 at the limit, flagged.
func (t *TotalSums) StoreTotals() StoreTotals {
	var out StoreTotals
	dst := [TotCounters]*int64{&out.Entries, &out.Sales, &out.SalesDue, &out.Refunds, &out.RefundAmount,
		&out.Voids, &out.TopUps, &out.Points, &out.StoredValue}
	for i, s := range t {
		v, ok := s.Int64()
		*dst[i] = v
		out.Overflow = out.Overflow || !ok
	}
	return out
}

// EntryTotals sums es per store.
func EntryTotals(es []entry.Entry) map[string]*TotalSums {
	out := map[string]*TotalSums{}
	for i := range es {
		e := &es[i]
		t := out[e.Store]
		if t == nil {
			t = &TotalSums{}
			out[e.Store] = t
		}
		t.AddEntry(e)
	}
	return out
}
