package messages

import (
	"fmt"
	"time"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// Settings are what the triggers decide by: the program in force (its
// messages section, redemption, tiers, life cycle, lots, time zone) and
// the stores' own time zones, which dates are shown in.
type Settings struct {
	Program *loyalty.Program
	Zones   map[string]*time.Location // store id → zone; missing: the program's
}

// NewSettings checks that p can drive the triggers.
func NewSettings(p *loyalty.Program, zones map[string]*time.Location) (*Settings, error) {
	if p == nil {
		return nil, fmt.Errorf("messages: no program; publish one or use the default program")
	}
	return &Settings{Program: p, Zones: zones}, nil
}

// Zone is the store's time zone (the program's when the store has none).
func (s *Settings) Zone(store string) *time.Location {
	if l := s.Zones[store]; l != nil {
		return l
	}
	return s.Program.Location()
}

// ChainZone is the zone the per-day jobs count days in.
func (s *Settings) ChainZone() *time.Location { return s.Program.Location() }

// Any reports whether any trigger is on.
func (s *Settings) Any() bool {
	m := s.Program.Messages
	return m.AfterSale.Enabled || m.Birthday.Enabled || m.PointsExpiring.Enabled || m.Recall.Enabled || m.TierUpgrade.Enabled
}

// Member is what a message needs to know of a member.
type Member struct {
	ID       string
	Name     string
	Mobile   string
	Birthday string // MM-DD or YYYY-MM-DD
	Tier     string
	Store    string // home store (where the member enrolled); "" unknown
	Points   int64  // balance as HQ holds it now
}

// MemberOf makes a Member from HQ's member data.
func MemberOf(d *entry.Member, store string, points int64) Member {
	if d == nil {
		return Member{Store: store, Points: points}
	}
	return Member{ID: d.ID, Name: d.Name, Mobile: d.Mobile, Birthday: d.Birthday, Tier: d.Tier, Store: store, Points: points}
}

func (s *Settings) text(t loyalty.MsgTemplate) (lang, text string) {
	if s.Program.Messages.Lang == "en" {
		return "en", t.EN
	}
	return "zh", t.ZH
}

// message fills a template for m; ok false when the member has no mobile
// to send to.
func (s *Settings) message(kind Kind, id string, t loyalty.MsgTemplate, m Member, store string, at time.Time, vals map[string]string) (Message, bool) {
	if m.Mobile == "" || m.ID == "" {
		return Message{}, false
	}
	if store == "" {
		store = m.Store
	}
	lang, text := s.text(t)
	vals["name"] = MaskName(m.Name)
	return Message{ID: id, Kind: kind, Member: m.ID, Store: store, To: m.Mobile, Lang: lang,
		Text: fill(text, vals), CreatedAt: at.UTC()}, true
}

// AfterSales are the after-sale messages of a batch of entries: for each
// member with a sale in es whose points (after the batch, in after) pay
// for at least the set amount, one message about the latest such sale,
// id "after_sale/<entry id>". A member whose offline sales arrive
// together hears once.
func (s *Settings) AfterSales(es []entry.Entry, members map[string]Member) []Message {
	t := s.Program.Messages.AfterSale
	if !t.Enabled {
		return nil
	}
	last := map[string]*entry.Entry{}
	var order []string
	for i := range es {
		e := &es[i]
		if e.Kind != entry.KindSale || e.Sale == nil || e.MemberID == "" {
			continue
		}
		if p, ok := last[e.MemberID]; !ok {
			order = append(order, e.MemberID)
		} else if e.At.Before(p.At) {
			continue
		}
		last[e.MemberID] = e
	}
	var out []Message
	for _, id := range order {
		m, ok := members[id]
		if !ok {
			continue
		}
		pay := s.Program.PointsPay(m.Points)
		if pay < t.MinPay {
			continue
		}
		e := last[id]
		home := m.Store
		if home == "" {
			home = e.Store
		}
		msg, ok := s.message(KindAfterSale, "after_sale/"+e.ID(), t.MsgTemplate, m, home, e.At, map[string]string{
			"points": fmt.Sprint(m.Points), "amount": Yuan(pay),
			"store_date": DateOf(e.At, s.Zone(e.Store)).String(),
		})
		if ok {
			out = append(out, msg)
		}
	}
	return out
}

// TierUpgrades are the messages for the tier changes in es that move a
// member up the program's tiers, id "tier_upgrade/<entry id>". members
// holds the members as they stand after the batch.
func (s *Settings) TierUpgrades(es []entry.Entry, members map[string]Member) []Message {
	t := s.Program.Messages.TierUpgrade
	if !t.Enabled {
		return nil
	}
	rank := func(id string) int {
		for i, tr := range s.Program.Tiers {
			if tr.ID == id {
				return i
			}
		}
		return -1
	}
	var out []Message
	for i := range es {
		e := &es[i]
		if e.Kind != entry.KindTierChange || e.Tier == nil || e.MemberID == "" {
			continue
		}
		to, ok := s.Program.Tier(e.Tier.To)
		if !ok || rank(e.Tier.To) <= rank(e.Tier.From) {
			continue
		}
		m, ok := members[e.MemberID]
		if !ok {
			continue
		}
		name := to.NameZH
		if s.Program.Messages.Lang == "en" {
			name = to.NameEN
		}
		var bonus int64
		if to.Upgrade != nil {
			bonus = to.Upgrade.BonusPoints
		}
		msg, ok := s.message(KindTierUpgrade, "tier_upgrade/"+e.ID(), t, m, "", e.At, map[string]string{
			"tier": name, "bonus": fmt.Sprint(bonus), "store_date": DateOf(e.At, s.Zone(e.Store)).String(),
		})
		if ok {
			out = append(out, msg)
		}
	}
	return out
}

// BirthdayTarget is the date whose birthdays day's job greets: DaysBefore
// days ahead. ok false when the trigger is off.
func (s *Settings) BirthdayTarget(day Date) (Date, bool) {
	b := s.Program.Messages.Birthday
	return day.AddDays(b.DaysBefore), b.Enabled
}

// BirthdayKeys are the month-days (MM-DD) whose members have their
// birthday on target: 29 February is celebrated on 28 February in years
// without one, as the points multiplier does.
func BirthdayKeys(target Date) []string {
	k := []string{fmt.Sprintf("%02d-%02d", int(target.M), target.D)}
	if target.M == time.February && target.D == 28 && !isLeap(target.Y) {
		k = append(k, "02-29")
	}
	return k
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// BirthdayMonthDay is a birthday's MM-DD key, ok false when unreadable.
func BirthdayMonthDay(b string) (string, bool) {
	switch len(b) {
	case 5:
		if _, err := time.Parse("2006-01-02", "2000-"+b); err != nil {
			return "", false
		}
		return b, true
	case 10:
		if _, err := time.Parse(time.DateOnly, b); err != nil {
			return "", false
		}
		return b[5:], true
	}
	return "", false
}

// Birthday is day's birthday message for m (whose birthday falls on the
// target date), id "birthday/<member>/<year>", ok false when there is none
// to send (no mobile); and the birthday coupon to issue (nil when the
// program gives none or the birthday is not the target's), id
// "birthday-<year>-<member>", which the member gets either way.
func (s *Settings) Birthday(day Date, m Member, now time.Time) (Message, *entry.MemberCoupon, bool) {
	b := s.Program.Messages.Birthday
	target, on := s.BirthdayTarget(day)
	if !on {
		return Message{}, nil, false
	}
	if md, ok := BirthdayMonthDay(m.Birthday); !ok || !containsStr(BirthdayKeys(target), md) {
		return Message{}, nil, false
	}
	loc := s.Zone(m.Store)
	factor := s.Program.Multipliers.Birthday.Factor
	if factor == 0 {
		factor = 1
	}
	vals := map[string]string{"birthday": target.String(), "days": fmt.Sprint(b.DaysBefore), "factor": fmt.Sprint(factor),
		"coupon": "0.00", "threshold": "0.00", "until": ""}
	var c *entry.MemberCoupon
	if b.Coupon != nil {
		mc := issue(*b.Coupon, fmt.Sprintf("birthday-%d-%s", target.Y, m.ID), m.ID, day, loc)
		c = &mc
		vals["coupon"], vals["threshold"] = Yuan(mc.Value), Yuan(mc.Threshold)
		vals["until"] = day.AddDays(b.Coupon.ValidDays - 1).String()
	}
	msg, ok := s.message(KindBirthday, fmt.Sprintf("birthday/%s/%d", m.ID, target.Y), b.MsgTemplate, m, "", now, vals)
	return msg, c, ok
}

// issue makes a coupon from a template, valid from the start of day (in
// loc) for ValidDays days, ValidUntil exclusive as loyalty.CouponTemplate
// issues them at the till.
func issue(t loyalty.CouponTemplate, id, member string, day Date, loc *time.Location) entry.MemberCoupon {
	from := day.Start(loc)
	return entry.MemberCoupon{ID: id, MemberID: member, Name: t.Name, Threshold: t.Threshold, Value: t.Value,
		SKUs: append([]string(nil), t.SKUs...), ValidFrom: from.Format(time.RFC3339),
		ValidUntil: day.AddDays(t.ValidDays).Start(loc).Format(time.RFC3339)}
}

func containsStr(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ExpiryTarget is the last valid date of the points day's job warns of.
func (s *Settings) ExpiryTarget(day Date) (Date, bool) {
	e := s.Program.Messages.PointsExpiring
	return day.AddDays(e.DaysBefore), e.Enabled
}

// PointsExpiring is day's message for m, whose points of the lots with
// last valid date target come to points (see Expiring), id
// "points_expiring/<member>/<date>".
func (s *Settings) PointsExpiring(day Date, m Member, points int64, now time.Time) (Message, bool) {
	e := s.Program.Messages.PointsExpiring
	target, on := s.ExpiryTarget(day)
	if !on || points <= 0 {
		return Message{}, false
	}
	return s.message(KindPointsExpiring, fmt.Sprintf("points_expiring/%s/%s", m.ID, target), e.MsgTemplate, m, "", now, map[string]string{
		"points": fmt.Sprint(points), "amount": Yuan(s.Program.PointsPay(points)), "date": target.String(),
		"days": fmt.Sprint(e.DaysBefore)})
}

// RecallDates are the dates of last activity (last sale, or enrolment for
// a member who never bought) that make a member turn at risk or dormant on
// day, with the state each gives. Only the states the trigger is on for.
func (s *Settings) RecallDates(day Date) map[string]Date {
	r := s.Program.Messages.Recall
	out := map[string]Date{}
	if !r.Enabled {
		return out
	}
	if r.AtRisk {
		out[loyalty.StateAtRisk] = day.AddDays(-s.Program.Life.AtRiskDays)
	}
	if r.Dormant {
		out[loyalty.StateDormant] = day.AddDays(-s.Program.Life.DormantDays)
	}
	return out
}

// Recall is day's recall message for m, turned state (at_risk or dormant)
// on day, id "recall/<member>/<state>/<date>", ok false when there is none
// to send (no mobile); and the recall coupon, id
// "recall-<state>-<yyyymmdd>-<member>" (HQ's recall coupon naming,
// "recall-<campaign>-<member>"), which the member gets either way (nil
// when the trigger is off for state).
func (s *Settings) Recall(day Date, state string, m Member, now time.Time) (Message, *entry.MemberCoupon, bool) {
	r := s.Program.Messages.Recall
	if _, ok := s.RecallDates(day)[state]; !ok {
		return Message{}, nil, false
	}
	ymd := fmt.Sprintf("%04d%02d%02d", day.Y, int(day.M), day.D)
	c := issue(r.Coupon, "recall-"+state+"-"+ymd+"-"+m.ID, m.ID, day, s.Zone(m.Store))
	msg, ok := s.message(KindRecall, fmt.Sprintf("recall/%s/%s/%s", m.ID, state, day), r.MsgTemplate, m, "", now, map[string]string{
		"coupon": Yuan(c.Value), "threshold": Yuan(c.Threshold), "until": day.AddDays(r.Coupon.ValidDays - 1).String(),
		"days": fmt.Sprint(r.Coupon.ValidDays)})
	return msg, &c, ok
}
