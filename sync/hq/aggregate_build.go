package hq

import "posagent/ledger/entry"

// AggBuilder folds a whole history in memory, chunk by chunk, with the
// fold ingest uses (AggConfig.Fold): what RecomputeAggregates does from a
// store's entries, and what a bulk load of a history kept elsewhere
// writes in one go instead of folding it through uploads.
type AggBuilder struct {
	c      AggConfig
	f      *AggFacts
	total  AggDelta
	totals map[string]*TotalSums
}

// NewAggBuilder starts an empty fold with c.
func NewAggBuilder(c AggConfig) *AggBuilder {
	return &AggBuilder{c: c, f: NewAggFacts(), total: AggDelta{}, totals: map[string]*TotalSums{}}
}

// Add folds es, the next entries of the history in the order stored.
func (b *AggBuilder) Add(es []entry.Entry) {
	for i := range es {
		t := b.totals[es[i].Store]
		if t == nil {
			t = &TotalSums{}
			b.totals[es[i].Store] = t
		}
		t.AddEntry(&es[i])
	}
	for k, v := range b.c.Fold(es, "", b.f).Delta {
		for i, n := range v {
			b.total.add(k, i, n)
		}
	}
}

// Settle drops the fact of sale id (store/till/seq) unless a store keeps
// it. A caller that knows no later entry reverses the sale calls it to
// bound memory; a sale settled and then reversed folds as if its sale
// were never stored, so call it only for sales that are done with.
func (b *AggBuilder) Settle(id string) {
	if s := b.f.Sales[id]; s != nil && !s.HasReversal() && s.Seen {
		delete(b.f.Sales, id)
	}
}

// Dump is what the fold built, as stores hold it: rows and the facts
// worth keeping. The builder must not be used after.
func (b *AggBuilder) Dump() *AggDump {
	days, months := b.total.Rows()
	for id, s := range b.f.Sales {
		if !s.Keep() {
			delete(b.f.Sales, id)
		}
	}
	for id, m := range b.f.Members {
		if m.empty() {
			delete(b.f.Members, id)
		}
	}
	return &AggDump{Config: b.c, Days: days, Months: months, Sales: b.f.Sales, Members: b.f.Members, Totals: b.totals}
}
