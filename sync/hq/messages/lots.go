package messages

import (
	"time"

	"posagent/ledger/entry"
)

// Earning is points an entry adds to a member's lots, by the last local
// date they are valid: the index the expiry job reads by date.
type Earning struct {
	Member  string
	Expires Date
	Points  int64
}

// Earnings are the points es add to lots: points earned by a sale (on the
// date the till wrote, lot_expires_at), bonus points (points_adjust) and
// redeemed points a refund or void gives back (both expiring as if earned
// at the entry's time, by the program's rule in the store's zone).
//
// HQ does not replay the till's lot order; it keeps what was earned per
// date and the balance, and Expiring takes the balance as made of the
// latest-expiring points (redemption takes the oldest first). Points a
// refund takes back stay counted in their date, so a reminder may
// understate what expires, never tell of points the member does not hold.
func (s *Settings) Earnings(es []entry.Entry) []Earning {
	var out []Earning
	for i := range es {
		e := &es[i]
		if e.MemberID == "" {
			continue
		}
		var pts int64
		var exp Date
		switch {
		case e.Sale != nil:
			pts = e.Sale.PointsEarned
			exp, _ = ParseDate(e.Sale.LotExpiresAt)
		case e.Kind == entry.KindPointsAdjust && e.Points != nil:
			pts = e.Points.Points
		case e.Refund != nil:
			pts = e.Refund.PointsRestored
		case e.Void != nil:
			pts = e.Void.PointsRestored
		}
		if pts <= 0 {
			continue
		}
		if exp.IsZero() {
			exp = s.lotLastDay(e.At, e.Store)
		}
		out = append(out, Earning{Member: e.MemberID, Expires: exp, Points: pts})
	}
	return out
}

// lotLastDay is the last valid local date of a lot earned at t in store.
func (s *Settings) lotLastDay(t time.Time, store string) Date {
	p, err := s.Program.InZone(s.Zone(store).String())
	if err != nil {
		p = s.Program
	}
	return DateOf(p.LotExpiry(t).Add(-time.Nanosecond), p.Location())
}

// Expiring is how many of a member's points have last valid date target:
// the balance counts as the latest-expiring points, so those of target
// are what the balance holds beyond the points earned for later dates, at
// most what was earned for target. later is the sum earned for dates
// after target.
func Expiring(balance, atTarget, later int64) int64 {
	if balance <= later || atTarget <= 0 {
		return 0
	}
	return min(balance-later, atTarget) // later ≥ 0 here: no overflow
}

// AddPoints is a+b for points, held at the int64 bounds instead of
// wrapping: the index sums what tills send, and a hostile till may send
// anything the balance checks let through.
func AddPoints(a, b int64) int64 {
	s := a + b
	if (a^s)&(b^s) < 0 {
		if a < 0 {
			return -1 << 63
		}
		return 1<<63 - 1
	}
	return s
}
