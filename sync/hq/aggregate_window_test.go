package hq

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
)

// FoldWhole is Fold refolding every member it touches over its whole
// history: what the windowed fold must match.
func (c AggConfig) FoldWhole(es []entry.Entry, shard string, f *AggFacts) AggFold {
	return c.fold(es, shard, f, false)
}

// NonZero drops the rows a delta leaves unchanged, so two deltas that
// change the same counters compare equal.
func NonZero(d AggDelta) map[AggKey]Counts {
	out := map[AggKey]Counts{}
	for k, c := range d {
		if !c.Zero() {
			out[k] = *c
		}
	}
	return out
}

// TestMemberContribInWhole: over a window beyond every day, the windowed
// contribution is the whole one.
func TestMemberContribInWhole(t *testing.T) {
	cfg := AggConfig{TimeZone: "Asia/Shanghai", AtRiskDays: 10, DormantDays: 25}
	r := rand.New(rand.NewPCG(3, 5))
	for round := 0; round < 200; round++ {
		m := &MemberFact{}
		if r.IntN(4) > 0 {
			m.Enrolled, m.EnrolDay, m.Home = true, Day(20000+r.IntN(400)), "S1"
		}
		for k := r.IntN(60); k > 0; k-- {
			m.visit([]string{"S1", "S2"}[r.IntN(2)], Day(20000+r.IntN(400)), int32(1+r.IntN(2)))
		}
		want, got := AggDelta{}, AggDelta{}
		cfg.memberContrib(m, "x", want, 1)
		cfg.memberContribIn(m, "x", noDay+1, Day(1<<31-1), nil, got, 1)
		require.Equal(t, NonZero(want), NonZero(got), "round %d", round)
	}
}

// BenchmarkMemberRefold: what refolding one changed day costs a member
// with two years of near-daily visits at three stores, over the window
// and over the whole history.
func BenchmarkMemberRefold(b *testing.B) {
	cfg := DefaultAggConfig
	m := &MemberFact{Enrolled: true, EnrolDay: 20000, Home: "S1"}
	for day := Day(20000); day < 20730; day++ {
		m.visit([]string{"S1", "S2", "S3"}[day%3], day, 1)
	}
	day := Day(20400)
	lo, hi := day-windowMargin, day+windowMargin
	changed := map[string]bool{"S2": true}
	b.Run("window", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d := AggDelta{}
			cfg.memberContribIn(m, "x", lo, hi, changed, d, -1)
			cfg.memberContribIn(m, "x", lo, hi, changed, d, 1)
		}
	})
	b.Run("whole", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d := AggDelta{}
			cfg.memberContrib(m, "x", d, -1)
			cfg.memberContrib(m, "x", d, 1)
		}
	})
}
