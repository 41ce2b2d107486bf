package hq_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// setRecord replaces the visits of one record of m.
func setRecord(m *hq.MemberFact, k hq.VisitKey, vs []hq.Visit) {
	next := k.Month.NextMonth()
	out := func(v hq.Visit) bool { return v.Day >= k.Month && v.Day < next }
	if k.Store == "" {
		m.Days = slices.DeleteFunc(m.Days, out)
	} else if cur := slices.DeleteFunc(m.Visits[k.Store], out); len(cur) > 0 {
		m.Visits[k.Store] = cur
	} else {
		delete(m.Visits, k.Store)
	}
	m.AddRecord(k.Store, vs)
}

func clone[T any](v *T) *T {
	b, _ := json.Marshal(v)
	var out T
	_ = json.Unmarshal(b, &out)
	return &out
}

// TestFoldOnMonthRecords: a fold given only what a store reads (each
// member's head and the visit records VisitWindows names for the batch
// and its sales' facts) changes the rows
// exactly as the whole-history fold does, and writing back the heads and
// the months it changed leaves the same facts. Long random histories at
// several stores, late and repeated enrolments, refunds and voids before
// or after their sale, in random order and batches.
func TestFoldOnMonthRecords(t *testing.T) {
	base := time.Date(2025, 1, 1, 12, 0, 0, 0, hqtest.Shanghai)
	at := func(d int) time.Time { return base.AddDate(0, 0, d) }
	cfgs := []hq.AggConfig{
		{TimeZone: "Asia/Shanghai", AtRiskDays: 10, DormantDays: 25},
		{TimeZone: "Asia/Shanghai", AtRiskDays: 60, DormantDays: 180},
		{TimeZone: "Asia/Shanghai", AtRiskDays: 100, DormantDays: 101},
	}
	r := rand.New(rand.NewPCG(17, 3))
	for round := 0; round < 60; round++ {
		cfg := cfgs[r.IntN(len(cfgs))]
		stores := []string{"S1", "S2", "S3", "S4", "S5"}
		tills := map[string]*hqtest.Till{}
		for _, st := range stores {
			tills[st] = &hqtest.Till{Store: st, Till: "T"}
		}
		var es []entry.Entry
		span := 60 + r.IntN(900)
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
		for m := 0; m < 4; m++ {
			id := fmt.Sprint("M", m)
			for k := r.IntN(3); k > 0; k-- {
				st := stores[r.IntN(len(stores))]
				es = append(es, tills[st].Enrol(id, at(day())))
			}
			for k := 80 + r.IntN(200); k > 0; k-- {
				st := stores[r.IntN(len(stores))]
				d := day()
				s := tills[st].Sale(id, at(d), 1000, 10, 0, 0, "")
				es = append(es, s)
				switch r.IntN(6) {
				case 0:
					es = append(es, tills[st].Void(s, at(d)))
				case 1:
					es = append(es, tills[st].Refund(s, at(d+1+r.IntN(90)), 1000, 10, 0, true))
				case 2:
					es = append(es, tills[st].Refund(s, at(d+1), 400, 4, 0, false))
				}
			}
		}
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		full := hq.NewAggFacts()
		stored := hq.NewAggFacts() // what a store holds
		for b := 0; len(es) > 0; b++ {
			n := 1 + r.IntN(min(len(es), 1+r.IntN(40)))
			batch := es[:n]
			es = es[n:]
			want := cfg.FoldWhole(batch, "x", full)

			// Read as a store does: sales, then heads and windows.
			f := hq.NewAggFacts()
			for _, id := range hq.AggSaleIDs(batch) {
				if s := stored.Sales[id]; s != nil {
					f.Sales[id] = clone(s)
				}
			}
			wins := cfg.VisitWindows(batch, f.Sales)
			for _, id := range hq.AggMemberIDs(batch, f.Sales) {
				m := stored.Members[id]
				if m == nil {
					continue
				}
				if w, ok := wins[id]; ok {
					f.Members[id] = m.Window(w)
				} else {
					h := m.Head()
					f.Members[id] = &h
				}
			}
			got := cfg.Fold(batch, "x", f)
			require.Equal(t, hq.NonZero(want.Delta), hq.NonZero(got.Delta), "round %d, batch %d", round, b)

			// Write back what a store writes.
			for _, id := range got.Sales {
				if s := f.Sales[id]; s.Keep() {
					stored.Sales[id] = clone(s)
				} else {
					delete(stored.Sales, id)
				}
			}
			keys, visits := got.ChangedRecords(f)
			for _, id := range got.Members {
				m := stored.Members[id]
				if m == nil {
					m = &hq.MemberFact{}
					stored.Members[id] = m
				}
				h := f.Members[id].Head()
				m.Enrolled, m.EnrolDay, m.Home = h.Enrolled, h.EnrolDay, h.Home
			}
			for i, k := range keys {
				setRecord(stored.Members[k.Member], k.VisitKey, visits[i])
			}
			for id, m := range stored.Members {
				if !hq.KeepMember(m) {
					delete(stored.Members, id)
				}
			}
		}
		for id, m := range full.Members {
			if !hq.KeepMember(m) {
				delete(full.Members, id)
			}
		}
		wj, _ := json.Marshal(full.Members)
		gj, _ := json.Marshal(stored.Members)
		require.JSONEq(t, string(wj), string(gj), "round %d: member facts", round)
	}
}
