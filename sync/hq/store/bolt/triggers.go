package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/messages"
	"posagent/sync/internal/boltjs"
)

// The reminder triggers' indexes, kept in the ingest transaction so the
// per-day jobs read only the members a day concerns.
var (
	bTrigMembers   = []byte("msg_members")   // member → trigMember
	bTrigBirthdays = []byte("msg_birthdays") // MM-DD \x00 member → ""
	bTrigLots      = []byte("msg_lots")      // member \x00 YYYY-MM-DD → points earned for that date (varint)
	bTrigLotDates  = []byte("msg_lot_dates") // YYYY-MM-DD \x00 member → ""
	bTrigActive    = []byte("msg_active")    // last activity (be64 unix s) \x00 member → ""
	bTrigDays      = []byte("msg_days")      // YYYY-MM-DD → hq.MessageDay: the day's job ran
	trigBuckets    = [][]byte{bTrigMembers, bTrigBirthdays, bTrigLots, bTrigLotDates, bTrigActive, bTrigDays}
)

func init() { allBuckets = append(allBuckets, trigBuckets...) }

// trigMember is what the indexes know of a member: the home store, the
// birthday key and the activity instant it is indexed under.
type trigMember struct {
	Store    string `json:"store,omitempty"`
	Birthday string `json:"md,omitempty"`
	Enrolled int64  `json:"enrolled,omitempty"` // unix s
	Active   int64  `json:"active,omitempty"`   // unix s of the msg_active key; 0 none
}

// trigSettings holds each open store's trigger settings, by its file: the
// ingest code runs in the committer with the transaction only.
var trigSettings sync.Map // *bbolt.DB → *messages.Settings

// SetMessageSettings sets what the triggers send from now on (nil: send
// nothing; the indexes are kept up to date either way).
func (s *Store) SetMessageSettings(st *messages.Settings) {
	if st == nil {
		trigSettings.Delete(s.db)
		return
	}
	trigSettings.Store(s.db, st)
}

var defaultSettings = sync.OnceValue(func() *messages.Settings {
	return &messages.Settings{Program: loyalty.DefaultProgram()}
})

// trigSettingsOf is the store's settings and whether to send; the indexes
// follow the default program's lot rule when none are set.
func trigSettingsOf(db *bbolt.DB) (*messages.Settings, bool) {
	if v, ok := trigSettings.Load(db); ok {
		return v.(*messages.Settings), true
	}
	return defaultSettings(), false
}

func trigKey(a, b string) []byte { return []byte(a + "\x00" + b) }

func getTrigMember(tx *bbolt.Tx, id string) (trigMember, error) {
	var r trigMember
	if v := tx.Bucket(bTrigMembers).Get([]byte(id)); v != nil {
		if err := json.Unmarshal(v, &r); err != nil {
			return r, fmt.Errorf("message index of member %q: %w", id, err)
		}
	}
	return r, nil
}

// setActive moves the member's activity key to at (unix s).
func setActive(tx *bbolt.Tx, id string, r *trigMember, at int64) error {
	if r.Active == at {
		return nil
	}
	b := tx.Bucket(bTrigActive)
	if r.Active != 0 {
		if err := b.Delete(activeKey(r.Active, id)); err != nil {
			return err
		}
	}
	r.Active = at
	return b.Put(activeKey(at, id), nil)
}

func activeKey(at int64, id string) []byte {
	return append(append(boltjs.U64(uint64(at)), 0), id...)
}

// trigIngest keeps the indexes for the entries a batch stored and writes
// the after-sale and tier-upgrade messages they cause, in the ingest
// transaction; ms holds the members as the batch left them.
func trigIngest(tx *bbolt.Tx, ms *memberSet, es []entry.Entry) error {
	if len(es) == 0 {
		return nil
	}
	st, send := trigSettingsOf(tx.DB())
	recs := map[string]*trigMember{}
	rec := func(id string) (*trigMember, error) {
		if r := recs[id]; r != nil {
			return r, nil
		}
		r, err := getTrigMember(tx, id)
		if err != nil {
			return nil, err
		}
		recs[id] = &r
		return &r, nil
	}
	var touched []string // members with a sale or a tier change
	for i := range es {
		e := &es[i]
		switch {
		case e.Enrol != nil:
			id := e.Enrol.Member.ID
			if id == "" {
				id = e.MemberID
			}
			r, err := rec(id)
			if err != nil {
				return err
			}
			if r.Store == "" {
				r.Store = e.Store
			}
			r.Enrolled = e.At.Unix()
			md, _ := messages.BirthdayMonthDay(e.Enrol.Member.Birthday)
			if md != r.Birthday {
				b := tx.Bucket(bTrigBirthdays)
				if r.Birthday != "" {
					if err := b.Delete(trigKey(r.Birthday, id)); err != nil {
						return err
					}
				}
				if md != "" {
					if err := b.Put(trigKey(md, id), nil); err != nil {
						return err
					}
				}
				r.Birthday = md
			}
		case e.MemberID != "" && (e.Sale != nil || e.Tier != nil):
			touched = append(touched, e.MemberID)
		}
	}
	// Last activity: the last sale, or the enrolment of a member who has
	// not bought yet.
	for id, r := range recs {
		if r.Active == 0 && r.Enrolled != 0 {
			sm, err := ms.get(id)
			if err != nil {
				return err
			}
			if sm.rec.LastSale.IsZero() {
				if err := setActive(tx, id, r, r.Enrolled); err != nil {
					return err
				}
			}
		}
	}
	for _, id := range touched {
		sm, err := ms.get(id)
		if err != nil {
			return err
		}
		r, err := rec(id)
		if err != nil {
			return err
		}
		if ls := sm.rec.LastSale; !ls.IsZero() {
			if err := setActive(tx, id, r, ls.Unix()); err != nil {
				return err
			}
		}
	}
	for id, r := range recs {
		if err := boltjs.Put(tx.Bucket(bTrigMembers), []byte(id), *r); err != nil {
			return err
		}
	}
	lots, dates := tx.Bucket(bTrigLots), tx.Bucket(bTrigLotDates)
	for _, ea := range st.Earnings(es) {
		d := ea.Expires.String()
		k := trigKey(ea.Member, d)
		var cur int64
		if v := lots.Get(k); v != nil {
			cur, _ = binary.Varint(v)
		}
		if err := lots.Put(k, binary.AppendVarint(nil, messages.AddPoints(cur, ea.Points))); err != nil {
			return err
		}
		if err := dates.Put(trigKey(d, ea.Member), nil); err != nil {
			return err
		}
	}
	if !send || len(touched) == 0 {
		return nil
	}
	members := map[string]messages.Member{}
	for _, id := range touched {
		sm, err := ms.get(id)
		if err != nil {
			return err
		}
		r, err := rec(id)
		if err != nil {
			return err
		}
		m := messages.MemberOf(sm.rec.Data, r.Store, sm.rec.Points)
		m.ID = id
		members[id] = m
	}
	msgs := append(st.AfterSales(es, members), st.TierUpgrades(es, members)...)
	return EnqueueTx(tx, msgs)
}

// LastMessageDay is the latest day whose reminder job ran.
func (s *Store) LastMessageDay(context.Context) (day messages.Date, ok bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bTrigDays).Cursor().Last()
		if k != nil {
			day, ok = messages.ParseDate(string(k))
		}
		return nil
	})
	return day, ok, err
}

// RunMessageDay runs day's reminder job (birthdays, points expiring,
// recall) in one transaction with its coupons, its messages and the record
// that it ran; a day that ran already is left alone (Ran false).
func (s *Store) RunMessageDay(ctx context.Context, st *messages.Settings, day messages.Date, now time.Time) (hq.MessageDay, error) {
	res := hq.MessageDay{Day: day.String()}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		res = hq.MessageDay{Day: day.String()}
		days := tx.Bucket(bTrigDays)
		if days.Get([]byte(res.Day)) != nil {
			return nil
		}
		var msgs []messages.Message
		var ds []hq.Delta
		member := func(id string) (messages.Member, hq.Member, error) {
			m, _, err := getMember(tx, id)
			if err != nil {
				return messages.Member{}, hq.Member{}, err
			}
			r, err := getTrigMember(tx, id)
			if err != nil {
				return messages.Member{}, hq.Member{}, err
			}
			mm := messages.MemberOf(m.Data, r.Store, m.Points)
			mm.ID = id
			return mm, m.Member, nil
		}
		today := messages.DateOf(now, st.ChainZone())
		if target, on := st.BirthdayTarget(day); on && !target.Before(today) {
			for _, md := range messages.BirthdayKeys(target) {
				if err := eachUnder(tx.Bucket(bTrigBirthdays), md, func(id string) error {
					m, _, err := member(id)
					if err != nil {
						return err
					}
					msg, c, ok := st.Birthday(day, m, now)
					if ok {
						msgs = append(msgs, msg)
						res.Birthday++
					}
					if c != nil {
						ds = append(ds, hq.Delta{MemberID: id, CouponsIssued: []entry.MemberCoupon{*c}})
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		if target, on := st.ExpiryTarget(day); on && !target.Before(today) {
			t := target.String()
			if err := eachUnder(tx.Bucket(bTrigLotDates), t, func(id string) error {
				m, _, err := member(id)
				if err != nil {
					return err
				}
				var at, later int64
				c := tx.Bucket(bTrigLots).Cursor()
				prefix := trigKey(id, "")
				for k, v := c.Seek(trigKey(id, t)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					n, _ := binary.Varint(v)
					if string(k[len(prefix):]) == t {
						at = messages.AddPoints(at, n)
					} else {
						later = messages.AddPoints(later, n)
					}
				}
				msg, ok := st.PointsExpiring(day, m, messages.Expiring(m.Points, at, later), now)
				if ok {
					msgs = append(msgs, msg)
					res.PointsExpiring++
				}
				return nil
			}); err != nil {
				return err
			}
		}
		loc := st.ChainZone()
		states := st.RecallDates(day)
		for _, state := range []string{loyalty.StateAtRisk, loyalty.StateDormant} {
			d, ok := states[state]
			if !ok {
				continue
			}
			from, to := boltjs.U64(uint64(d.Start(loc).Unix())), boltjs.U64(uint64(d.AddDays(1).Start(loc).Unix()))
			c := tx.Bucket(bTrigActive).Cursor()
			for k, _ := c.Seek(from); k != nil && bytes.Compare(k[:8], to) < 0; k, _ = c.Next() {
				id := string(k[9:])
				m, rec, err := member(id)
				if err != nil {
					return err
				}
				msg, cp, ok := st.Recall(day, state, m, now)
				if cp == nil || hq.HasCoupon(rec.Coupons, cp.ID) {
					continue
				}
				ds = append(ds, hq.Delta{MemberID: id, CouponsIssued: []entry.MemberCoupon{*cp}})
				if ok {
					msgs = append(msgs, msg)
					res.Recall++
				}
			}
		}
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].MemberID < ds[j].MemberID })
		if err := applyDeltas(tx, ds); err != nil {
			return err
		}
		if err := EnqueueTx(tx, msgs); err != nil {
			return err
		}
		res.Ran, res.RanAt = true, now.UTC()
		return boltjs.Put(days, []byte(res.Day), res)
	})
	return res, err
}

// eachUnder calls fn with the second part of every key "prefix\x00…".
func eachUnder(b *bbolt.Bucket, prefix string, fn func(string) error) error {
	p := trigKey(prefix, "")
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if err := fn(string(k[len(p):])); err != nil {
			return err
		}
	}
	return nil
}

var _ hq.MessageDayStore = (*Store)(nil)
