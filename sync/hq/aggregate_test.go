package hq_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// foldAll folds es in chunks of random sizes, as uploads would, and
// returns the summed day rows.
func foldAll(c hq.AggConfig, es []entry.Entry, r *rand.Rand) map[hq.AggKey]hq.Counts {
	f := hq.NewAggFacts()
	sum := map[hq.AggKey]hq.Counts{}
	for len(es) > 0 {
		n := 1 + r.IntN(min(len(es), 7))
		for k, v := range c.Fold(es[:n], fmt.Sprint("shard", r.IntN(3)), f).Delta {
			k.Store = map[bool]string{true: "", false: k.Store}[k.Scope == hq.ScopeChain]
			s := sum[k]
			for i := range v {
				s[i] += v[i]
			}
			sum[k] = s
		}
		es = es[n:]
	}
	for k, v := range sum {
		if v.Zero() {
			delete(sum, k)
		}
	}
	return sum
}

// TestFoldMatchesDefinitions: whatever order and batches entries arrive
// in, the rows give the life-cycle counts, active members and
// repurchasers by their definitions, worked out member by member.
func TestFoldMatchesDefinitions(t *testing.T) {
	cfg := hq.AggConfig{TimeZone: "Asia/Shanghai", AtRiskDays: 10, DormantDays: 25}
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, hqtest.Shanghai)
	at := func(d int) time.Time { return base.AddDate(0, 0, d) }
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 30; round++ {
		tills := map[string]*hqtest.Till{"S1": {Store: "S1", Till: "T"}, "S2": {Store: "S2", Till: "T"}}
		type sale struct {
			store string
			day   int
			gone  bool // voided or refunded in full
		}
		enrol := map[string]int{}
		home := map[string]string{}
		sales := map[string][]sale{}
		var es []entry.Entry
		for m := 0; m < 6; m++ {
			id := fmt.Sprint("M", m)
			if r.IntN(4) > 0 {
				st := []string{"S1", "S2"}[r.IntN(2)]
				d := r.IntN(40)
				enrol[id], home[id] = d, st
				es = append(es, tills[st].Enrol(id, at(d)))
			}
			for k := r.IntN(6); k > 0; k-- {
				st := []string{"S1", "S2"}[r.IntN(2)]
				d := r.IntN(90)
				s := tills[st].Sale(id, at(d), 1000, 10, 0, 0, "")
				es = append(es, s)
				gone := false
				switch r.IntN(5) {
				case 0:
					es = append(es, tills[st].Void(s, at(d)))
					gone = true
				case 1:
					es = append(es, tills[st].Refund(s, at(d+1), 1000, 10, 0, true))
					gone = true
				case 2:
					es = append(es, tills[st].Refund(s, at(d+1), 400, 4, 0, false))
				}
				sales[id] = append(sales[id], sale{st, d, gone})
			}
		}
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		rows := foldAll(cfg, es, r)
		d0 := hq.DayOf(base)
		for D := 0; D < 130; D++ {
			var got [3]int64
			for k, v := range rows {
				if k.Scope == hq.ScopeStore && k.Day <= d0+hq.Day(D) {
					got[0] += v[hq.AggMembers]
					got[1] += v[hq.AggAtRisk]
					got[2] += v[hq.AggDormant]
				}
			}
			var want [3]int64
			for id, e := range enrol {
				if e > D {
					continue
				}
				last := e
				for _, s := range sales[id] {
					if !s.gone && s.day > last && s.day <= D {
						last = s.day
					}
				}
				want[0]++
				switch gap := D - last; {
				case gap >= cfg.DormantDays:
					want[2]++
				case gap >= cfg.AtRiskDays:
					want[1]++
				}
			}
			require.Equal(t, want, got, "round %d, day %d: members, at risk, dormant", round, D)
		}
		// Active members and repurchasers per month, chain-wide.
		for month := 0; month < 3; month++ {
			first, next := hq.DayOf(base.AddDate(0, month, 0)), hq.DayOf(base.AddDate(0, month+1, 0))
			var got, want [2]int64
			for k, v := range rows {
				if k.Scope == hq.ScopeChain && k.Day >= first && k.Day < next {
					got[0] += v[hq.AggActive]
					got[1] += v[hq.AggRepurchasers]
				}
			}
			for _, ss := range sales {
				firstDay := -1
				for _, s := range ss {
					if d := d0 + hq.Day(s.day); !s.gone && d >= first && d < next && (firstDay < 0 || s.day < firstDay) {
						firstDay = s.day
					}
				}
				if firstDay < 0 {
					continue
				}
				want[0]++
				n := 0
				for _, s := range ss {
					if !s.gone && s.day >= firstDay && s.day <= firstDay+hq.RepurchaseDays {
						n++
					}
				}
				if n >= 2 {
					want[1]++
				}
			}
			require.Equal(t, want, got, "round %d, month %d: active, repurchasers", round, month)
		}
	}
}
