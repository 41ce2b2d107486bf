package hq

import (
	"context"
	"errors"
	"sort"
	"time"
)

// Member codes used at a second till (MemberCodeRepeat) belong in the
// fraud report beside the enrolment signals: a code shown at two tills
// means a photographed or shared code, or staff reusing a member's code to
// collect points. They are counted by the till of the second use, which is
// where the code was used after it had been spent; the first use is shown
// beside each one. The claims carry no cashier, so tills are as far as the
// report goes.

// FraudRepeatTill is one till's month of second uses of member codes.
type FraudRepeatTill struct {
	Store   string `json:"store"`
	Till    string `json:"till"`
	Repeats int    `json:"repeats"`
	// Late: accepted offline at the till before HQ could say it was spent
	// (the member got the sale).
	Late    int `json:"late"`
	Members int `json:"members"` // distinct members whose codes these were
}

// FraudRepeat is one second use, with the first.
type FraudRepeat struct {
	Member      string    `json:"member"`
	Code        string    `json:"code"`
	Store       string    `json:"store"`
	Till        string    `json:"till"`
	SeenAt      time.Time `json:"seen_at"`  // the till's clock
	Received    time.Time `json:"received"` // HQ's clock, which picks the month
	Late        bool      `json:"late"`
	FirstStore  string    `json:"first_store"`
	FirstTill   string    `json:"first_till"`
	FirstSeenAt time.Time `json:"first_seen_at"`
}

// fraudRepeats fills the report's repeats: those HQ received in the month
// [start, end), read by the stores' time index, so the cost follows the
// month's repeats, not all ever kept. A storage without member codes adds
// none.
func (s *Server) fraudRepeats(ctx context.Context, rep *FraudReport, start, end time.Time) error {
	ms, err := s.memberCodeStore()
	if errors.Is(err, ErrNoMemberCodes) {
		return nil
	}
	reps, err := ms.MemberCodeRepeats(ctx, start, end)
	if err != nil {
		return err
	}
	tills := map[[2]string]*FraudRepeatTill{}
	members := map[[2]string]map[string]bool{}
	for _, r := range reps {
		a := r.Again
		k := [2]string{a.Store, a.Till}
		t := tills[k]
		if t == nil {
			t = &FraudRepeatTill{Store: a.Store, Till: a.Till}
			tills[k], members[k] = t, map[string]bool{}
		}
		t.Repeats++
		if a.Late {
			t.Late++
		}
		members[k][a.Member] = true
		rep.RepeatList = append(rep.RepeatList, FraudRepeat{Member: a.Member, Code: a.Code, Store: a.Store, Till: a.Till,
			SeenAt: a.SeenAt.UTC(), Received: a.At.UTC(), Late: a.Late,
			FirstStore: r.First.Store, FirstTill: r.First.Till, FirstSeenAt: r.First.SeenAt.UTC()})
	}
	for k, t := range tills {
		t.Members = len(members[k])
		rep.RepeatTills = append(rep.RepeatTills, *t)
	}
	sort.Slice(rep.RepeatTills, func(i, j int) bool {
		a, b := rep.RepeatTills[i], rep.RepeatTills[j]
		if a.Store != b.Store {
			return a.Store < b.Store
		}
		return a.Till < b.Till
	})
	rep.Repeats = len(reps)
	return nil
}
