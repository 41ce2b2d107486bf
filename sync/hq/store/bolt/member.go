package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
	"posagent/sync/wire"
)

// A member is kept in two parts so that a sale, which only moves balances,
// rewrites a few dozen bytes and not the member's whole record: the hot
// part (members: change version, balances, flag, last sale; compact binary)
// and the cold part (member_data: enrolment, tier, coupons, reviews; JSON,
// written only when one of those changes). Fewer bytes per member means
// fewer B+tree leaves dirtied, and written, per commit.

const hotFormat = 1 // first byte of a hot record

const (
	hotFlagged = 1 << iota
	hotLastSale
)

// encodeHot is the hot part of r.
func encodeHot(r *memberRec) []byte {
	b := make([]byte, 0, 40)
	b = append(b, hotFormat)
	b = binary.AppendUvarint(b, r.Version)
	b = binary.AppendVarint(b, r.Points)
	b = binary.AppendVarint(b, r.StoredValue)
	var flags byte
	if r.Flagged {
		flags |= hotFlagged
	}
	if !r.LastSale.IsZero() {
		flags |= hotLastSale
	}
	b = append(b, flags)
	if !r.LastSale.IsZero() {
		b = binary.AppendVarint(b, r.LastSale.Unix())
		b = binary.AppendUvarint(b, uint64(r.LastSale.Nanosecond()))
	}
	return b
}

var errHot = errors.New("hq store: damaged member record; restore the file from a backup")

// decodeHot fills r's hot fields from v.
func decodeHot(v []byte, r *memberRec) error {
	if len(v) == 0 || v[0] != hotFormat {
		return errHot
	}
	v = v[1:]
	uv := func() uint64 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	sv := func() int64 {
		x, n := binary.Varint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	r.Version = uv()
	r.Points = sv()
	r.StoredValue = sv()
	if len(v) == 0 {
		return errHot
	}
	flags := v[0]
	v = v[1:]
	r.Flagged = flags&hotFlagged != 0
	r.LastSale = time.Time{}
	if flags&hotLastSale != 0 {
		sec := sv()
		nsec := uv()
		if v == nil || nsec >= 1e9 {
			return errHot
		}
		r.LastSale = time.Unix(sec, int64(nsec)).UTC()
	}
	if v == nil {
		return errHot
	}
	return nil
}

// encodeCold is the cold part of m: the record with the hot fields
// cleared (they live in the hot part and win on read).
func encodeCold(m hq.Member) ([]byte, error) {
	m.ID, m.Points, m.StoredValue, m.Flagged, m.LastSale = "", 0, 0, false, time.Time{}
	return json.Marshal(m)
}

func getMember(tx *bbolt.Tx, id string) (memberRec, bool, error) {
	r := memberRec{Member: hq.Member{ID: id}}
	hot := tx.Bucket(bMembers).Get([]byte(id))
	if hot == nil {
		return r, false, nil
	}
	if cold := tx.Bucket(bMemData).Get([]byte(id)); cold != nil {
		if err := json.Unmarshal(cold, &r.Member); err != nil {
			return r, true, fmt.Errorf("member %q: %w", id, err)
		}
		r.ID = id
	}
	if err := decodeHot(hot, &r); err != nil {
		return r, true, fmt.Errorf("member %q: %w", id, err)
	}
	return r, true, nil
}

// memberSet holds the members a transaction changes, each read once and
// written once however many batches touch it.
type memberSet struct {
	tx *bbolt.Tx
	m  map[string]*setMember
	// identity: only deltas that change who a member is (hq.Delta.Identity,
	// or a new flag) put the member in the change log (Options.IdentityFeed).
	identity bool
}

type setMember struct {
	rec  memberRec
	cold bool // structure changed: write the cold part too
	feed bool // goes out with the changes feed: gets a new version
}

func newMemberSet(tx *bbolt.Tx) *memberSet {
	return &memberSet{tx: tx, m: map[string]*setMember{}}
}

func (s *memberSet) get(id string) (*setMember, error) {
	if sm := s.m[id]; sm != nil {
		return sm, nil
	}
	r, _, err := getMember(s.tx, id)
	if err != nil {
		return nil, err
	}
	sm := &setMember{rec: r}
	s.m[id] = sm
	return sm, nil
}

// apply applies d as its own step (balances are checked for a flag after
// each batch's delta, as if every batch had its own transaction).
func (s *memberSet) apply(d hq.Delta) error {
	sm, err := s.get(d.MemberID)
	if err != nil {
		return err
	}
	flagged := sm.rec.Flagged
	if err := sm.rec.Apply(d); err != nil {
		return err
	}
	if d.Structural() {
		sm.cold = true
	}
	if !s.identity || d.Identity() || sm.rec.Flagged && !flagged {
		sm.feed = true
	}
	return nil
}

// fits reports whether every delta fits its member's balances as the set
// holds them.
func (s *memberSet) fits(ds []hq.Delta) (bool, error) {
	for _, d := range ds {
		sm, err := s.get(d.MemberID)
		if err != nil {
			return false, err
		}
		if !(hq.Balance{Points: sm.rec.Points, StoredValue: sm.rec.StoredValue}).Fits(d) {
			return false, nil
		}
	}
	return true, nil
}

// flush writes every member of the set, those for the feed under a new
// change version so the changes feed sends them to the stores again; in id
// order, so neighbouring members share leaf pages. A member left out of the
// feed keeps its version, and so its place in the log.
func (s *memberSet) flush() error {
	ids := make([]string, 0, len(s.m))
	for id := range s.m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	log := s.tx.Bucket(bMemLog)
	log.FillPercent = 1 // versions only grow: pack the leaves full
	hot, data := s.tx.Bucket(bMembers), s.tx.Bucket(bMemData)
	n := 0
	for _, id := range ids {
		sm := s.m[id]
		var v uint64
		if sm.feed || sm.rec.Version == 0 {
			var err error
			if v, err = log.NextSequence(); err != nil {
				return err
			}
			sm.rec.Version = v
		}
		if err := hot.Put([]byte(id), encodeHot(&sm.rec)); err != nil {
			return err
		}
		if sm.cold {
			raw, err := encodeCold(sm.rec.Member)
			if err != nil {
				return err
			}
			if err := data.Put([]byte(id), raw); err != nil {
				return err
			}
		}
		if v != 0 {
			if err := log.Put(boltjs.U64(v), []byte(id)); err != nil {
				return err
			}
			n++
		}
		sm.cold, sm.feed = false, false
	}
	return pruneLog(s.tx, 2*n+64)
}

// The change log is append-only: a member's earlier log entry is left in
// place when it changes (deleting it would dirty a leaf anywhere in the
// log for every member touched) and readers skip entries older than the
// member's version. pruneLog removes such stale entries a stretch at a
// time, from a position kept in meta that wraps round the log; looking at
// twice as many entries as a commit adds keeps the log within about twice
// the number of members, and one commit's deletions share a few leaves.
func pruneLog(tx *bbolt.Tx, budget int) error {
	meta, log, hot := tx.Bucket(bMeta), tx.Bucket(bMemLog), tx.Bucket(bMembers)
	pos := boltjs.Uint64(meta.Get(keyPrune))
	var stale [][]byte
	c := log.Cursor()
	k, v := c.Seek(boltjs.U64(pos + 1))
	if k == nil {
		k, v = c.First()
	}
	for n := 0; k != nil && n < budget; k, v = c.Next() {
		n++
		pos = boltjs.Uint64(k)
		var r memberRec
		h := hot.Get(v)
		if h != nil {
			if err := decodeHot(h, &r); err != nil {
				return fmt.Errorf("member %q: %w", v, err)
			}
		}
		if h == nil || r.Version != pos {
			stale = append(stale, append([]byte(nil), k...))
		}
	}
	if k == nil {
		pos = 0 // at the end: start again from the oldest
	}
	for _, k := range stale {
		if err := log.Delete(k); err != nil {
			return err
		}
	}
	return meta.Put(keyPrune, boltjs.U64(pos))
}

var keyPrune = []byte("member_log_pruned")

// migrateMembers turns schema-1 members (one JSON record each) into hot and
// cold parts, keeping their change versions.
func migrateMembers(tx *bbolt.Tx) error {
	type old struct {
		id  []byte
		rec memberRec
	}
	var all []old
	err := tx.Bucket(bMembers).ForEach(func(k, v []byte) error {
		var r memberRec
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("member %q: %w", k, err)
		}
		all = append(all, old{id: append([]byte(nil), k...), rec: r})
		return nil
	})
	if err != nil {
		return err
	}
	hot, data := tx.Bucket(bMembers), tx.Bucket(bMemData)
	for i := range all {
		r := &all[i].rec
		if err := hot.Put(all[i].id, encodeHot(r)); err != nil {
			return err
		}
		cold, err := encodeCold(r.Member)
		if err != nil {
			return err
		}
		if err := data.Put(all[i].id, cold); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot sends every member as one read transaction holds them, walking
// the hot and cold buckets side by side in id order, and returns the
// changes cursor at the change log's sequence: every version up to it is in
// the snapshot (writers take versions inside their transaction), and every
// later one comes with the feed. A write that needs a larger memory map
// waits for the read transaction to end.
func (s *Store) Snapshot(ctx context.Context, fn func(wire.MemberState) error) (string, error) {
	var cur changesCursor
	err := s.db.View(func(tx *bbolt.Tx) error {
		cur.M = tx.Bucket(bMemLog).Sequence()
		hc, cc := tx.Bucket(bMembers).Cursor(), tx.Bucket(bMemData).Cursor()
		ck, cv := cc.First()
		for k, v := hc.First(); k != nil; k, v = hc.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			for ck != nil && bytes.Compare(ck, k) < 0 {
				ck, cv = cc.Next() // a cold part without a hot one is never written; pass it
			}
			r := memberRec{}
			if ck != nil && bytes.Equal(ck, k) {
				if err := json.Unmarshal(cv, &r.Member); err != nil {
					return fmt.Errorf("member %q: %w", k, err)
				}
			}
			r.ID = string(k)
			if err := decodeHot(v, &r); err != nil {
				return fmt.Errorf("member %q: %w", k, err)
			}
			if err := fn(r.State()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hq.EncodeCursor(cur), nil
}
