package hq_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// TestWindowedFoldMatchesFull: refolding each member only around its
// changed days gives, batch by batch, exactly the change that refolding its
// whole history gives, on long random histories of a few members (hundreds
// of visits over two years at several stores, late enrolments, refunds and
// voids, arriving in random order and batches), and leaves the same facts.
func TestWindowedFoldMatchesFull(t *testing.T) {
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, hqtest.Shanghai)
	at := func(d int) time.Time { return base.AddDate(0, 0, d) }
	cfgs := []hq.AggConfig{
		{TimeZone: "Asia/Shanghai", AtRiskDays: 10, DormantDays: 25},
		{TimeZone: "Asia/Shanghai", AtRiskDays: 60, DormantDays: 180},
		{TimeZone: "Asia/Shanghai", AtRiskDays: 100, DormantDays: 101},
	}
	r := rand.New(rand.NewPCG(7, 11))
	for round := 0; round < 60; round++ {
		cfg := cfgs[r.IntN(len(cfgs))]
		stores := []string{"S1", "S2", "S3"}
		tills := map[string]*hqtest.Till{}
		for _, st := range stores {
			tills[st] = &hqtest.Till{Store: st, Till: "T"}
		}
		var es []entry.Entry
		span := 60 + r.IntN(700) // days the history covers: sparse to dense
		// Every other round buys in bursts with long gaps between them, so
		// the activity before a changed day is often far outside its window.
		var bursts []int
		if round%2 == 1 {
			for k := 2 + r.IntN(5); k > 0; k-- {
				bursts = append(bursts, r.IntN(span))
			}
		}
		day := func() int {
			if bursts == nil {
				return r.IntN(span)
			}
			return bursts[r.IntN(len(bursts))] + r.IntN(15)
		}
		for m := 0; m < 3; m++ {
			id := fmt.Sprint("M", m)
			for k := r.IntN(3); k > 0; k-- { // none, one, or a later duplicate
				st := stores[r.IntN(len(stores))]
				es = append(es, tills[st].Enrol(id, at(day())))
			}
			for k := 100 + r.IntN(250) - 80*(round%2); k > 0; k-- {
				st := stores[r.IntN(len(stores))]
				d := day()
				s := tills[st].Sale(id, at(d), 1000, 10, 0, 0, "")
				es = append(es, s)
				switch r.IntN(6) {
				case 0:
					es = append(es, tills[st].Void(s, at(d)))
				case 1:
					es = append(es, tills[st].Refund(s, at(d+1), 1000, 10, 0, true))
				case 2:
					es = append(es, tills[st].Refund(s, at(d+1), 400, 4, 0, false))
				}
			}
		}
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		win, full := hq.NewAggFacts(), hq.NewAggFacts()
		for b := 0; len(es) > 0; b++ {
			n := 1 + r.IntN(min(len(es), 1+r.IntN(40)))
			shard := fmt.Sprint("shard", r.IntN(2))
			got := cfg.Fold(es[:n], shard, win)
			want := cfg.FoldWhole(es[:n], shard, full)
			require.Equal(t, hq.NonZero(want.Delta), hq.NonZero(got.Delta), "round %d, batch %d", round, b)
			require.Equal(t, want.Members, got.Members, "round %d, batch %d", round, b)
			es = es[n:]
		}
		wj, _ := json.Marshal(full.Members)
		gj, _ := json.Marshal(win.Members)
		require.JSONEq(t, string(wj), string(gj), "round %d: member facts", round)
	}
}
