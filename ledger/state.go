package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// balance is the small per-member record rewritten by each sale (binary,
// see codec.go). Lots and coupons live under their own keys next to it.
type balance struct {
	Points      int64
	StoredValue int64
	// PendPoints and PendSV are the part of the balances from local
	// entries HQ has not acknowledged yet; confirmed = total − pending.
	PendPoints  int64
	PendSV      int64
	LastSale    int64   // unix seconds; 0: none
	Recent      []spend // local sales for tier rules, by day
	OffDay      int32   // latest local day (yyyymmdd) with an offline redemption
	OffRedeemed int64   // points redeemed offline that day (and backdated to before it)
	// Unlogged is the global order of the HQ state last applied when it is
	// not in the hq log (0: it is, or there is none): a state applied with
	// nothing local pending is the member's whole state, so it is written
	// to the log only when a local entry first touches the member (and
	// Verify reads it from this record until then).
	Unlogged uint64
	// HQLotKey/HQLotRem are the member's HQ lot (id "hq/<key>", never
	// expires at the till) while it is not stored under its own key; 0: none.
	HQLotKey uint64
	HQLotRem int64
}

// spend is what a member spent on one local day: sales count and money.
type spend struct {
	Day    int32 // yyyymmdd
	Amount int64
	Sales  int
}

// lot is a points lot, stored under (member, expiry, global order of the
// entry or HQ state that created it): key order is the redemption order,
// soonest-expiring first and oldest first among equals. HQ lots never expire
// at the till (Exp 0) and come first.
type lot struct {
	Exp       int64 // unix seconds of Expires, 0: never
	Key       uint64
	ID        string
	Remaining int64
	Expires   string // RFC 3339 instant (UTC); empty: never expires at the till
}

type couponState struct {
	Coupon     entry.MemberCoupon `json:"c"`
	Used       bool               `json:"u,omitempty"`
	UsedTill   string             `json:"ut,omitempty"`
	UsedSeq    uint64             `json:"us,omitempty"`
	IssuedTill string             `json:"it,omitempty"` // set when issued by a local entry
	IssuedSeq  uint64             `json:"is,omitempty"`
}

// mstate is one member's derived state. The same apply code updates it at
// commit (loaded from the caches) and in Verify (rebuilt from entries).
type mstate struct {
	id      string
	member  entry.Member
	bal     balance
	lots    []*lot
	coupons map[string]*couponState
	// Lots and coupons are loaded only when needed: a sale that only earns
	// appends a lot without reading the others, and reads no coupon.
	tx           *bolt.Tx
	hqToLog      *hqState // an unlogged HQ state to write to the hq log at save
	hqToLogG     uint64
	lotsLoaded   bool
	couponsAll   bool // every coupon of the member is in coupons
	memberDirty  bool
	balKey       bool // the balance is (also) under its own key, as before schema 5
	err          error
	origLots     map[string]lot
	origCoupons  map[string]couponState
	checkedFirst bool // expiredLots looked at the first lot
}

func newMState(id string) *mstate {
	return &mstate{id: id, coupons: map[string]*couponState{}, lotsLoaded: true, couponsAll: true,
		origLots: map[string]lot{}, origCoupons: map[string]couponState{}, memberDirty: true}
}

func lotLess(a, b *lot) bool {
	if a.Exp != b.Exp {
		return a.Exp < b.Exp
	}
	return a.Key < b.Key
}

// ensureLots loads the member's lots from the file, keeping lots given
// earlier in this request.
func (ms *mstate) ensureLots() {
	if ms.lotsLoaded {
		return
	}
	ms.lotsLoaded = true
	if ms.bal.HQLotKey != 0 {
		// The implicit HQ lot becomes a stored one at save (it is not
		// among the lots loaded, so save writes it).
		ms.lots = append(ms.lots, hqLot(ms.bal.HQLotKey, ms.bal.HQLotRem))
		ms.bal.HQLotKey, ms.bal.HQLotRem = 0, 0
	}
	prefix := memberKey(ms.id, tagLot)
	c := ms.tx.Bucket(bMembers).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		lt, err := decodeLot(len(prefix), k, v)
		if err != nil {
			ms.err = err
			return
		}
		ms.lots = append(ms.lots, lt)
		ms.origLots[string(k)] = *lt
	}
	sort.SliceStable(ms.lots, func(i, j int) bool { return lotLess(ms.lots[i], ms.lots[j]) })
}

func hqLot(g uint64, remaining int64) *lot {
	return &lot{Key: g, ID: fmt.Sprintf("hq/%d", g), Remaining: remaining}
}

// coupon returns the member's coupon id (nil: not held), reading it from
// the file if needed.
func (ms *mstate) coupon(id string) *couponState {
	if c, ok := ms.coupons[id]; ok || ms.couponsAll {
		return c
	}
	k := memberKey(ms.id, tagCoupon, []byte(id)...)
	raw := ms.tx.Bucket(bMembers).Get(k)
	if raw == nil {
		return nil
	}
	var cs couponState
	if err := decodeCoupon(ms.id, id, raw, &cs); err != nil {
		ms.err = fmt.Errorf("%w: coupon %s of member %q unreadable: %v", ErrCorrupt, id, ms.id, err)
		return nil
	}
	ms.coupons[id] = &cs
	ms.origCoupons[id] = cs
	return &cs
}

// allCoupons loads every coupon of the member.
func (ms *mstate) allCoupons() map[string]*couponState {
	if ms.couponsAll {
		return ms.coupons
	}
	ms.couponsAll = true
	prefix := memberKey(ms.id, tagCoupon)
	c := ms.tx.Bucket(bMembers).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		id := string(k[len(prefix):])
		if _, ok := ms.coupons[id]; ok {
			continue // already loaded (and maybe changed) in this request
		}
		var cs couponState
		if err := decodeCoupon(ms.id, id, v, &cs); err != nil {
			ms.err = fmt.Errorf("%w: coupon of member %q unreadable: %v", ErrCorrupt, ms.id, err)
			return ms.coupons
		}
		ms.coupons[id] = &cs
		ms.origCoupons[id] = cs
	}
	return ms.coupons
}

func loadMember(tx *bolt.Tx, id string) (*mstate, error) {
	if id == "" {
		return nil, wrapErr(ErrInvalid, "member id is empty")
	}
	b := tx.Bucket(bMembers)
	raw := b.Get(memberKey(id, tagMember))
	if raw == nil {
		return nil, wrapErr(ErrNotFound, "member %q is not known at this till; enrol them or wait for the next sync from HQ", id)
	}
	ms := &mstate{id: id, coupons: map[string]*couponState{}, tx: tx,
		origLots: map[string]lot{}, origCoupons: map[string]couponState{}}
	if _, err := decodeMember(id, raw, &ms.member, &ms.bal); err != nil {
		return nil, fmt.Errorf("%w: member %q unreadable: %v", ErrCorrupt, id, err)
	}
	if v := b.Get(memberKey(id, tagBalance)); v != nil {
		ms.balKey = true
		if err := decodeBalance(v, &ms.bal); err != nil {
			return nil, fmt.Errorf("member %s: %w", id, err)
		}
	}
	return ms, nil
}

// save writes what changed since load.
func (ms *mstate) save(w *writer) error {
	if ms.err != nil {
		return ms.err
	}
	if ms.hqToLog != nil {
		if err := w.putJSON(bHQLog, u64(ms.hqToLogG), ms.hqToLog); err != nil {
			return err
		}
		ms.hqToLog = nil
	}
	if err := ms.saveRecord(w); err != nil {
		return err
	}
	var seen map[string]bool
	if len(ms.origLots) > 0 {
		seen = map[string]bool{}
	}
	for _, lt := range ms.lots {
		k := lotKey(ms.id, lt)
		if seen != nil {
			seen[string(k)] = true
		}
		if o, ok := ms.origLots[string(k)]; ok && o == *lt {
			continue
		}
		if err := w.put(bMembers, k, lt.encode()); err != nil {
			return err
		}
	}
	for k := range ms.origLots {
		if !seen[k] {
			if err := w.del(bMembers, []byte(k)); err != nil {
				return err
			}
		}
	}
	if err := ms.saveLotIndex(w); err != nil {
		return err
	}
	for id, cs := range ms.coupons {
		if o, ok := ms.origCoupons[id]; ok && sameCoupon(o, *cs) {
			continue
		}
		if err := w.put(bMembers, memberKey(ms.id, tagCoupon, []byte(id)...), encodeCoupon(ms.id, id, cs)); err != nil {
			return err
		}
	}
	for id := range ms.origCoupons {
		if _, ok := ms.coupons[id]; !ok {
			if err := w.del(bMembers, memberKey(ms.id, tagCoupon, []byte(id)...)); err != nil {
				return err
			}
		}
	}
	return nil
}

// saveRecord writes the member record with its balance, dropping a separate
// balance key of an earlier schema.
func (ms *mstate) saveRecord(w *writer) error {
	if err := w.put(bMembers, memberKey(ms.id, tagMember), encodeMember(ms.id, &ms.member, &ms.bal)); err != nil {
		return err
	}
	if ms.balKey {
		ms.balKey = false
		return w.del(bMembers, memberKey(ms.id, tagBalance))
	}
	return nil
}

// saveLotIndex keeps the lot-expiry index in step with the lots: an expiry
// gains the member when a lot expiring then is added, and loses it when the
// member's last lot expiring then is gone. Which lots were removed is known
// only when every lot was loaded; otherwise lots were only added.
func (ms *mstate) saveLotIndex(w *writer) error {
	after := map[int64]bool{}
	for _, lt := range ms.lots {
		if lt.Exp != 0 {
			after[lt.Exp] = true
		}
	}
	ix := w.tx.Bucket(bLotExp)
	if ms.lotsLoaded {
		gone := map[int64]bool{}
		for _, o := range ms.origLots {
			if o.Exp != 0 && !after[o.Exp] && !gone[o.Exp] {
				gone[o.Exp] = true
				if err := w.del(bLotExp, lotExpKey(o.Exp, ms.id)); err != nil {
					return err
				}
			}
		}
	}
	for exp := range after {
		k := lotExpKey(exp, ms.id)
		if ix.Get(k) == nil {
			if err := w.put(bLotExp, k, lotExpMark); err != nil {
				return err
			}
		}
	}
	return nil
}

func sameCoupon(a, b couponState) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (ms *mstate) lotsSum() int64 {
	ms.ensureLots()
	var s int64
	for _, lt := range ms.lots {
		s += lt.Remaining
	}
	return s
}

func pos(v int64) int64 { return max(v, 0) }

// give adds n points. Points first pay off a negative balance (debt); what
// remains becomes a lot, so the lots always sum to max(points, 0).
func (ms *mstate) give(n int64, key uint64, id string, expires time.Time) {
	if n <= 0 {
		return
	}
	before := ms.bal.Points
	ms.bal.Points += n
	add := pos(ms.bal.Points) - pos(before)
	if add <= 0 {
		return
	}
	lt := &lot{Key: key, ID: id, Remaining: add}
	if !expires.IsZero() {
		lt.Exp = expires.Unix()
		lt.Expires = time.Unix(lt.Exp, 0).UTC().Format(time.RFC3339)
	}
	ms.lots = append(ms.lots, lt)
	sort.SliceStable(ms.lots, func(i, j int) bool { return lotLess(ms.lots[i], ms.lots[j]) })
}

// take removes n points: from the lot with key own first (a refund takes back
// the sale's own lot), then oldest first. Beyond the lots the balance goes
// negative (a debt the next points pay off).
func (ms *mstate) take(n int64, own uint64) []entry.LotUse {
	if n <= 0 {
		return nil
	}
	ms.ensureLots()
	t := min(n, pos(ms.bal.Points))
	ms.bal.Points -= n
	var uses []entry.LotUse
	use := func(lt *lot) {
		u := min(t, lt.Remaining)
		if u <= 0 {
			return
		}
		lt.Remaining -= u
		t -= u
		uses = append(uses, entry.LotUse{Lot: lt.ID, Points: u})
	}
	if own != 0 {
		for _, lt := range ms.lots {
			if lt.Key == own {
				use(lt)
			}
		}
	}
	for _, lt := range ms.lots {
		if t == 0 {
			break
		}
		use(lt)
	}
	ms.dropEmpty()
	return uses
}

func (ms *mstate) takeLot(id string, n int64) ([]entry.LotUse, error) {
	ms.ensureLots()
	for _, lt := range ms.lots {
		if lt.ID == id {
			if lt.Remaining != n {
				return nil, fmt.Errorf("lot %s holds %d points, the expiry writes off %d", id, lt.Remaining, n)
			}
			lt.Remaining = 0
			ms.bal.Points -= n
			ms.dropEmpty()
			return []entry.LotUse{{Lot: id, Points: n}}, nil
		}
	}
	return nil, fmt.Errorf("lot %s to expire is not held", id)
}

// lotByID is the member's lot id (nil: not held).
func (ms *mstate) lotByID(id string) *lot {
	ms.ensureLots()
	for _, lt := range ms.lots {
		if lt.ID == id {
			return lt
		}
	}
	return nil
}

func (ms *mstate) dropEmpty() {
	out := ms.lots[:0]
	for _, lt := range ms.lots {
		if lt.Remaining > 0 {
			out = append(out, lt)
		}
	}
	ms.lots = out
}

// expiredLots lists lots no longer usable at now.
func (ms *mstate) expiredLots(now time.Time) []*lot {
	if !ms.lotsLoaded && !ms.checkedFirst {
		// Sorted by expiry after the HQ lot: only the first lot that
		// expires can tell whether any has.
		ms.checkedFirst = true
		prefix := memberKey(ms.id, tagLot)
		c := ms.tx.Bucket(bMembers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			lt, err := decodeLot(len(prefix), k, v)
			if err != nil {
				ms.err = err
				return nil
			}
			if lt.Exp == 0 {
				continue
			}
			if now.Unix() >= lt.Exp {
				ms.ensureLots()
			}
			break
		}
	}
	var out []*lot
	for _, lt := range ms.lots {
		if lt.Exp != 0 && now.Unix() >= lt.Exp {
			out = append(out, lt)
		}
	}
	return out
}

// saleRef is what applying a refund or void needs of the original sale.
type saleRef struct {
	global uint64
	e      *entry.Entry
}

// apply updates ms with entry e (global order g) and returns the lot uses
// the entry implies. Commit and Verify both call it, so the caches are
// exactly what replaying the entries gives.
func (ms *mstate) apply(e *entry.Entry, g uint64, progs loyalty.Programs, sale *saleRef) ([]entry.LotUse, error) {
	if ms.bal.Unlogged != 0 {
		// The first local entry since an HQ state kept out of the hq
		// log: log that state now, as it was, so Verify replays it
		// before this entry.
		s := ms.unloggedState()
		if ms.err != nil {
			return nil, ms.err
		}
		ms.hqToLog, ms.hqToLogG = s, ms.bal.Unlogged
		ms.bal.Unlogged = 0
	}
	p0, sv0 := ms.bal.Points, ms.bal.StoredValue
	var uses []entry.LotUse
	prog, err := progs.At(e.At)
	if err != nil {
		return nil, err
	}
	loc := prog.Location()
	switch e.Kind {
	case entry.KindSale:
		s := e.Sale
		uses = ms.take(s.RedeemPoints, 0)
		ms.give(s.PointsEarned, g, e.ID(), prog.LotExpiry(e.At))
		ms.bal.StoredValue -= s.StoredValue
		if s.CouponID != "" {
			c := ms.coupon(s.CouponID)
			if c == nil || c.Used {
				return nil, fmt.Errorf("coupon %s is not held unused by member %s", s.CouponID, ms.id)
			}
			c.Used, c.UsedTill, c.UsedSeq = true, e.Till, e.Seq
		}
		ms.bal.LastSale = e.At.Unix()
		ms.addSpend(e.At.In(loc), s.Due, 1)
		if s.OfflineRedeem && s.RedeemPoints > 0 {
			// The count is the latest local day's; a receipt stamped on
			// an earlier day adds to it rather than starting that day
			// afresh (see offlineCap).
			if day := dayNum(e.At.In(loc)); day > ms.bal.OffDay {
				ms.bal.OffDay, ms.bal.OffRedeemed = day, 0
			}
			ms.bal.OffRedeemed += s.RedeemPoints
		}
	case entry.KindRefund, entry.KindVoid:
		if sale == nil || sale.e.Sale == nil {
			return nil, fmt.Errorf("%s %s: original sale not found", e.Kind, e.ID())
		}
		var reversed, restored, svBack, amount int64
		var couponBack string
		sales := 0
		if r := e.Refund; r != nil {
			reversed, restored, svBack, amount, couponBack = r.PointsReversed, r.PointsRestored, r.StoredValue, r.Amount, r.CouponRestored
		} else {
			v := e.Void
			reversed, restored, svBack, amount, couponBack = v.PointsReversed, v.PointsRestored, v.StoredValue, sale.e.Sale.Due, v.CouponRestored
			sales = -1
		}
		ms.take(reversed, sale.global)
		sp, err := progs.At(sale.e.At)
		if err != nil {
			return nil, err
		}
		// Restored points expire as if earned on the original sale's day.
		ms.give(restored, g, e.ID(), sp.LotExpiry(sale.e.At))
		ms.bal.StoredValue += svBack
		if couponBack != "" {
			c := ms.coupon(couponBack)
			if c == nil || !c.Used {
				return nil, fmt.Errorf("coupon %s to restore is not a used coupon of member %s", couponBack, ms.id)
			}
			c.Used, c.UsedTill, c.UsedSeq = false, "", 0
		}
		ms.addSpend(sale.e.At.In(loc), -amount, sales)
	case entry.KindTopUp:
		ms.bal.StoredValue += e.TopUp.Amount + e.TopUp.Bonus
	case entry.KindEnrol:
		ms.member = e.Enrol.Member
		ms.memberDirty = true
	case entry.KindCouponIssued:
		c := e.Coupon.Coupon
		ms.coupons[c.ID] = &couponState{Coupon: c, IssuedTill: e.Till, IssuedSeq: e.Seq}
	case entry.KindPointsAdjust:
		if e.Points.Points >= 0 {
			ms.give(e.Points.Points, g, e.ID(), prog.LotExpiry(e.At))
		} else {
			uses = ms.take(-e.Points.Points, 0)
		}
	case entry.KindPointsExpired:
		uses, err = ms.takeLot(e.Points.Lot, -e.Points.Points)
		if err != nil {
			return nil, err
		}
	case entry.KindTierChange:
		ms.member.Tier = e.Tier.To
		ms.memberDirty = true
	default:
		return nil, fmt.Errorf("entry %s: unknown kind %q", e.ID(), e.Kind)
	}
	if ms.err != nil {
		return nil, ms.err
	}
	if d := ms.bal.Points - p0; d != e.PointsDelta {
		return nil, fmt.Errorf("entry %s: points delta %d, payload implies %d", e.ID(), e.PointsDelta, d)
	}
	if d := ms.bal.StoredValue - sv0; d != e.StoredValueDelta {
		return nil, fmt.Errorf("entry %s: stored value delta %d, payload implies %d", e.ID(), e.StoredValueDelta, d)
	}
	if ms.bal.StoredValue < 0 {
		return nil, fmt.Errorf("entry %s: stored value would be %d", e.ID(), ms.bal.StoredValue)
	}
	ms.bal.PendPoints += e.PointsDelta
	ms.bal.PendSV += e.StoredValueDelta
	return uses, nil
}

// addSpend keeps per-day spending for the tier rules, pruned to what the
// longest rule (365 days) can see.
func (ms *mstate) addSpend(local time.Time, amount int64, sales int) {
	day := dayNum(local)
	found := false
	for i := range ms.bal.Recent {
		if ms.bal.Recent[i].Day == day {
			ms.bal.Recent[i].Amount += amount
			ms.bal.Recent[i].Sales += sales
			found = true
		}
	}
	if !found {
		ms.bal.Recent = append(ms.bal.Recent, spend{Day: day, Amount: amount, Sales: sales})
		sort.Slice(ms.bal.Recent, func(i, j int) bool { return ms.bal.Recent[i].Day < ms.bal.Recent[j].Day })
	}
	cut := dayNum(local.AddDate(0, 0, -370))
	out := ms.bal.Recent[:0]
	for _, s := range ms.bal.Recent {
		if s.Day >= cut {
			out = append(out, s)
		}
	}
	ms.bal.Recent = out
}

// tierStats are the member's local figures at local time now (including a
// sale already applied).
func (ms *mstate) tierStats(local time.Time) loyalty.TierStats {
	q := (int(local.Month()) - 1) / 3
	qStart := dayNum(time.Date(local.Year(), time.Month(q*3+1), 1, 0, 0, 0, 0, local.Location()))
	from365 := dayNum(local.AddDate(0, 0, -364))
	today := dayNum(local)
	var st loyalty.TierStats
	for _, s := range ms.bal.Recent {
		if s.Day > today {
			continue
		}
		if s.Day >= qStart {
			st.SalesThisQuarter += s.Sales
		}
		if s.Day >= from365 {
			st.Spend365 += s.Amount
		}
	}
	return st
}

// hqState is a member state applied from HQ, kept in the hq log so Verify
// can replay it in order with the entries.
type hqState struct {
	Member      entry.Member         `json:"member"`
	Points      int64                `json:"points"`
	StoredValue int64                `json:"stored_value"`
	Coupons     []entry.MemberCoupon `json:"coupons,omitempty"`
	Flagged     bool                 `json:"flagged,omitempty"`
	LastSale    string               `json:"last_sale,omitempty"`
	// Marks are the acked sequences per till when the state was applied:
	// local entries beyond them are still pending on top of HQ's figures.
	Marks map[string]uint64 `json:"marks"`
	// NoPending: nothing local was pending on top when the state was
	// applied (a state logged after the fact; Marks are then unused).
	NoPending bool `json:"no_pending,omitempty"`
}

// unloggedState is the HQ state a member's record holds while it is out of
// the hq log: nothing local has touched the member since it was applied with
// nothing pending, so the record is exactly that state. Flagged is not kept
// at the till (only HQ acts on it).
func (ms *mstate) unloggedState() *hqState {
	s := &hqState{Member: ms.member, Points: ms.bal.Points, StoredValue: ms.bal.StoredValue, NoPending: true}
	if ms.bal.LastSale != 0 {
		s.LastSale = time.Unix(ms.bal.LastSale, 0).UTC().Format(time.RFC3339)
	}
	cs := ms.allCoupons()
	ids := make([]string, 0, len(cs))
	for id := range cs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s.Coupons = append(s.Coupons, cs[id].Coupon)
	}
	return s
}

// nothingPending tells whether no local entry of the member is pending on
// top of HQ's figures under marks: no balance change and no coupon issued or
// used by an entry HQ has not acknowledged. An HQ state applied then is the
// member's whole state and may stay out of the hq log.
func (ms *mstate) nothingPending(marks map[string]uint64) bool {
	if ms.bal.PendPoints != 0 || ms.bal.PendSV != 0 {
		return false
	}
	pending := func(till string, seq uint64) bool { return till != "" && seq > marks[till] }
	for _, c := range ms.allCoupons() {
		if pending(c.IssuedTill, c.IssuedSeq) || (c.Used && pending(c.UsedTill, c.UsedSeq)) {
			return false
		}
	}
	return ms.err == nil
}

// applyHQ sets the confirmed balances from HQ. pendP/pendSV are the member's
// local entries HQ has not acknowledged yet; they stay on top. The lots
// become one HQ lot (HQ expires those points and says so in a later state),
// and coupons are HQ's list plus the ones local pending entries issued, with
// the ones pending local sales used kept used.
func (ms *mstate) applyHQ(s *hqState, g uint64, pendP, pendSV int64) {
	ms.member = s.Member
	ms.memberDirty = true
	ms.bal.Points = s.Points + pendP
	ms.bal.StoredValue = s.StoredValue + pendSV
	ms.bal.PendPoints, ms.bal.PendSV = pendP, pendSV
	ms.ensureLots() // so the old ones are deleted
	ms.lots = nil
	if ms.bal.Points > 0 {
		ms.lots = []*lot{hqLot(g, ms.bal.Points)}
	}
	if t, err := time.Parse(time.RFC3339, s.LastSale); err == nil && t.Unix() > ms.bal.LastSale {
		ms.bal.LastSale = t.Unix()
	}
	pending := func(till string, seq uint64) bool { return !s.NoPending && till != "" && seq > s.Marks[till] }
	next := map[string]*couponState{}
	for _, c := range s.Coupons {
		next[c.ID] = &couponState{Coupon: c}
	}
	for id, c := range ms.allCoupons() {
		if _, ok := next[id]; !ok && pending(c.IssuedTill, c.IssuedSeq) {
			cc := *c
			next[id] = &cc
		}
		if n, ok := next[id]; ok && c.Used && pending(c.UsedTill, c.UsedSeq) {
			n.Used, n.UsedTill, n.UsedSeq = true, c.UsedTill, c.UsedSeq
		}
	}
	ms.coupons = next
}

// ---- entry writing ----

// alloc hands out per-till sequences and global order numbers for the
// entries of one request, before anything is written.
type alloc struct {
	tx     *bolt.Tx
	global uint64
	seqs   map[string]uint64
	out    []*entry.Entry
	gs     []uint64
}

func newAlloc(tx *bolt.Tx) *alloc {
	return &alloc{tx: tx, global: tx.Bucket(bLog).Sequence(), seqs: map[string]uint64{}}
}

// tillSeq is the last sequence number of till (0: no entry yet): the last
// log key with the till's prefix.
func tillSeq(tx *bolt.Tx, till string) uint64 {
	c := tx.Bucket(bLog).Cursor()
	end := append([]byte(till), 1)
	k, _ := c.Seek(end)
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if t, seq, ok := splitTillKey(k); ok && t == till {
		return seq
	}
	return 0
}

// add stamps e with the next sequence of its till and a global number.
func (a *alloc) add(e *entry.Entry) uint64 {
	s, ok := a.seqs[e.Till]
	if !ok {
		s = tillSeq(a.tx, e.Till)
	}
	s++
	a.seqs[e.Till] = s
	e.Seq = s
	a.global++
	a.out = append(a.out, e)
	a.gs = append(a.gs, a.global)
	return a.global
}

// nextGlobal reserves a global number for a non-entry record (HQ state).
func (a *alloc) nextGlobal() uint64 {
	a.global++
	return a.global
}

func (a *alloc) flush(w *writer) error {
	for i, e := range a.out {
		if err := e.Validate(); err != nil {
			// What the till would write breaks the entry rules HQ holds it
			// to (an id, a bound): refuse it as the request's fault.
			return wrapErr(ErrInvalid, "%v", err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		v := make([]byte, 8, 8+len(b))
		binary.BigEndian.PutUint64(v, a.gs[i])
		if err := w.put(bLog, tillKey(e.Till, e.Seq), append(v, b...)); err != nil {
			return err
		}
	}
	return w.setSeq(bLog, a.global)
}

// seqs are the sequence numbers of the entries allocated so far.
func (a *alloc) seqsOf(from int) []uint64 {
	out := make([]uint64, 0, len(a.out)-from)
	for _, e := range a.out[from:] {
		out = append(out, e.Seq)
	}
	return out
}

// ---- idempotency ----

// lookupKey returns the entries of an earlier request with the same key, or
// ErrKeyConflict when that request had different content.
func lookupKey(tx *bolt.Tx, kind, till, key string, hash []byte) ([]*entry.Entry, error) {
	raw := tx.Bucket(bKeys).Get(idemKey(kind, till, key))
	if raw == nil {
		return nil, nil
	}
	kr, err := decodeKeyRec(raw)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(kr.Hash, hash) {
		return nil, wrapErr(ErrKeyConflict, "%s %q on till %s was already committed with different content; use a new %s id for a different %s, or resend exactly the first one", kind, key, till, kind, kind)
	}
	out := make([]*entry.Entry, 0, len(kr.Seqs))
	for _, s := range kr.Seqs {
		e, _, err := entryAt(tx, till, s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func putKey(w *writer, kind, till, key string, hash []byte, seqs []uint64) error {
	return w.put(bKeys, idemKey(kind, till, key), keyRec{Hash: hash, Seqs: seqs}.encode())
}

// entryAt reads entry seq of till and its global order.
func entryAt(tx *bolt.Tx, till string, seq uint64) (*entry.Entry, uint64, error) {
	raw := tx.Bucket(bLog).Get(tillKey(till, seq))
	if raw == nil {
		return nil, 0, fmt.Errorf("%w: entry %s #%d is missing from the log; run posagent ledger verify", ErrCorrupt, till, seq)
	}
	return decodeLogValue(raw, till, seq)
}

func decodeLogValue(raw []byte, till string, seq uint64) (*entry.Entry, uint64, error) {
	if len(raw) < 8 {
		return nil, 0, fmt.Errorf("%w: entry %s #%d unreadable; run posagent ledger verify", ErrCorrupt, till, seq)
	}
	var e entry.Entry
	if err := json.Unmarshal(raw[8:], &e); err != nil {
		return nil, 0, fmt.Errorf("%w: entry %s #%d unreadable: %v", ErrCorrupt, till, seq, err)
	}
	return &e, binary.BigEndian.Uint64(raw), nil
}
