package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
)

type pendRec struct {
	till   string
	seq    uint64
	dp, ds int64
}

// Verify recomputes every member balance, lot and coupon from the entries
// (and the member states HQ sent) and compares them with the caches; checks
// that each till's sequence is gapless, that no lot was written off before
// it expired, that every refund and void points to a sale, that no idempotency key is used twice, and runs bbolt's own
// consistency check. It writes a readable report to w; ok is false on any
// break. err is for failures to read at all.
func (l *Ledger) Verify(w io.Writer) (ok bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ok, err = false, corruptErr(l.path, fmt.Sprintf("reading failed (%v)", r))
		}
	}()
	err = l.snapshot(func(tx *bolt.Tx) error {
		ok = l.verifyTx(tx, w)
		return nil
	})
	return ok, err
}

func (l *Ledger) verifyTx(tx *bolt.Tx, w io.Writer) bool {
	breaks := 0
	brk := func(format string, a ...any) {
		breaks++
		if breaks <= 200 {
			fmt.Fprintf(w, "BREAK: "+format+"\n", a...)
		}
	}
	progs := l.Programs()
	members := map[string]*mstate{}
	pend := map[string][]pendRec{}
	sales := map[string]*saleRef{}
	saleStates := map[string]*saleState{}
	keys := map[string]uint64{}
	tillSeqs := map[string]uint64{}
	var nEntries, nStates int

	// HQ states still held only by a member's record (nothing local has
	// touched the member since), in global order.
	type hqRec struct {
		g uint64
		s *hqState
	}
	var unlogged []hqRec
	tx.Bucket(bMembers).ForEach(func(k, _ []byte) error {
		id, tag, ok := splitMemberKey(k)
		if !ok || tag != tagMember {
			return nil
		}
		ms, err := loadMember(tx, id)
		if err != nil || ms.bal.Unlogged == 0 {
			return nil // an unreadable member is reported with the members
		}
		s := ms.unloggedState()
		if ms.err != nil {
			brk("member %s: %v", id, ms.err)
			return nil
		}
		unlogged = append(unlogged, hqRec{ms.bal.Unlogged, s})
		return nil
	})
	sort.Slice(unlogged, func(i, j int) bool { return unlogged[i].g < unlogged[j].g })

	// Merge the entry log, the HQ state log and the unlogged states by
	// global order.
	applyState := func(g uint64, s *hqState) {
		nStates++
		ms := members[s.Member.ID]
		if ms == nil {
			ms = newMState(s.Member.ID)
			members[s.Member.ID] = ms
		}
		var pp, ps int64
		if !s.NoPending {
			for _, p := range pend[s.Member.ID] {
				if p.seq > s.Marks[p.till] {
					pp += p.dp
					ps += p.ds
				}
			}
		}
		ms.applyHQ(s, g, pp, ps)
	}
	hq := tx.Bucket(bHQLog).Cursor()
	hk, hv := hq.First()
	ui := 0
	hqUpTo := func(limit []byte) {
		lim := uint64(math.MaxUint64)
		if limit != nil {
			lim = getU64(limit)
		}
		for {
			hg, ug := uint64(math.MaxUint64), uint64(math.MaxUint64)
			if hk != nil {
				hg = getU64(hk)
			}
			if ui < len(unlogged) {
				ug = unlogged[ui].g
			}
			if min(hg, ug) >= lim || (hk == nil && ui == len(unlogged)) {
				return
			}
			if ug <= hg {
				if ug == hg {
					brk("HQ state #%d is both in the hq log and held unlogged by member %s", ug, unlogged[ui].s.Member.ID)
				}
				applyState(ug, unlogged[ui].s)
				ui++
				continue
			}
			var s hqState
			if err := json.Unmarshal(hv, &s); err != nil {
				brk("HQ state #%d unreadable: %v", hg, err)
			} else {
				applyState(hg, &s)
			}
			hk, hv = hq.Next()
		}
	}
	var prevG uint64
	werr := walkLog(tx, func(g uint64, till string, seq uint64, raw []byte) error {
		hqUpTo(u64(g))
		if g <= prevG {
			brk("log: entry %s #%d has global order %d after %d (out of commit order)", till, seq, g, prevG)
		}
		prevG = max(prevG, g)
		var e entry.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			brk("entry %s #%d unreadable: %v", till, seq, err)
			return nil
		}
		nEntries++
		if err := e.Validate(); err != nil {
			brk("entry %s #%d: %v", till, seq, err)
			return nil
		}
		if e.Store != l.store {
			brk("entry %s belongs to store %q", e.ID(), e.Store)
		}
		if e.Till != till || e.Seq != seq {
			brk("outbox of till %s: the entry stored as #%d says it is %s", till, seq, e.ID())
		}
		if want := tillSeqs[till] + 1; seq != want {
			brk("outbox of till %s: entry #%d follows #%d (gap or reorder)", till, seq, want-1)
		}
		tillSeqs[till] = max(tillSeqs[till], seq)
		// Idempotency keys.
		kind := map[entry.Kind]string{entry.KindSale: "sale", entry.KindRefund: "refund", entry.KindVoid: "void",
			entry.KindTopUp: "topup", entry.KindEnrol: "enrol"}[e.Kind]
		if kind != "" {
			k := kind + "\x00" + e.Till + "\x00" + e.Key
			if prev, dup := keys[k]; dup {
				brk("%s key %q on till %s used twice (entries #%d and #%d)", kind, e.Key, e.Till, prev, e.Seq)
			}
			keys[k] = e.Seq
			found := false
			if raw := tx.Bucket(bKeys).Get(idemKey(kind, e.Till, e.Key)); raw != nil {
				if kr, err := decodeKeyRec(raw); err == nil {
					found = slices.Contains(kr.Seqs, e.Seq)
				}
			}
			if !found {
				brk("%s %s: idempotency record for key %q missing or pointing elsewhere", kind, e.ID(), e.Key)
			}
		}
		var sr *saleRef
		switch e.Kind {
		case entry.KindSale:
			sales[e.ID()] = &saleRef{global: g, e: &e}
		case entry.KindRefund, entry.KindVoid:
			id, key := "", ""
			if e.Refund != nil {
				id, key = e.Refund.SaleEntry, e.Refund.SaleKey
			} else {
				id, key = e.Void.SaleEntry, e.Void.SaleKey
			}
			sr = sales[id]
			if sr == nil || sr.e.Key != key {
				brk("%s %s points to sale %s (receipt %q), which is not an earlier sale", e.Kind, e.ID(), id, key)
				return nil
			}
			sk := string(tillKey(sr.e.Till, sr.e.Seq))
			ss := saleStates[sk]
			if ss == nil {
				ss = &saleState{Lines: map[int]*lineRefunded{}}
				saleStates[sk] = ss
			}
			if ss.Voided {
				brk("%s %s: sale %s was already voided", e.Kind, e.ID(), id)
			}
			if e.Refund != nil {
				for _, rl := range e.Refund.Lines {
					lr := ss.Lines[rl.LineNo]
					if lr == nil {
						lr = &lineRefunded{}
						ss.Lines[rl.LineNo] = lr
					}
					lr.Qty += rl.Qty
					lr.Paid += rl.Amount
					lr.Redeem += rl.PointsRestored
					lr.Earned += rl.PointsReversed
				}
				ss.Refunds++
				ss.SVReturned += e.Refund.StoredValue
				ss.Done = true
				for _, sl := range sr.e.Sale.Lines {
					lr := ss.Lines[sl.LineNo]
					if lr == nil || lr.Qty < sl.Qty {
						ss.Done = false
					}
					if lr != nil && (lr.Qty > sl.Qty || lr.Paid > sl.Paid || lr.Redeem > sl.RedeemPoints || lr.Earned > sl.EarnedPoints) {
						brk("refunds of sale %s line %d exceed the line (%+v)", id, sl.LineNo, *lr)
					}
				}
			} else {
				if ss.Refunds > 0 {
					brk("void %s of sale %s which has refunds", e.ID(), id)
				}
				ss.Voided, ss.Done = true, true
			}
		}
		if e.MemberID == "" {
			if e.PointsDelta != 0 || e.StoredValueDelta != 0 {
				brk("entry %s changes balances but names no member", e.ID())
			}
			return nil
		}
		ms := members[e.MemberID]
		if ms == nil {
			if e.Kind != entry.KindEnrol {
				brk("entry %s is for member %s, who was neither enrolled here nor sent by HQ before it", e.ID(), e.MemberID)
			}
			ms = newMState(e.MemberID)
			members[e.MemberID] = ms
		}
		if e.Kind == entry.KindPointsExpired && e.Points != nil {
			// Write-offs run on the till's own clock once a lot has
			// expired; one dated earlier destroyed valid points.
			if lt := ms.lotByID(e.Points.Lot); lt != nil && lt.Exp == 0 {
				brk("entry %s writes off lot %s at %s, but that lot never expires at the till (HQ expires it)", e.ID(), lt.ID, e.At.UTC().Format(time.RFC3339))
			} else if lt != nil && e.At.Unix() < lt.Exp {
				brk("entry %s writes off lot %s at %s, before it expires (%s)", e.ID(), lt.ID, e.At.UTC().Format(time.RFC3339), lt.Expires)
			}
		}
		uses, err := ms.apply(&e, g, progs, sr)
		if err != nil {
			brk("replaying %s: %v", e.ID(), err)
			return nil
		}
		pend[e.MemberID] = append(pend[e.MemberID], pendRec{e.Till, e.Seq, e.PointsDelta, e.StoredValueDelta})
		var recorded []entry.LotUse
		switch {
		case e.Sale != nil:
			recorded = e.Sale.LotsUsed
		case e.Points != nil:
			recorded = e.Points.LotsUsed
		}
		if (e.Sale != nil || e.Points != nil) && !sameUses(uses, recorded) {
			brk("entry %s records lots used %v, replay takes %v", e.ID(), recorded, uses)
		}
		return nil
	})
	if werr != nil {
		brk("log: %v", werr)
	}
	hqUpTo(nil)

	// Acks within range.
	acked := map[string]uint64{}
	tx.Bucket(bAcked).ForEach(func(k, v []byte) error {
		acked[string(k)] = getU64(v)
		if getU64(v) > tillSeqs[string(k)] {
			brk("till %s acked up to %d but has only %d entries", k, getU64(v), tillSeqs[string(k)])
		}
		return nil
	})

	// Sale refund states.
	saleName := func(k string) string {
		if t, s, ok := splitTillKey([]byte(k)); ok {
			return fmt.Sprintf("%s/%s/%d", l.store, t, s)
		}
		return fmt.Sprintf("%q", k)
	}
	tx.Bucket(bSales).ForEach(func(k, v []byte) error {
		var c saleState
		json.Unmarshal(v, &c)
		r := saleStates[string(k)]
		if r == nil {
			brk("refund state cached for sale %s that has no refund or void", saleName(string(k)))
			return nil
		}
		if !sameSaleState(&c, r) {
			brk("refund state of sale %s: cached %s, entries give %s", saleName(string(k)), jsonStr(c), jsonStr(r))
		}
		delete(saleStates, string(k))
		return nil
	})
	for k := range saleStates {
		brk("sale %s has refunds or a void but no cached refund state", saleName(k))
	}

	// Members: final pending from acks, then compare with the caches.
	for id, ms := range members {
		var pp, ps int64
		for _, p := range pend[id] {
			if p.seq > acked[p.till] {
				pp += p.dp
				ps += p.ds
			}
		}
		ms.bal.PendPoints, ms.bal.PendSV = pp, ps
	}
	cached := map[string]bool{}
	lotExp := map[string]bool{} // lot-expiry index keys the lots imply
	tx.Bucket(bMembers).ForEach(func(k, _ []byte) error {
		id, tag, ok := splitMemberKey(k)
		switch {
		case !ok:
			brk("members: key %q malformed", k)
		case tag == tagLot && len(k) == len(id)+2+16:
			if exp := int64(getU64(k[len(id)+2 : len(id)+10])); exp != 0 {
				lotExp[string(lotExpKey(exp, id))] = true
			}
		case tag == tagMember:
			cached[id] = true
		case tag != tagBalance && tag != tagLot && tag != tagCoupon:
			brk("members: key %q of unknown kind", k)
		}
		return nil
	})
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var negative []string
	for _, id := range ids {
		r := members[id]
		delete(cached, id)
		c, err := loadMember(tx, id)
		if err != nil {
			brk("member %s: %v", id, err)
			continue
		}
		if c.bal.Points != r.bal.Points || c.bal.StoredValue != r.bal.StoredValue ||
			c.bal.PendPoints != r.bal.PendPoints || c.bal.PendSV != r.bal.PendSV {
			brk("member %s: cached points %d (pending %d), stored value %d (pending %d); entries give %d (%d), %d (%d)",
				id, c.bal.Points, c.bal.PendPoints, c.bal.StoredValue, c.bal.PendSV, r.bal.Points, r.bal.PendPoints, r.bal.StoredValue, r.bal.PendSV)
		}
		if c.member.Tier != r.member.Tier {
			brk("member %s: cached tier %q, entries give %q", id, c.member.Tier, r.member.Tier)
		}
		for _, t := range c.member.CardTokens {
			if ixOwner(tx, ixCard, t) == nil {
				brk("member %s: a card of the member is not in the member index", id)
			}
		}
		if m := c.member.Mobile; m != "" && ixOwner(tx, ixMobile, m) == nil {
			brk("member %s: the mobile is not in the member index", id)
		}
		c.ensureLots()
		if c.err != nil {
			brk("member %s: %v", id, c.err)
			continue
		}
		if s := c.lotsSum(); s != pos(c.bal.Points) {
			brk("member %s: lots sum to %d, balance is %d", id, s, c.bal.Points)
		}
		if jsonStr(lotList(c.lots)) != jsonStr(lotList(r.lots)) {
			brk("member %s: cached lots %s, entries give %s", id, jsonStr(lotList(c.lots)), jsonStr(lotList(r.lots)))
		}
		if cs := couponSummary(c.allCoupons()); c.err != nil {
			brk("member %s: %v", id, c.err)
		} else if cs != couponSummary(r.coupons) {
			brk("member %s: cached coupons %s, entries give %s", id, cs, couponSummary(r.coupons))
		}
		if c.bal.StoredValue < 0 {
			brk("member %s: stored value %d below zero", id, c.bal.StoredValue)
		}
		if c.bal.Points < 0 {
			negative = append(negative, fmt.Sprintf("%s (%d)", id, c.bal.Points))
		}
	}
	for id := range cached {
		brk("member %s is cached but no entry or HQ state created it", id)
	}
	// Index consistency.
	for _, b := range [][]byte{bByToken, bByMobile} {
		tx.Bucket(b).ForEach(func(k, v []byte) error {
			if members[string(v)] == nil {
				brk("%s index points %q at unknown member %s", b, k, v)
			}
			return nil
		})
	}
	if ix := tx.Bucket(bIndex); ix != nil {
		ix.ForEach(func(k, v []byte) error {
			es, err := decodeSlot(v)
			if err != nil || len(k) != 3 {
				brk("member index slot %x: %v", k, err)
				return nil
			}
			for _, e := range es {
				if members[e.id] == nil {
					brk("member index slot %x points at unknown member %s", k, e.id)
				}
			}
			return nil
		})
	}
	tx.Bucket(bLotExp).ForEach(func(k, _ []byte) error {
		if !lotExp[string(k)] {
			brk("lot-expiry index lists member %q at %d, who holds no lot expiring then", k[min(8, len(k)):], getU64(k[:min(8, len(k))]))
		}
		delete(lotExp, string(k))
		return nil
	})
	for k := range lotExp {
		brk("lot-expiry index misses member %q at %d", k[8:], getU64([]byte(k[:8])))
	}
	for err := range tx.Check() {
		brk("bbolt consistency: %v", err)
	}
	tills := make([]string, 0, len(tillSeqs))
	for t := range tillSeqs {
		tills = append(tills, fmt.Sprintf("%s:%d (acked %d)", t, tillSeqs[t], acked[t]))
	}
	sort.Strings(tills)
	fmt.Fprintf(w, "ledger %s (store %s): %d entries, %d HQ member states, %d members, tills %v\n", l.path, l.store, nEntries, nStates, len(members), tills)
	if len(negative) > 0 {
		fmt.Fprintf(w, "note: %d member(s) below zero points (debt recorded by refunds): %v\n", len(negative), negative)
	}
	if breaks > 0 {
		fmt.Fprintf(w, "FAILED: %d break(s); keep the file, take a copy, and report it (posagent ledger export gives the entries)\n", breaks)
		return false
	}
	fmt.Fprintln(w, "OK: balances, lots and coupons match the entries; no lot written off early; outbox gapless; keys unique; bbolt check clean")
	return true
}

func sameUses(a, b []entry.LotUse) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type lotOut struct {
	Key uint64
	ID  string
	R   int64
	X   string
}

func lotList(ls []*lot) []lotOut {
	out := []lotOut{}
	for _, l := range ls {
		out = append(out, lotOut{l.Key, l.ID, l.Remaining, l.Expires})
	}
	return out
}

func couponSummary(m map[string]*couponState) string {
	var s []string
	for id, c := range m {
		s = append(s, fmt.Sprintf("%s:%v", id, c.Used))
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}

func sameSaleState(a, b *saleState) bool {
	norm := func(s *saleState) string {
		c := *s
		if len(c.Lines) == 0 {
			c.Lines = nil
		}
		return jsonStr(c)
	}
	return norm(a) == norm(b)
}

func jsonStr(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Export writes every entry as one JSON line, in commit order. progress
// (may be nil) is called with entries done and the total.
func (l *Ledger) Export(w io.Writer, progress func(done, total int)) error {
	return l.snapshot(func(tx *bolt.Tx) error {
		total := tx.Bucket(bLog).Stats().KeyN
		done := 0
		buf := make([]byte, 0, 4096)
		err := walkLog(tx, func(_ uint64, _ string, _ uint64, v []byte) error {
			buf = append(append(buf[:0], bytes.TrimSpace(v)...), '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
			done++
			if progress != nil && (done%1000 == 0 || done == total) {
				progress(done, total)
			}
			return nil
		})
		if err == nil && progress != nil && total == 0 {
			progress(0, 0)
		}
		return err
	})
}

// walkLog calls fn for every entry in commit (global) order: the log is kept
// per till, so this merges one cursor per till by the global number each
// value starts with. v is the entry JSON.
func walkLog(tx *bolt.Tx, fn func(g uint64, till string, seq uint64, v []byte) error) error {
	type head struct {
		c    *bolt.Cursor
		till string
		seq  uint64
		g    uint64
		v    []byte
	}
	b := tx.Bucket(bLog)
	var heads []*head
	// load positions h at key k (nil: this till is done).
	load := func(h *head, k, v []byte) (bool, error) {
		if k == nil {
			return false, nil
		}
		t, seq, ok := splitTillKey(k)
		if !ok {
			return false, fmt.Errorf("%w: log key %q malformed", ErrCorrupt, k)
		}
		if t != h.till {
			return false, nil
		}
		if len(v) < 8 {
			return false, fmt.Errorf("%w: entry %s #%d has no commit order", ErrCorrupt, t, seq)
		}
		h.seq, h.g, h.v = seq, binary.BigEndian.Uint64(v), v[8:]
		return true, nil
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil; {
		till, _, ok := splitTillKey(k)
		if !ok {
			return fmt.Errorf("%w: log key %q malformed", ErrCorrupt, k)
		}
		h := &head{c: b.Cursor(), till: till}
		hk, hv := h.c.Seek(tillKey(till, 0))
		if ok, err := load(h, hk, hv); err != nil {
			return err
		} else if ok {
			heads = append(heads, h)
		}
		k, _ = c.Seek(append([]byte(till), 1))
	}
	for len(heads) > 0 {
		i := 0
		for j, h := range heads {
			if h.g < heads[i].g {
				i = j
			}
		}
		h := heads[i]
		if err := fn(h.g, h.till, h.seq, h.v); err != nil {
			return err
		}
		nk, nv := h.c.Next()
		if ok, err := load(h, nk, nv); err != nil {
			return err
		} else if !ok {
			heads = append(heads[:i], heads[i+1:]...)
		}
	}
	return nil
}

// Compact copies the ledger at src into a new file dst (which must not
// exist), dropping free pages. src must not be open elsewhere for writing
// (ErrLocked). progress (may be nil) gets keys copied and the total.
func Compact(src, dst string, progress func(done, total int64)) error {
	if _, err := os.Stat(dst); err == nil {
		return wrapErr(ErrInvalid, "%s already exists; compact into a new file name (nothing is overwritten)", dst)
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if _, err := os.Stat(walPath(src)); err == nil {
		// Acknowledged groups may still be only in the write-ahead log
		// (after a crash): replay them into src first.
		db, err := openBolt(src, &bolt.Options{Timeout: 1e9, FreelistType: bolt.FreelistMapType})
		if err != nil {
			return err
		}
		w, err := recoverWAL(db, src)
		if err == nil {
			err = w.close()
		}
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	sdb, err := openBolt(src, &bolt.Options{Timeout: 1e9, ReadOnly: true})
	if err != nil {
		return err
	}
	defer sdb.Close()
	var total int64
	err = sdb.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bMeta) == nil {
			return corruptErr(src, "not a posagent ledger")
		}
		return copyBuckets(tx, func(_ [][]byte, _, _ []byte, _ uint64, isBucket bool) error {
			if !isBucket {
				total++
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	tmp := dst + ".compacting"
	os.Remove(tmp)
	defer os.Remove(tmp)
	ddb, err := bolt.Open(tmp, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		return storageErr(dst, err)
	}
	var done int64
	err = sdb.View(func(stx *bolt.Tx) error {
		dtx, err := ddb.Begin(true)
		if err != nil {
			return err
		}
		defer func() { dtx.Rollback() }()
		var size int64
		err = copyBuckets(stx, func(path [][]byte, k, v []byte, seq uint64, isBucket bool) error {
			if size > 16<<20 { // keep transactions bounded on large files
				if err := dtx.Commit(); err != nil {
					return err
				}
				if dtx, err = ddb.Begin(true); err != nil {
					return err
				}
				size = 0
			}
			var parent *bolt.Bucket
			for i, name := range path {
				if i == 0 {
					parent = dtx.Bucket(name)
				} else {
					parent = parent.Bucket(name)
				}
			}
			size += int64(len(k) + len(v))
			if isBucket {
				var b *bolt.Bucket
				var err error
				if parent == nil {
					b, err = dtx.CreateBucketIfNotExists(k)
				} else {
					b, err = parent.CreateBucketIfNotExists(k)
				}
				if err != nil {
					return err
				}
				return b.SetSequence(seq)
			}
			done++
			if progress != nil && (done%1000 == 0 || done == total) {
				progress(done, total)
			}
			// Keys arrive in order: fill pages completely.
			parent.FillPercent = 1.0
			return parent.Put(k, v)
		})
		if err != nil {
			return err
		}
		return dtx.Commit()
	})
	if cerr := ddb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storageErr(dst, fmt.Errorf("ledger: compact %s into %s: %w", src, dst, err))
	}
	if progress != nil && total == 0 {
		progress(0, 0)
	}
	if err := syncFile(tmp); err != nil {
		return storageErr(dst, err)
	}
	if err := os.Link(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return wrapErr(ErrInvalid, "%s appeared while compacting; nothing was overwritten", dst)
		}
		return storageErr(dst, err)
	}
	return syncName(dst)
}

// copyBuckets calls fn for every bucket (isBucket, with its sequence) before
// its contents, and every key/value, with the path of parent bucket names.
func copyBuckets(tx *bolt.Tx, fn func(path [][]byte, k, v []byte, seq uint64, isBucket bool) error) error {
	var rec func(path [][]byte, b *bolt.Bucket) error
	rec = func(path [][]byte, b *bolt.Bucket) error {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				sub := b.Bucket(k)
				if sub == nil {
					continue
				}
				kk := append([]byte(nil), k...)
				if err := fn(path, kk, nil, sub.Sequence(), true); err != nil {
					return err
				}
				if err := rec(append(append([][]byte(nil), path...), kk), sub); err != nil {
					return err
				}
				continue
			}
			if err := fn(path, k, v, 0, false); err != nil {
				return err
			}
		}
		return nil
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		n := append([]byte(nil), name...)
		if err := fn(nil, n, nil, b.Sequence(), true); err != nil {
			return err
		}
		return rec([][]byte{n}, b)
	})
}
