package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// balance is the small per-member record rewritten by each sale. Lots and
// coupons live under their own keys so a sale dirties few pages.
type balance struct {
	Points      int64 `json:"p"`
	StoredValue int64 `json:"sv"`
	// PendPoints and PendSV are the part of the balances from local
	// entries HQ has not acknowledged yet; confirmed = total − pending.
	PendPoints  int64   `json:"pp,omitempty"`
	PendSV      int64   `json:"psv,omitempty"`
	LastSale    string  `json:"ls,omitempty"` // RFC 3339 UTC
	Recent      []spend `json:"rc,omitempty"` // local sales for tier rules
	OffDay      string  `json:"od,omitempty"` // local day of OffRedeemed
	OffRedeemed int64   `json:"or,omitempty"` // points redeemed offline that day
}

// spend is what a member spent on one local day: sales count and money.
type spend struct {
	Day    string `json:"d"`
	Amount int64  `json:"a"`
	Sales  int    `json:"n"`
}

// lot is a points lot, stored under (member, expiry, global order of the
// entry or HQ state that created it): key order is the redemption order,
// soonest-expiring first and oldest first among equals. HQ lots never expire
// at the till (Exp 0) and come first.
type lot struct {
	Exp       int64  `json:"-"` // unix seconds of Expires, 0: never
	Key       uint64 `json:"-"`
	ID        string `json:"id"`
	Remaining int64  `json:"r"`
	Expires   string `json:"x,omitempty"` // RFC 3339 instant; empty: never expires at the till
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
	// Lots are loaded only when points are taken or one may have expired;
	// a sale that only earns appends a lot without reading the others.
	tx         *bolt.Tx
	lotsLoaded bool
	err        error

	origMember  []byte
	origLots    map[string]lot
	origCoupons map[string]couponState
}

func newMState(id string) *mstate {
	return &mstate{id: id, coupons: map[string]*couponState{}, lotsLoaded: true, origLots: map[string]lot{}}
}

func lotKey(id string, lt *lot) []byte {
	return memberKey(id, append(u64(uint64(lt.Exp)), u64(lt.Key)...))
}

func lotLess(a, b *lot) bool {
	if a.Exp != b.Exp {
		return a.Exp < b.Exp
	}
	return a.Key < b.Key
}

func decodeLot(prefix, k, v []byte) (*lot, error) {
	var lt lot
	if err := json.Unmarshal(v, &lt); err != nil || len(k) != len(prefix)+16 {
		return nil, fmt.Errorf("%w: lot %q unreadable (%v); run posagent ledger verify", ErrCorrupt, k, err)
	}
	lt.Exp = int64(getU64(k[len(prefix) : len(prefix)+8]))
	lt.Key = getU64(k[len(prefix)+8:])
	return &lt, nil
}

// ensureLots loads the member's lots from the file, keeping lots given
// earlier in this request.
func (ms *mstate) ensureLots() {
	if ms.lotsLoaded {
		return
	}
	ms.lotsLoaded = true
	prefix := memberKey(ms.id, nil)
	c := ms.tx.Bucket(bLots).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		lt, err := decodeLot(prefix, k, v)
		if err != nil {
			ms.err = err
			return
		}
		ms.lots = append(ms.lots, lt)
		ms.origLots[string(k)] = *lt
	}
	sort.SliceStable(ms.lots, func(i, j int) bool { return lotLess(ms.lots[i], ms.lots[j]) })
}

func loadMember(tx *bolt.Tx, id string) (*mstate, error) {
	if id == "" {
		return nil, wrapErr(ErrInvalid, "member id is empty")
	}
	raw := tx.Bucket(bMembers).Get([]byte(id))
	if raw == nil {
		return nil, wrapErr(ErrNotFound, "member %q is not known at this till; enrol them or wait for the next sync from HQ", id)
	}
	ms := newMState(id)
	if err := json.Unmarshal(raw, &ms.member); err != nil {
		return nil, fmt.Errorf("%w: member %q unreadable: %v", ErrCorrupt, id, err)
	}
	ms.origMember = append([]byte(nil), raw...)
	if _, err := getJSON(tx.Bucket(bBal), []byte(id), &ms.bal); err != nil {
		return nil, err
	}
	prefix := memberKey(id, nil)
	ms.tx, ms.lotsLoaded, ms.origLots = tx, false, map[string]lot{}
	var c *bolt.Cursor
	ms.origCoupons = map[string]couponState{}
	c = tx.Bucket(bCoupons).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var cs couponState
		if err := json.Unmarshal(v, &cs); err != nil {
			return nil, fmt.Errorf("%w: coupon of member %q unreadable: %v", ErrCorrupt, id, err)
		}
		ms.coupons[cs.Coupon.ID] = &cs
		ms.origCoupons[cs.Coupon.ID] = cs
	}
	return ms, nil
}

// save writes what changed since load.
func (ms *mstate) save(w *writer) error {
	mb, err := json.Marshal(ms.member)
	if err != nil {
		return err
	}
	if !bytes.Equal(mb, ms.origMember) {
		if err := w.put(bMembers, []byte(ms.id), mb); err != nil {
			return err
		}
	}
	if err := w.putJSON(bBal, []byte(ms.id), ms.bal); err != nil {
		return err
	}
	if ms.err != nil {
		return ms.err
	}
	seen := map[string]bool{}
	for _, lt := range ms.lots {
		k := lotKey(ms.id, lt)
		seen[string(k)] = true
		if o, ok := ms.origLots[string(k)]; ok && o == *lt {
			continue
		}
		if err := w.putJSON(bLots, k, lt); err != nil {
			return err
		}
	}
	for k := range ms.origLots {
		if !seen[k] {
			if err := w.del(bLots, []byte(k)); err != nil {
				return err
			}
		}
	}
	for id, cs := range ms.coupons {
		if o, ok := ms.origCoupons[id]; ok && sameCoupon(o, *cs) {
			continue
		}
		if err := w.putJSON(bCoupons, memberKey(ms.id, []byte(id)), cs); err != nil {
			return err
		}
	}
	for id := range ms.origCoupons {
		if _, ok := ms.coupons[id]; !ok {
			if err := w.del(bCoupons, memberKey(ms.id, []byte(id))); err != nil {
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
		lt.Expires, lt.Exp = expires.UTC().Format(time.RFC3339), expires.Unix()
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
	if !ms.lotsLoaded {
		// Sorted by expiry: only the first lot that expires can tell.
		prefix := memberKey(ms.id, nil)
		c := ms.tx.Bucket(bLots).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			lt, err := decodeLot(prefix, k, v)
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
		if lt.Expires == "" {
			continue
		}
		exp, err := time.Parse(time.RFC3339, lt.Expires)
		if err == nil && !now.Before(exp) {
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
			c := ms.coupons[s.CouponID]
			if c == nil || c.Used {
				return nil, fmt.Errorf("coupon %s is not held unused by member %s", s.CouponID, ms.id)
			}
			c.Used, c.UsedTill, c.UsedSeq = true, e.Till, e.Seq
		}
		ms.bal.LastSale = e.At.UTC().Format(time.RFC3339)
		ms.addSpend(e.At.In(loc), s.Due, 1)
		if s.OfflineRedeem && s.RedeemPoints > 0 {
			day := e.At.In(loc).Format(time.DateOnly)
			if ms.bal.OffDay != day {
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
			c := ms.coupons[couponBack]
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
	day := local.Format(time.DateOnly)
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
	cut := local.AddDate(0, 0, -370).Format(time.DateOnly)
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
	qStart := time.Date(local.Year(), time.Month(q*3+1), 1, 0, 0, 0, 0, local.Location()).Format(time.DateOnly)
	from365 := local.AddDate(0, 0, -364).Format(time.DateOnly)
	today := local.Format(time.DateOnly)
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
}

// applyHQ sets the confirmed balances from HQ. pendP/pendSV are the member's
// local entries HQ has not acknowledged yet; they stay on top. The lots
// become one HQ lot (HQ expires those points and says so in a later state),
// and coupons are HQ's list plus the ones local pending entries issued, with
// the ones pending local sales used kept used.
func (ms *mstate) applyHQ(s *hqState, g uint64, pendP, pendSV int64) {
	ms.member = s.Member
	ms.bal.Points = s.Points + pendP
	ms.bal.StoredValue = s.StoredValue + pendSV
	ms.bal.PendPoints, ms.bal.PendSV = pendP, pendSV
	ms.ensureLots() // so the old ones are deleted
	ms.lots = nil
	if ms.bal.Points > 0 {
		ms.lots = []*lot{{Key: g, ID: fmt.Sprintf("hq/%d", g), Remaining: ms.bal.Points}}
	}
	if s.LastSale > ms.bal.LastSale {
		ms.bal.LastSale = s.LastSale
	}
	pending := func(till string, seq uint64) bool { return till != "" && seq > s.Marks[till] }
	next := map[string]*couponState{}
	for _, c := range s.Coupons {
		next[c.ID] = &couponState{Coupon: c}
	}
	for id, c := range ms.coupons {
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

func tillSeq(tx *bolt.Tx, till string) uint64 {
	if b := tx.Bucket(bTills).Bucket([]byte(till)); b != nil {
		return b.Sequence()
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
	tills := w.tx.Bucket(bTills)
	for i, e := range a.out {
		if err := e.Validate(); err != nil {
			return err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := w.put(bLog, u64(a.gs[i]), b); err != nil {
			return err
		}
		w.n++
		tb, err := tills.CreateBucketIfNotExists([]byte(e.Till))
		if err != nil {
			return err
		}
		if err := tb.Put(u64(e.Seq), u64(a.gs[i])); err != nil {
			return err
		}
		if err := tb.SetSequence(e.Seq); err != nil {
			return err
		}
	}
	w.n++
	return w.tx.Bucket(bLog).SetSequence(a.global)
}

// ---- idempotency ----

type keyRec struct {
	Hash    string   `json:"h"`
	Globals []uint64 `json:"g"` // entries the request wrote, primary first
}

func idemKey(kind, till, key string) []byte {
	return []byte(kind + "\x00" + till + "\x00" + key)
}

// lookupKey returns the entries of an earlier request with the same key, or
// ErrKeyConflict when that request had different content.
func lookupKey(tx *bolt.Tx, kind, till, key, hash string) ([]*entry.Entry, error) {
	var kr keyRec
	ok, err := getJSON(tx.Bucket(bKeys), idemKey(kind, till, key), &kr)
	if err != nil || !ok {
		return nil, err
	}
	if kr.Hash != hash {
		return nil, wrapErr(ErrKeyConflict, "%s %q on till %s was already committed with different content; use a new %s id for a different %s, or resend exactly the first one", kind, key, till, kind, kind)
	}
	out := make([]*entry.Entry, 0, len(kr.Globals))
	for _, g := range kr.Globals {
		e, err := entryAt(tx, g)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func entryAt(tx *bolt.Tx, g uint64) (*entry.Entry, error) {
	raw := tx.Bucket(bLog).Get(u64(g))
	if raw == nil {
		return nil, fmt.Errorf("%w: entry #%d is missing from the log; run posagent ledger verify", ErrCorrupt, g)
	}
	var e entry.Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: entry #%d unreadable: %v", ErrCorrupt, g, err)
	}
	return &e, nil
}
