package messagetest

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// The generated chain: three stores in Shanghai, members enrolled through
// 2026 and 2027 with birthdays over the whole year (29 February among
// them), sales at each member's own pace (some stop buying and go at risk
// and dormant), redemptions, and gold upgrades on the third sale of a
// quarter. Everything the expected counts need is kept here, from the
// data alone.

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

type day struct{ t time.Time } // 00:00 local

func dayOf(y int, m time.Month, d int) day { return day{time.Date(y, m, d, 0, 0, 0, 0, shanghai)} }
func (d day) add(n int) day                { return day{d.t.AddDate(0, 0, n)} }
func (d day) before(e day) bool            { return d.t.Before(e.t) }
func (d day) String() string               { return d.t.Format(time.DateOnly) }
func (d day) at(h, m int) time.Time {
	return d.t.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

type genMember struct {
	id, name, mobile, birthday string
	consent                    bool
	enrolled                   day
	saleDays                   []day // local days with a sale, in order
	tier                       string
}

// chain is the generated history: per day, the batches each till uploads
// at the end of the day, and per member what it did.
type chain struct {
	start, jobsFrom, end day
	members              []*genMember
	byID                 map[string]*genMember
	batches              map[string][]hq.Batch // day → uploads, in upload order
	// afterSale holds the expected after-sale message ids (worked out from
	// the balances below), tierUp the upgrade ids.
	afterSale, tierUp []string
	// balance by member after each day's uploads, and points earned by lot
	// date (the last day of the year after the year earned).
	balanceAt map[string]map[string]int64 // day → member → balance at the end of the day
	earnedFor map[string]map[string]int64 // member → lot date → points
}

func generate(seed uint64, n int) *chain {
	r := rand.New(rand.NewPCG(seed, 7))
	c := &chain{start: dayOf(2026, 1, 1), jobsFrom: dayOf(2027, 1, 1), end: dayOf(2027, 12, 31),
		byID: map[string]*genMember{}, batches: map[string][]hq.Batch{},
		balanceAt: map[string]map[string]int64{}, earnedFor: map[string]map[string]int64{}}
	stores := []string{"S1", "S2", "S3"}
	seqs := map[string]uint64{}
	names := []string{"张三", "李小明", "王芳", "欧阳娜娜", "赵", "Li Na"}
	type plan struct {
		every int // mean days between sales
		stop  day // no sale from this day on
	}
	plans := map[string]plan{}
	for i := 0; i < n; i++ {
		m := &genMember{id: fmt.Sprintf("M%05d", i+1), name: names[i%len(names)], tier: "silver"}
		if r.IntN(20) != 0 {
			m.mobile = fmt.Sprintf("138%08d", i+1)
		}
		m.consent = r.IntN(10) != 0
		if r.IntN(10) < 4 {
			m.enrolled = c.start.add(r.IntN(365))
		} else {
			m.enrolled = c.jobsFrom.add(r.IntN(300))
		}
		bd := dayOf(2000, 1, 1).add(r.IntN(366)) // 2000 is a leap year: 29 February included
		if i%97 == 0 {
			bd = dayOf(2000, 2, 29)
		}
		if i%3 == 0 {
			m.birthday = bd.t.Format("01-02")
		} else {
			m.birthday = fmt.Sprintf("%d-%s", 1960+r.IntN(45), bd.t.Format("01-02"))
			if bd.t.Format("01-02") == "02-29" {
				m.birthday = "1996-02-29"
			}
		}
		p := plan{every: []int{5, 12, 30, 70}[r.IntN(4)], stop: c.end.add(1)}
		if r.IntN(3) == 0 { // stops buying some time after enrolling
			p.stop = m.enrolled.add(r.IntN(300))
		}
		plans[m.id] = p
		c.members = append(c.members, m)
		c.byID[m.id] = m
	}
	balance := map[string]int64{}
	quarterSales := map[string]int{} // member/quarter → sales
	for d := c.start; !c.end.before(d); d = d.add(1) {
		perStore := map[string][]entry.Entry{}
		add := func(store string, e entry.Entry) {
			key := store + "/T1"
			seqs[key]++
			e.Store, e.Till, e.Seq = store, "T1", seqs[key]
			e.Local = e.At.In(shanghai).Format(time.RFC3339)
			perStore[store] = append(perStore[store], e)
		}
		minute := 0
		next := func() time.Time { minute++; return d.at(9, minute) }
		for _, m := range c.members {
			if d.before(m.enrolled) {
				continue
			}
			home := stores[int(m.id[len(m.id)-1])%3]
			if d.String() == m.enrolled.String() {
				add(home, entry.Entry{Kind: entry.KindEnrol, MemberID: m.id, At: next(),
					Enrol: &entry.Enrol{Member: entry.Member{ID: m.id, Name: m.name, Mobile: m.mobile, Birthday: m.birthday, Tier: "silver"}}})
			}
			p := plans[m.id]
			if !d.before(p.stop) || r.IntN(p.every) != 0 {
				continue
			}
			store := stores[r.IntN(3)]
			due := int64(2000 + r.IntN(48000)) // fen
			earned := due / 100
			var redeem int64
			if balance[m.id] >= 500 && r.IntN(5) == 0 {
				redeem = 500
			}
			at := next()
			lot := time.Date(at.In(shanghai).Year()+1, 12, 31, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			add(store, entry.Entry{Kind: entry.KindSale, MemberID: m.id, At: at, PointsDelta: earned - redeem,
				Sale: &entry.Sale{ReceiptID: fmt.Sprintf("R%d", at.UnixNano()), Tier: m.tier, Due: due, RedeemPoints: redeem,
					RedeemValue: redeem, EarnBase: due, Multiplier: 1, PointsEarned: earned, LotExpiresAt: lot}})
			balance[m.id] += earned - redeem
			c.addEarned(m.id, lot, earned)
			m.saleDays = append(m.saleDays, d)
			q := fmt.Sprintf("%s/%d/%d", m.id, d.t.Year(), (int(d.t.Month())-1)/3)
			quarterSales[q]++
			if m.tier == "silver" && quarterSales[q] == 3 {
				m.tier = "gold"
				add(store, entry.Entry{Kind: entry.KindTierChange, MemberID: m.id, At: at.Add(time.Second),
					Tier: &entry.TierChange{From: "silver", To: "gold", Reason: "3 sales this quarter"}})
				tc := perStore[store][len(perStore[store])-1]
				add(store, entry.Entry{Kind: entry.KindPointsAdjust, MemberID: m.id, At: at.Add(2 * time.Second), PointsDelta: 100,
					Points: &entry.PointsChange{Reason: "tier_upgrade", Points: 100}})
				balance[m.id] += 100
				c.addEarned(m.id, lot, 100)
				if m.mobile != "" && m.consent {
					c.tierUp = append(c.tierUp, "tier_upgrade/"+tc.ID())
				}
			}
		}
		keys := make([]string, 0, len(perStore))
		for s := range perStore {
			keys = append(keys, s)
		}
		sort.Strings(keys)
		for _, s := range keys {
			es := perStore[s]
			b := hq.Batch{Store: s, Till: "T1", First: es[0].Seq, Last: es[len(es)-1].Seq, ReceivedAt: d.at(22, 0)}
			for i := range es {
				e := es[i]
				b.Items = append(b.Items, hq.Item{Seq: e.Seq, Entry: &e})
			}
			c.batches[d.String()] = append(c.batches[d.String()], b)
		}
		// Balances after each upload of the day, for the after-sale count.
		run := map[string]int64{}
		for id, v := range c.balanceAt[d.add(-1).String()] {
			run[id] = v
		}
		for _, b := range c.batches[d.String()] {
			last := map[string]string{}
			for _, it := range b.Items {
				e := it.Entry
				if e.MemberID != "" {
					run[e.MemberID] += e.PointsDelta
				}
				if e.Kind == entry.KindSale {
					last[e.MemberID] = e.ID()
				}
			}
			for id, eid := range last {
				m := c.byID[id]
				if run[id] >= 1000 && m.mobile != "" && m.consent { // 1,000 points pay for 10 yuan
					c.afterSale = append(c.afterSale, "after_sale/"+eid)
				}
			}
		}
		c.balanceAt[d.String()] = run
	}
	return c
}

func (c *chain) addEarned(member, lot string, pts int64) {
	if c.earnedFor[member] == nil {
		c.earnedFor[member] = map[string]int64{}
	}
	c.earnedFor[member][lot] += pts
}

// expected are the ids of the messages the uploads and the day jobs of
// jobsFrom..end must send, and of the coupons the jobs must issue (to
// every member concerned, reachable or not), from the generated data:
// birthdays 3 days ahead (29 February on the 28th in a common year),
// points with last day 31 December 2027 on 1 December, and a member's
// last activity (last sale, or enrolment before any) exactly 60 or 180
// days before the day.
func (c *chain) expected() (msgs, coupons map[string]bool) {
	msgs, coupons = map[string]bool{}, map[string]bool{}
	for _, id := range c.afterSale {
		msgs[id] = true
	}
	for _, id := range c.tierUp {
		msgs[id] = true
	}
	for _, m := range c.members {
		reach := m.mobile != "" && m.consent
		md := m.birthday[len(m.birthday)-5:]
		for d := c.jobsFrom; !c.end.before(d); d = d.add(1) {
			if !m.enrolled.before(d) {
				continue
			}
			tg := d.add(3)
			tmd := tg.t.Format("01-02")
			leap := time.Date(tg.t.Year(), 2, 29, 0, 0, 0, 0, time.UTC).Day() == 29
			if md == tmd || (md == "02-29" && tmd == "02-28" && !leap) {
				coupons[fmt.Sprintf("birthday-%d-%s", tg.t.Year(), m.id)] = true
				if reach {
					msgs[fmt.Sprintf("birthday/%s/%d", m.id, tg.t.Year())] = true
				}
			}
			// Last activity as HQ holds it before the day's uploads.
			last := m.enrolled
			for _, s := range m.saleDays {
				if s.before(d) {
					last = s
				}
			}
			for state, n := range map[string]int{"at_risk": 60, "dormant": 180} {
				if last.String() == d.add(-n).String() {
					coupons[fmt.Sprintf("recall-%s-%s-%s", state, d.t.Format("20060102"), m.id)] = true
					if reach {
						msgs[fmt.Sprintf("recall/%s/%s/%s", m.id, state, d)] = true
					}
				}
			}
		}
		if reach && c.expiringOn1Dec(m.id) > 0 {
			msgs[fmt.Sprintf("points_expiring/%s/2027-12-31", m.id)] = true
		}
	}
	return msgs, coupons
}

// expiringOn1Dec is what of the member's points earned in 2026 (last day
// 2027-12-31) the balance on 1 December 2027 still holds, the balance
// being made of the latest-earned points (redemption takes the oldest).
func (c *chain) expiringOn1Dec(member string) int64 {
	bal := c.balanceAt["2027-11-30"][member]
	old, later := c.earnedFor[member]["2027-12-31"], int64(0)
	for lot, p := range c.earnedFor[member] {
		if lot > "2027-12-31" {
			later += p
		}
	}
	// Points of 2027 earned on 1 December or later are not in the balance
	// the job reads at 00:05 on 1 December; the generator only counts the
	// balance up to 30 November, so take them out of later too.
	later -= c.earnedAfter(member, "2027-12-01")
	if bal-later <= 0 {
		return 0
	}
	return min(bal-later, old)
}

func (c *chain) earnedAfter(member, from string) int64 {
	var s int64
	for d, bs := range c.batches {
		if d < from {
			continue
		}
		for _, b := range bs {
			for _, it := range b.Items {
				e := it.Entry
				if e.MemberID != member {
					continue
				}
				if e.Sale != nil {
					s += e.Sale.PointsEarned
				}
				if e.Points != nil && e.Points.Points > 0 {
					s += e.Points.Points
				}
			}
		}
	}
	return s
}
