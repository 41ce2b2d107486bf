package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A member snapshot from HQ arrives in no useful order (a card hash and a
// member id say nothing of when HQ sends the member), so applying it page by
// page inserts at random places in three B+trees: every page rewrites most
// of their leaves, and they end up a half to two thirds full, with the pages
// freed on the way left in the file. MemberLoad instead sorts the snapshot
// outside bbolt (sorted runs in files next to the ledger, merged at the end)
// and, into a ledger with no members yet, appends each bucket in key order:
// every leaf is written once and full.

// MemberLoad is a bulk load of HQ's member snapshot (LoadMembers).
type MemberLoad struct {
	l      *Ledger
	direct bool   // the ledger held members at the start: Add applies at once
	dir    string // sorted runs, removed by Finish and Abort
	runs   []string
	buf    []runEntry
	bytes  int
	added  int
	done   bool
}

type runEntry struct {
	k, v []byte // k starts with the stream (loadStreamMember, loadStreamCard, loadStreamMobile)
	seq  int    // order of arrival: among equal keys the later entry wins
	pre  uint64 // the first 8 bytes of k, big-endian: most comparisons end here
}

// Streams of a run, in the order Finish applies them.
const (
	loadStreamMember = 'a'
	loadStreamCard   = 'b'
	loadStreamMobile = 'c'
)

// loadRunBytes is how much of the snapshot is sorted in memory before it is
// written out as a run (about 50,000 members); loadTxMembers and
// loadTxKeys bound one bbolt transaction of Finish.
const (
	loadRunBytes  = 16 << 20
	loadTxMembers = 100_000
	loadTxKeys    = 250_000
)

// loading holds the ledger paths with a MemberLoad open (a new load removes
// the runs it finds next to the file, which would be another load's).
var loading sync.Map

// LoadMembers starts a bulk load of member states from HQ (a new till's
// snapshot): Add them in any number of calls, then Finish. The result is
// what ApplyMemberStates of the same states gives, but into a ledger that
// holds no member yet it is several times faster and the file is a third
// of the size, because nothing is written to bbolt before Finish, which
// writes every bucket in key order. Until Finish returns the states are not
// visible (while it runs, some are). If the ledger already holds members,
// Add applies each call at once through ApplyMemberStates and Finish only
// ends the load. Abort (or a failed Finish) leaves the states applied so far,
// which is harmless: applying HQ's state again gives the same result. The
// sorted runs are kept in a directory next to the ledger file (about the
// size of the snapshot), removed by Finish or Abort, and by the next
// LoadMembers after a crash.
func (l *Ledger) LoadMembers() (*MemberLoad, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if _, busy := loading.LoadOrStore(l.path, true); busy {
		return nil, wrapErr(ErrInvalid, "a member load of %s is already running; finish or abort it first", l.path)
	}
	ld := &MemberLoad{l: l}
	err := l.read(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMembers, bIndex, bByToken, bByMobile} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				ld.direct = true
			}
		}
		return nil
	})
	if err != nil {
		loading.Delete(l.path)
		return nil, err
	}
	if ld.direct {
		return ld, nil
	}
	old, _ := filepath.Glob(l.path + ".load-*")
	for _, d := range old {
		os.RemoveAll(d) // runs of a load a crash interrupted
	}
	ld.dir, err = os.MkdirTemp(filepath.Dir(l.path), filepath.Base(l.path)+".load-*")
	if err != nil {
		loading.Delete(l.path)
		return nil, storageErr(l.path, fmt.Errorf("ledger: member load: %w", err))
	}
	return ld, nil
}

// Add takes member states; within a load, a member's last state wins.
func (ld *MemberLoad) Add(states []MemberState) error {
	if ld.done {
		return wrapErr(ErrInvalid, "member load already finished or aborted; start a new one")
	}
	for _, s := range states {
		if err := checkID("member id from HQ", s.Member.ID); err != nil {
			return err
		}
	}
	if ld.direct {
		return ld.l.ApplyMemberStates(states)
	}
	for i := range states {
		s := &states[i]
		id := s.Member.ID
		// One allocation for the member's entries; the id is shared.
		b := make([]byte, 0, 2*len(id)+10*(1+len(s.Member.CardTokens))+128)
		b = append(b, id...)
		idb := b[:len(id):len(id)]
		start := len(b)
		b = append(b, loadStreamMember)
		b = append(b, id...)
		k := b[start:len(b):len(b)]
		start = len(b)
		b = encodeLoadState(b, s)
		ld.put(k, b[start:len(b):len(b)])
		for _, t := range s.Member.CardTokens {
			start = len(b)
			b = append(append(b, loadStreamCard), ixKeyOf(ixCard, t)...)
			ld.put(b[start:len(b):len(b)], idb)
		}
		if s.Member.Mobile != "" {
			start = len(b)
			b = append(append(b, loadStreamMobile), ixKeyOf(ixMobile, s.Member.Mobile)...)
			ld.put(b[start:len(b):len(b)], idb)
		}
		ld.added++
	}
	if ld.bytes >= loadRunBytes {
		return ld.flush()
	}
	return nil
}

func (ld *MemberLoad) put(k, v []byte) {
	var p [8]byte
	copy(p[:], k)
	ld.buf = append(ld.buf, runEntry{k, v, len(ld.buf), binary.BigEndian.Uint64(p[:])})
	ld.bytes += len(k) + len(v) + 64
}

// flush writes the buffer as a run, sorted by key; equal keys keep their
// order, so the last state of a member is last.
func (ld *MemberLoad) flush() error {
	if len(ld.buf) == 0 {
		return nil
	}
	slices.SortFunc(ld.buf, func(a, b runEntry) int {
		if a.pre != b.pre {
			return cmp.Compare(a.pre, b.pre)
		}
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	name := filepath.Join(ld.dir, fmt.Sprintf("run-%05d", len(ld.runs)))
	f, err := os.Create(name)
	if err != nil {
		return storageErr(ld.l.path, fmt.Errorf("ledger: member load: %w", err))
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var hdr [2 * binary.MaxVarintLen64]byte
	for _, e := range ld.buf {
		n := binary.PutUvarint(hdr[:], uint64(len(e.k)))
		n += binary.PutUvarint(hdr[n:], uint64(len(e.v)))
		w.Write(hdr[:n])
		w.Write(e.k)
		w.Write(e.v)
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storageErr(ld.l.path, fmt.Errorf("ledger: member load: write %s: %w", name, err))
	}
	ld.runs = append(ld.runs, name)
	clear(ld.buf)
	ld.buf, ld.bytes = ld.buf[:0], 0
	return nil
}

// Abort ends the load; what Finish or Add already applied stays.
func (ld *MemberLoad) Abort() {
	if ld.done {
		return
	}
	ld.done = true
	ld.buf = nil
	if ld.dir != "" {
		os.RemoveAll(ld.dir)
	}
	loading.Delete(ld.l.path)
}

// Finish applies what was added: members, then the card index, then the
// mobile index, each in key order, in transactions of loadTxMembers members
// or loadTxKeys index keys, each durable when it commits. A member that is
// already in the ledger when its turn comes (enrolled meanwhile), or that
// was added more than once, is applied by ApplyMemberStates instead, which
// reads what is there.
func (ld *MemberLoad) Finish() error {
	if ld.done {
		return wrapErr(ErrInvalid, "member load already finished or aborted; start a new one")
	}
	defer ld.Abort()
	if ld.direct {
		return nil
	}
	if err := ld.flush(); err != nil {
		return err
	}
	m, err := openMerge(ld.runs)
	if err != nil {
		return storageErr(ld.l.path, fmt.Errorf("ledger: member load: %w", err))
	}
	defer m.close()
	slow := map[string]MemberState{} // applied by ApplyMemberStates at the end
	k, v, ok := m.next()
	// Members.
	for ok && k[0] == loadStreamMember {
		batch := make([]runEntry, 0, loadTxMembers)
		for ok && k[0] == loadStreamMember && len(batch) < loadTxMembers {
			e := runEntry{k: k[1:], v: v}
			n := 1
			for k, v, ok = m.next(); ok && k[0] == loadStreamMember && bytes.Equal(k[1:], e.k); k, v, ok = m.next() {
				e.v = v
				n++
			}
			if n > 1 {
				// Sent more than once: the last state wins, applied
				// by ApplyMemberStates so no earlier card stays indexed.
				var s MemberState
				if err := decodeLoadState(string(e.k), e.v, &s); err != nil {
					return fmt.Errorf("ledger: member load: %w", err)
				}
				slow[s.Member.ID] = s
				continue
			}
			batch = append(batch, e)
		}
		exists, err := ld.l.appendMembers(batch)
		if err != nil {
			return err
		}
		for _, s := range exists {
			slow[s.Member.ID] = s
		}
	}
	// The indexes; keys of members left to ApplyMemberStates are its to write.
	for ok {
		stream := k[0]
		keys := make([]runEntry, 0, loadTxKeys)
		for ok && k[0] == stream && len(keys) < loadTxKeys {
			if _, s := slow[string(v)]; !s {
				keys = append(keys, runEntry{k: k[1:], v: v})
			}
			k, v, ok = m.next()
		}
		if err := ld.l.appendKeys(keys); err != nil {
			return err
		}
	}
	if err := m.err; err != nil {
		return storageErr(ld.l.path, fmt.Errorf("ledger: member load: read runs: %w", err))
	}
	if len(slow) > 0 {
		rest := make([]MemberState, 0, len(slow))
		for _, s := range slow {
			rest = append(rest, s)
		}
		if err := ld.l.ApplyMemberStates(rest); err != nil {
			return err
		}
	}
	ld.l.releaseMapped()
	return nil
}

// appendMembers writes new members (id, load state) in key order in one
// direct commit, as ApplyMemberStates would write them (newMember), and
// returns those the ledger already holds, untouched.
func (l *Ledger) appendMembers(batch []runEntry) ([]MemberState, error) {
	var exists []MemberState
	_, err := l.submitReq(context.Background(), &request{done: make(chan struct{}), direct: true, fn: func(tx *bolt.Tx, w *writer) (any, error) {
		exists = exists[:0]
		mb := tx.Bucket(bMembers)
		mb.FillPercent = 1.0 // appended in key order: full leaves
		g := tx.Bucket(bLog).Sequence()
		puts := make([]runEntry, 0, len(batch)+len(batch)/4)
		for _, e := range batch {
			id := string(e.k)
			if mb.Get(memberKey(id, tagMember)) != nil {
				var s MemberState
				if err := decodeLoadState(id, e.v, &s); err != nil {
					return nil, err
				}
				exists = append(exists, s)
				continue
			}
			g++
			kvs, err := newMember(id, e.v, g)
			if err != nil {
				return nil, err
			}
			puts = append(puts, kvs...)
		}
		for _, p := range puts {
			if err := w.put(bMembers, p.k, p.v); err != nil {
				return nil, err
			}
		}
		return nil, w.setSeq(bLog, g)
	}})
	return exists, err
}

// newMember is what ApplyMemberStates stores for a member new to the ledger
// from its load state v, applied with global order g (nothing local is
// pending on a new member, so its state stays out of the hq log): the
// coupons, then the member record with its balance, in key order.
// TestMemberLoadMatchesApply holds the two to the same result.
func newMember(id string, v []byte, g uint64) ([]runEntry, error) {
	bad := fmt.Errorf("%w: member %q in a load run unreadable", ErrCorrupt, id)
	r := reader{b: v}
	n := r.uvarint()
	if r.err || n == 0 || n > uint64(len(r.b)) {
		return nil, bad
	}
	rec := r.b[:n]
	r.b = r.b[n:]
	bal := balance{Points: r.varint(), StoredValue: r.varint(), Unlogged: g}
	if r.byte1() == 1 {
		bal.LastSale = max(r.varint(), 0)
	}
	r.byte1() // flagged: HQ's alone
	if bal.Points > 0 {
		bal.HQLotKey, bal.HQLotRem = g, bal.Points
	}
	nc := r.uvarint()
	if r.err || nc > uint64(len(r.b)) {
		return nil, bad
	}
	var out []runEntry
	if nc > 0 {
		byID := map[string]*couponState{}
		for range nc {
			n := r.uvarint()
			if r.err || n > uint64(len(r.b)) {
				return nil, bad
			}
			var cs couponState
			if err := decodeCoupon(id, "", r.b[:n], &cs); err != nil {
				return nil, bad
			}
			r.b = r.b[n:]
			byID[cs.Coupon.ID] = &cs // a coupon listed twice: the last
		}
		ids := make([]string, 0, len(byID))
		for cid := range byID {
			ids = append(ids, cid)
		}
		slices.Sort(ids)
		for _, cid := range ids {
			out = append(out, runEntry{k: memberKey(id, tagCoupon, []byte(cid)...), v: encodeCoupon(id, cid, byID[cid])})
		}
	}
	if r.err || len(r.b) != 0 || rec[0] != memberFormat {
		return nil, bad
	}
	full := make([]byte, 0, len(rec)+16)
	full = append(append(full, memberFormatBal), rec[1:]...)
	return append(out, runEntry{k: memberKey(id, tagMember), v: bal.encode(full)}), nil
}

// appendKeys adds index entries (sorted) in one direct commit.
func (l *Ledger) appendKeys(keys []runEntry) error {
	_, err := l.submitReq(context.Background(), &request{done: make(chan struct{}), direct: true, fn: func(tx *bolt.Tx, w *writer) (any, error) {
		tx.Bucket(bIndex).FillPercent = 1.0 // slots in key order: full leaves
		return nil, appendSlots(w, keys)
	}})
	return err
}

// encodeLoadState is a member state as a run holds it: the member record
// (without balance), then points, stored value, last sale, flagged and the
// coupons.
func encodeLoadState(buf []byte, s *MemberState) []byte {
	rec := encodeMember(s.Member.ID, &s.Member, nil)
	buf = binary.AppendUvarint(buf, uint64(len(rec)))
	buf = append(buf, rec...)
	buf = binary.AppendVarint(buf, s.Points)
	buf = binary.AppendVarint(buf, s.StoredValue)
	if s.LastSale.IsZero() {
		buf = append(buf, 0)
	} else {
		buf = binary.AppendVarint(append(buf, 1), s.LastSale.Unix())
	}
	f := byte(0)
	if s.Flagged {
		f = 1
	}
	buf = append(buf, f)
	buf = binary.AppendUvarint(buf, uint64(len(s.Coupons)))
	for i := range s.Coupons {
		c := encodeCoupon(s.Member.ID, "", &couponState{Coupon: s.Coupons[i]})
		buf = binary.AppendUvarint(buf, uint64(len(c)))
		buf = append(buf, c...)
	}
	return buf
}

func decodeLoadState(id string, v []byte, s *MemberState) error {
	*s = MemberState{}
	r := reader{b: v}
	bad := fmt.Errorf("%w: member %q in a load run unreadable", ErrCorrupt, id)
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		return bad
	}
	if _, err := decodeMember(id, r.b[:n], &s.Member, nil); err != nil {
		return bad
	}
	r.b = r.b[n:]
	s.Points, s.StoredValue = r.varint(), r.varint()
	if r.byte1() == 1 {
		s.LastSale = time.Unix(r.varint(), 0).UTC()
	}
	s.Flagged = r.byte1() == 1
	nc := r.uvarint()
	if r.err || nc > uint64(len(r.b)) {
		return bad
	}
	for range nc {
		n := r.uvarint()
		if r.err || n > uint64(len(r.b)) {
			return bad
		}
		var cs couponState
		if err := decodeCoupon(id, "", r.b[:n], &cs); err != nil {
			return bad
		}
		s.Coupons = append(s.Coupons, cs.Coupon)
		r.b = r.b[n:]
	}
	if r.err || len(r.b) != 0 {
		return bad
	}
	return nil
}

// ---- merging sorted runs ----

type runReader struct {
	f    *os.File
	r    *bufio.Reader
	i    int // run number: among equal keys the earlier run comes first
	k, v []byte
}

func (rr *runReader) read() error {
	kl, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return err // io.EOF at the end of the run
	}
	vl, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	if kl == 0 || kl > 1<<20 || vl > 1<<24 {
		return errors.New("run entry of impossible size")
	}
	b := make([]byte, kl+vl)
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return io.ErrUnexpectedEOF
	}
	rr.k, rr.v = b[:kl], b[kl:]
	return nil
}

type merge struct {
	h   runHeap
	all []*runReader
	err error
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].k, h[j].k); c != 0 {
		return c < 0
	}
	return h[i].i < h[j].i
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func openMerge(runs []string) (*merge, error) {
	m := &merge{}
	for i, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			m.close()
			return nil, err
		}
		rr := &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10), i: i}
		m.all = append(m.all, rr)
		switch err := rr.read(); {
		case err == nil:
			m.h = append(m.h, rr)
		case err != io.EOF:
			m.close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// next is the smallest key left and its value (ok false: none, or m.err).
func (m *merge) next() (k, v []byte, ok bool) {
	if len(m.h) == 0 || m.err != nil {
		return nil, nil, false
	}
	top := m.h[0]
	k, v = top.k, top.v
	switch err := top.read(); {
	case err == nil:
		heap.Fix(&m.h, 0)
	case err == io.EOF:
		heap.Pop(&m.h)
	default:
		m.err = err
		return nil, nil, false
	}
	return k, v, true
}

func (m *merge) close() {
	for _, rr := range m.all {
		rr.f.Close()
	}
}
