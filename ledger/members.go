package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// MemberView is what the till shows of a member.
type MemberView struct {
	Member entry.Member
	// Points is what the member can use now: confirmed by HQ plus local
	// pending entries, minus lots expired since the member was last used.
	Points          int64
	PointsConfirmed int64 // last heard from HQ, plus local entries HQ acknowledged since
	PointsPending   int64 // local entries not yet acknowledged by HQ
	StoredValue     int64
	Coupons         []entry.MemberCoupon // unused and valid now
	State           string               // active | at_risk | dormant
	LastSale        time.Time
	MaskedMobile    string
	Negative        bool // points below zero: a refund took back points already spent
}

// Member looks a member up by id (ErrNotFound).
func (l *Ledger) Member(id string) (MemberView, error) {
	var v MemberView
	err := l.read(func(tx *bolt.Tx) error {
		var err error
		v, err = l.view(tx, id)
		return err
	})
	l.noteLookup()
	return v, err
}

// MemberByToken looks a member up by the keyed hash of a card token.
func (l *Ledger) MemberByToken(tokenHash string) (MemberView, error) {
	return l.byIndex(ixCard, tokenHash, "card")
}

// MemberByMobile looks a member up by mobile number (forgotten card).
func (l *Ledger) MemberByMobile(mobile string) (MemberView, error) {
	return l.byIndex(ixMobile, mobile, "mobile "+loyalty.MaskMobile(mobile))
}

func (l *Ledger) byIndex(kind byte, k, what string) (MemberView, error) {
	var v MemberView
	err := l.read(func(tx *bolt.Tx) error {
		id := ixOwner(tx, kind, k)
		if id == nil || k == "" {
			return wrapErr(ErrNotFound, "no member with this %s at this till; enrol them, or wait for the next sync from HQ", what)
		}
		var err error
		v, err = l.view(tx, string(id))
		return err
	})
	l.noteLookup()
	return v, err
}

func (l *Ledger) view(tx *bolt.Tx, id string) (MemberView, error) {
	ms, err := loadMember(tx, id)
	if err != nil {
		return MemberView{}, err
	}
	now := l.now()
	var expired int64
	for _, lt := range ms.expiredLots(now) {
		expired += lt.Remaining
	}
	v := MemberView{Member: ms.member, Points: ms.bal.Points - expired, PointsPending: ms.bal.PendPoints,
		PointsConfirmed: ms.bal.Points - ms.bal.PendPoints, StoredValue: ms.bal.StoredValue,
		MaskedMobile: loyalty.MaskMobile(ms.member.Mobile)}
	v.Negative = v.Points < 0
	for _, c := range ms.allCoupons() {
		if !c.Used && couponValid(c.Coupon, now) {
			v.Coupons = append(v.Coupons, c.Coupon)
		}
	}
	if ms.err != nil {
		return MemberView{}, ms.err
	}
	sort.Slice(v.Coupons, func(i, j int) bool { return v.Coupons[i].ID < v.Coupons[j].ID })
	last, _ := time.Parse(time.RFC3339, ms.member.EnrolledAt)
	if ms.bal.LastSale != 0 {
		v.LastSale = time.Unix(ms.bal.LastSale, 0).UTC()
		last = v.LastSale
	}
	if p, err := l.Programs().At(now); err == nil {
		v.State = p.LifeCycle(last, now)
	}
	return v, nil
}

// MemberState is HQ's truth for one member (the ledger's own type, so the
// ledger does not depend on the sync wire format).
type MemberState struct {
	Member      entry.Member
	Points      int64 // balance HQ holds, every store's acknowledged entries included
	StoredValue int64
	Coupons     []entry.MemberCoupon // coupons the member holds, unused
	Flagged     bool
	LastSale    time.Time
}

// bulkChunk is how many member states one bbolt transaction applies; a
// batch of at least bulkMin states is committed straight to bbolt (one
// commit per chunk) rather than through the write-ahead log.
const (
	bulkChunk = 20000
	bulkMin   = 512
)

// ApplyMemberStates stores member states pulled from HQ: they set the
// confirmed balances; this till's entries HQ has not acknowledged yet stay
// on top as pending. Any number may be passed at once (a new till's whole
// snapshot): they are applied in member-id order, in transactions of
// bulkChunk states, each durable when it returns; a failure leaves the
// chunks before it applied, which is harmless since applying a state again
// gives the same result.
func (l *Ledger) ApplyMemberStates(states []MemberState) error {
	if len(states) == 0 {
		return nil
	}
	// The last state of a member in the list wins.
	last := make(map[string]int, len(states))
	for i, s := range states {
		if err := checkID("member id from HQ", s.Member.ID); err != nil {
			return err
		}
		last[s.Member.ID] = i
	}
	uniq := make([]MemberState, 0, len(last))
	for i, s := range states {
		if last[s.Member.ID] == i {
			uniq = append(uniq, s)
		}
	}
	// Key order: each leaf is written once per chunk, pages fill up.
	sort.Slice(uniq, func(i, j int) bool { return uniq[i].Member.ID < uniq[j].Member.ID })
	for len(uniq) > 0 {
		n := min(len(uniq), bulkChunk)
		if err := l.applyStates(uniq[:n], len(states) >= bulkMin); err != nil {
			return err
		}
		uniq = uniq[n:]
	}
	return nil
}

func (l *Ledger) applyStates(states []MemberState, direct bool) error {
	_, err := l.submitReq(context.Background(), &request{done: make(chan struct{}), direct: direct, fn: func(tx *bolt.Tx, w *writer) (any, error) {
		return nil, applyStatesTx(tx, w, states, ackMarks(tx), direct)
	}})
	l.releaseMapped()
	return err
}

// applyStatesTx applies HQ's states in tx under the till's acked marks.
func applyStatesTx(tx *bolt.Tx, w *writer, states []MemberState, marks map[string]uint64, direct bool) error {
	if direct {
		for _, b := range [][]byte{bMembers, bByToken, bByMobile, bHQLog} {
			tx.Bucket(b).FillPercent = 0.9
		}
	}
	a := newAlloc(tx)
	type pend struct {
		ms  *mstate
		rec hqState
		g   uint64
		log bool
	}
	var todo []pend
	var ix []indexOp
	for _, s := range states {
		ms, err := loadMember(tx, s.Member.ID)
		var old *entry.Member
		switch {
		case err == nil:
			o := ms.member
			old = &o
		case !errors.Is(err, ErrNotFound):
			return err
		default:
			ms = newMState(s.Member.ID)
		}
		g := a.nextGlobal()
		rec, log, err := ms.takeHQ(s, marks, g)
		if err != nil {
			return err
		}
		todo = append(todo, pend{ms, rec, g, log})
		ix = indexOps(tx, ix, old, &ms.member)
	}
	for _, t := range todo {
		if err := t.ms.save(w); err != nil {
			return err
		}
		if !t.log {
			continue
		}
		if err := w.putJSON(bHQLog, u64(t.g), t.rec); err != nil {
			return err
		}
	}
	if err := applyIndexOps(w, ix); err != nil {
		return err
	}
	return w.setSeq(bLog, a.global)
}

// ApplyLookedUpMember stores the state HQ answered a look-up of one member
// with, when it is consistent with the till: hqAcked (HQ's acked marks, read
// with the state) must equal this ledger's own for every till it writes or
// was acked for. The state then holds exactly this ledger's entries up to
// its marks, and the ones after stay pending on top, as with a pulled state;
// it returns true. Otherwise nothing changes and it returns false: an upload
// was in flight (HQ ahead: its entries would count twice) or HQ lost some
// (HQ behind: they would count not at all), and the local view stands. Marks
// of tills this ledger never wrote are not compared: another checkout PC of
// the store or HQ's own web enrolments, whose entries reach this till only
// inside HQ's states.
func (l *Ledger) ApplyLookedUpMember(s MemberState, hqAcked map[string]uint64) (bool, error) {
	if err := checkID("member id from HQ", s.Member.ID); err != nil {
		return false, err
	}
	res, err := l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		marks := ackMarks(tx)
		tills, err := tillsTx(tx)
		if err != nil {
			return false, err
		}
		// The till's own, even before its first entry: HQ holding entries of
		// it that this ledger lacks means the ledger is not the one HQ knows.
		tills = append(tills, l.o.Till)
		for t := range marks {
			tills = append(tills, t)
		}
		for _, t := range tills {
			if hqAcked[t] != marks[t] {
				return false, nil
			}
		}
		return true, applyStatesTx(tx, w, []MemberState{s}, marks, false)
	})
	l.noteLookup()
	applied, _ := res.(bool)
	return applied && err == nil, err
}

// ackMarks are the acknowledged sequences per till.
func ackMarks(tx *bolt.Tx) map[string]uint64 {
	marks := map[string]uint64{}
	c := tx.Bucket(bAcked).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		marks[string(k)] = getU64(v)
	}
	return marks
}

// takeHQ applies HQ's state s to ms (global order g) and returns the state
// as the hq log would hold it and whether it must be logged. With nothing
// local pending the state is the member's whole state: it stays out of the
// hq log, and its lot implicit in the balance record, until a local entry
// touches the member.
func (ms *mstate) takeHQ(s MemberState, marks map[string]uint64, g uint64) (hqState, bool, error) {
	rec := hqState{Member: s.Member, Points: s.Points, StoredValue: s.StoredValue, Coupons: s.Coupons,
		Flagged: s.Flagged, Marks: marks}
	if !s.LastSale.IsZero() {
		rec.LastSale = s.LastSale.UTC().Format(time.RFC3339)
	}
	quiet := ms.nothingPending(marks)
	if ms.err != nil {
		return rec, false, ms.err
	}
	ms.applyHQ(&rec, g, ms.bal.PendPoints, ms.bal.PendSV)
	ms.bal.Unlogged, ms.bal.HQLotKey, ms.bal.HQLotRem = 0, 0, 0
	if quiet {
		ms.bal.Unlogged = g
		if len(ms.lots) == 1 {
			ms.bal.HQLotKey, ms.bal.HQLotRem = g, ms.lots[0].Remaining
			ms.lots = nil
		}
	}
	return rec, !quiet, nil
}

// ApplyProgram stores a program version published by HQ; sales at or after
// its effective time are priced by it.
func (l *Ledger) ApplyProgram(src []byte) error {
	p, err := loyalty.ParseProgram(src)
	if err != nil {
		return wrapErr(ErrInvalid, "program from HQ: %v", err)
	}
	_, err = l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		return nil, w.put(bPrograms, u64(uint64(p.Version)), append([]byte(nil), src...))
	})
	if err != nil {
		return err
	}
	l.setPrograms(append(l.Programs(), p))
	return nil
}

func (l *Ledger) setPrograms(ps loyalty.Programs) {
	byV := map[int]*loyalty.Program{}
	for _, p := range ps {
		// Open checked the zone, so InZone cannot fail here.
		if z, err := p.InZone(l.o.TimeZone); err == nil {
			p = z
		}
		byV[p.Version] = p // later (HQ) versions replace a local one with the same number
	}
	out := make(loyalty.Programs, 0, len(byV))
	for _, p := range byV {
		out = append(out, p)
	}
	out = out.Sorted()
	l.progs.Store(&out)
}

func (l *Ledger) loadPrograms() error {
	ps := append(loyalty.Programs(nil), l.o.Programs...)
	err := l.read(func(tx *bolt.Tx) error {
		return tx.Bucket(bPrograms).ForEach(func(k, v []byte) error {
			p, err := loyalty.ParseProgram(v)
			if err != nil {
				return fmt.Errorf("%w: stored program v%d does not parse: %v", ErrCorrupt, getU64(k), err)
			}
			ps = append(ps, p)
			return nil
		})
	})
	if err != nil {
		return err
	}
	l.setPrograms(ps)
	return nil
}

// SyncCursor is the last change cursor received from HQ ("" at first).
func (l *Ledger) SyncCursor() (string, error) {
	var c string
	err := l.read(func(tx *bolt.Tx) error {
		c = string(tx.Bucket(bMeta).Get([]byte("sync_cursor")))
		return nil
	})
	return c, err
}

// SetSyncCursor stores the change cursor (durably, like every commit).
func (l *Ledger) SetSyncCursor(c string) error {
	_, err := l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		return nil, w.put(bMeta, []byte("sync_cursor"), []byte(c))
	})
	return err
}

// ---- outbox ----

// Tills lists the tills that have entries.
func (l *Ledger) Tills() ([]string, error) {
	var out []string
	err := l.read(func(tx *bolt.Tx) error {
		var err error
		out, err = tillsTx(tx)
		return err
	})
	return out, err
}

func tillsTx(tx *bolt.Tx) ([]string, error) {
	var out []string
	c := tx.Bucket(bLog).Cursor()
	for k, _ := c.First(); k != nil; {
		till, _, ok := splitTillKey(k)
		if !ok {
			return nil, fmt.Errorf("%w: log key %q malformed; run posagent ledger verify", ErrCorrupt, k)
		}
		out = append(out, till)
		k, _ = c.Seek(append([]byte(till), 1)) // past this till's entries
	}
	return out, nil
}

// Pending returns up to limit entries of till with seq > after, in order.
func (l *Ledger) Pending(till string, after uint64, limit int) ([]entry.Entry, error) {
	if limit <= 0 {
		limit = 500
	}
	var out []entry.Entry
	err := l.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bLog).Cursor()
		for k, v := c.Seek(tillKey(till, after+1)); k != nil && len(out) < limit; k, v = c.Next() {
			t, seq, ok := splitTillKey(k)
			if !ok || t != till {
				break
			}
			e, _, err := decodeLogValue(v, till, seq)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}

// Acked is the highest sequence of till HQ acknowledged.
func (l *Ledger) Acked(till string) (uint64, error) {
	var n uint64
	err := l.read(func(tx *bolt.Tx) error {
		n = getU64(tx.Bucket(bAcked).Get([]byte(till)))
		return nil
	})
	return n, err
}

// Ack records that HQ holds every entry of till up to upTo: those entries
// move from pending to confirmed in the member balances.
func (l *Ledger) Ack(till string, upTo uint64) error {
	_, err := l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		acked := getU64(tx.Bucket(bAcked).Get([]byte(till)))
		if upTo <= acked {
			return nil, nil
		}
		last := tillSeq(tx, till)
		if upTo > last {
			return nil, wrapErr(ErrInvalid, "ack of till %s up to %d, but the till has only %d entries", till, upTo, last)
		}
		type d struct{ p, sv int64 }
		deltas := map[string]*d{}
		c := tx.Bucket(bLog).Cursor()
		next := acked + 1
		for k, v := c.Seek(tillKey(till, next)); next <= upTo; k, v = c.Next() {
			t, seq, ok := splitTillKey(k)
			if !ok || t != till || seq != next {
				return nil, fmt.Errorf("%w: entry %s #%d is missing from the log; run posagent ledger verify", ErrCorrupt, till, next)
			}
			next++
			e, _, err := decodeLogValue(v, till, seq)
			if err != nil {
				return nil, err
			}
			if e.MemberID == "" || (e.PointsDelta == 0 && e.StoredValueDelta == 0) {
				continue
			}
			x := deltas[e.MemberID]
			if x == nil {
				x = &d{}
				deltas[e.MemberID] = x
			}
			x.p += e.PointsDelta
			x.sv += e.StoredValueDelta
		}
		for id, x := range deltas {
			ms, err := loadMember(tx, id)
			if errors.Is(err, ErrNotFound) {
				continue // no record to hold pending figures (verify reports the entry)
			}
			if err != nil {
				return nil, err
			}
			ms.bal.PendPoints -= x.p
			ms.bal.PendSV -= x.sv
			if err := ms.saveRecord(w); err != nil {
				return nil, err
			}
		}
		return nil, w.put(bAcked, []byte(till), u64(upTo))
	})
	return err
}

// Backlog is how many entries HQ has not acknowledged, and the oldest one's time.
func (l *Ledger) Backlog() (count int, oldest time.Time, err error) {
	tills, err := l.Tills()
	if err != nil {
		return 0, time.Time{}, err
	}
	err = l.read(func(tx *bolt.Tx) error {
		for _, till := range tills {
			acked := getU64(tx.Bucket(bAcked).Get([]byte(till)))
			last := tillSeq(tx, till)
			if last <= acked {
				continue
			}
			count += int(last - acked)
			e, _, err := entryAt(tx, till, acked+1)
			if err != nil {
				return err
			}
			if oldest.IsZero() || e.At.Before(oldest) {
				oldest = e.At
			}
		}
		return nil
	})
	return count, oldest, err
}
