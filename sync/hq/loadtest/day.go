package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/hq/hqtest"
)

// hourWeights is a store's trade by opening hour (10:00 to 22:00): a lunch
// and an evening peak, quiet afternoons. A day's entries fall in the hours
// in these proportions.
var hourWeights = [12]int{4, 7, 11, 9, 5, 4, 5, 8, 11, 10, 6, 3}

// dayOffset maps q in [0,1) (an entry's place in the till's day) to its
// fraction of the opening hours, following hourWeights.
func dayOffset(q float64) float64 {
	total := 0
	for _, w := range hourWeights {
		total += w
	}
	x := q * float64(total)
	for h, w := range hourWeights {
		if x < float64(w) {
			return (float64(h) + x/float64(w)) / float64(len(hourWeights))
		}
		x -= float64(w)
	}
	return 1 - 1e-9
}

// event is one entry a till writes: when (fraction of the day) and where.
type event struct {
	at          float64
	store, till int32
}

// schedule spreads perTill entries of every till over the day, each till
// with its own phase so they do not write in step; sorted by time.
func schedule(stores, tills, perTill int, seed uint64) []event {
	rnd := rand.New(rand.NewPCG(seed, 7))
	evs := make([]event, 0, stores*tills*perTill)
	for s := 0; s < stores; s++ {
		for k := 0; k < tills; k++ {
			phase := rnd.Float64()
			for j := 0; j < perTill; j++ {
				evs = append(evs, event{at: dayOffset((float64(j) + phase) / float64(perTill)), store: int32(s), till: int32(k)})
			}
		}
	}
	sort.Slice(evs, func(a, b int) bool { return evs[a].at < evs[b].at })
	return evs
}

// till is one simulated till: the entry builder and what the mix needs to
// remember (recent sales to refund or void, members who topped up here).
type till struct {
	b        hqtest.Till
	rnd      *rand.Rand
	recent   []entry.Entry // sales that may still be refunded, newest last
	toppedUp []string
	enrolled int
	members  int // the chain's members, M000000…
}

const keepRecent = 16

// next builds the till's next entry at time at, in the chain's mix: 62%
// member sales (a few paying with stored value or redeeming points), 20%
// sales without a member, 6% enrolments, 6% top-ups, 4% refunds (half of
// them partial) and 2% voids of the sale just rung. Every entry is one the
// real till writes (hqtest builders), keys unique per store.
func (t *till) next(at time.Time) entry.Entry {
	r := t.rnd.IntN(100)
	member := func() string {
		if t.enrolled > 0 && t.rnd.IntN(10) == 0 {
			return fmt.Sprintf("N%s%s-%d", t.b.Store, t.b.Till, t.rnd.IntN(t.enrolled)+1)
		}
		return fmt.Sprintf("M%06d", t.rnd.IntN(t.members))
	}
	switch {
	case r < 2 && len(t.recent) > 0: // void of the sale just rung
		s := t.recent[len(t.recent)-1]
		t.recent = t.recent[:len(t.recent)-1]
		return t.b.Void(s, at)
	case r < 6 && len(t.recent) > 0: // refund of a recent sale
		i := t.rnd.IntN(len(t.recent))
		s := t.recent[i]
		t.recent = append(t.recent[:i], t.recent[i+1:]...)
		if t.rnd.IntN(2) == 0 {
			return t.b.Refund(s, at, s.Sale.Due, s.Sale.PointsEarned, s.Sale.RedeemPoints, true)
		}
		return t.b.Refund(s, at, s.Sale.Due/2, s.Sale.PointsEarned/2, 0, false)
	case r < 12:
		t.enrolled++
		return t.b.Enrol(fmt.Sprintf("N%s%s-%d", t.b.Store, t.b.Till, t.enrolled), at)
	case r < 18:
		m := member()
		t.toppedUp = append(t.toppedUp[max(0, len(t.toppedUp)-keepRecent+1):], m)
		amount := int64(100+t.rnd.IntN(5)*100) * 100
		return t.b.TopUp(m, at, amount, amount/10)
	}
	due := int64(500 + t.rnd.IntN(300)*50) // 5 to 155 yuan, in fen
	m, sv, redeem := "", int64(0), int64(0)
	if r < 80 {
		m = member()
		if len(t.toppedUp) > 0 && t.rnd.IntN(5) == 0 {
			m, sv = t.toppedUp[t.rnd.IntN(len(t.toppedUp))], due/2
		} else if t.rnd.IntN(10) == 0 {
			redeem = int64(10 + t.rnd.IntN(5)*10)
		}
	}
	pts := int64(0)
	if m != "" {
		pts = due / 100
	}
	s := t.b.Sale(m, at, due, pts, redeem, sv, "")
	if s.MemberID != "" || t.rnd.IntN(4) == 0 {
		t.recent = append(t.recent[max(0, len(t.recent)-keepRecent+1):], s)
	}
	return s
}
