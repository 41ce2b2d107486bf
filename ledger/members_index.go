package ledger

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
)

// The member index (schema 6) finds a member by card or by mobile. A bbolt
// key costs 16 bytes of element header besides itself, and a key per card
// and per mobile was a third of a chain's file, so the index packs its
// entries into slots instead: a slot is keyed by what (card or mobile) and
// the first 2 bytes of the card's or mobile's 8-byte hash, 65,536 slots a
// kind; an entry is the other 6 bytes of the hash and the member id (about
// 23 bytes; 15 to a slot at a million members). 64 bits of hash cannot
// tell every card apart, so a lookup checks the member record of each
// entry with that hash (card among its tokens, or its mobile) and only a
// member that really holds the card or mobile is an answer: a shared
// hash costs a record read, never a wrong member. A card held by two
// members (HQ moved it and the old holder is not updated yet) finds the
// first of them in slot order.
//
//	memberix  kind('c'|'m') hash[0:2] → entries: hash[2:8] len(id) id …
//	                                    (by hash, then id)
//
// The indexes of earlier schemas (bytoken: card key → id, bymobile: mobile
// → id) are still read after the slot, and a key there is deleted when the
// member next changes.

const (
	ixCard   = 'c'
	ixMobile = 'm'
	ixRest   = 6 // hash bytes an entry holds; 2 more are the slot's
)

// cardHash is the index hash of a card token: of its keyed hash, or of the
// SHA-256 of any other token (tokenKey32).
func cardHash(t string) []byte { return tokenKey32(t)[:8] }

func mobileHash(m string) []byte {
	h := sha256.Sum256(append([]byte{1}, m...))
	return h[:8]
}

func ixHash(kind byte, s string) []byte {
	if kind == ixCard {
		return cardHash(s)
	}
	return mobileHash(s)
}

func ixSlot(kind byte, h []byte) []byte { return []byte{kind, h[0], h[1]} }

type ixEntry struct {
	rest [ixRest]byte
	id   string
}

func ixCompare(a, b ixEntry) int {
	if c := bytes.Compare(a.rest[:], b.rest[:]); c != 0 {
		return c
	}
	return cmpString(a.id, b.id)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func decodeSlot(v []byte) ([]ixEntry, error) {
	var out []ixEntry
	r := reader{b: v}
	for len(r.b) > 0 && !r.err {
		if len(r.b) < ixRest {
			r.err = true
			break
		}
		var e ixEntry
		copy(e.rest[:], r.b)
		r.b = r.b[ixRest:]
		e.id = r.str()
		out = append(out, e)
	}
	if r.err {
		return nil, fmt.Errorf("%w: member index slot unreadable; run posagent ledger verify", ErrCorrupt)
	}
	return out, nil
}

func appendSlotEntry(buf []byte, rest []byte, id string) []byte {
	return appendStr(append(buf, rest...), id)
}

func encodeSlot(es []ixEntry) []byte {
	n := 0
	for _, e := range es {
		n += ixRest + 1 + len(e.id)
	}
	buf := make([]byte, 0, n)
	for _, e := range es {
		buf = appendSlotEntry(buf, e.rest[:], e.id)
	}
	return buf
}

// holds tells whether the member record of id holds s (a card token, or
// the mobile).
func holds(tx *bolt.Tx, kind byte, s, id string) bool {
	raw := tx.Bucket(bMembers).Get(memberKey(id, tagMember))
	if raw == nil {
		return false
	}
	var m entry.Member
	var bal balance
	if _, err := decodeMember(id, raw, &m, &bal); err != nil {
		return false
	}
	if kind == ixMobile {
		return m.Mobile == s
	}
	return slices.Contains(m.CardTokens, s)
}

// ixOwner is the member that holds card or mobile s (nil: none).
func ixOwner(tx *bolt.Tx, kind byte, s string) []byte {
	if s == "" {
		return nil
	}
	h := ixHash(kind, s)
	if b := tx.Bucket(bIndex); b != nil {
		if v := b.Get(ixSlot(kind, h)); v != nil {
			es, err := decodeSlot(v)
			if err == nil {
				for _, e := range es {
					if bytes.Equal(e.rest[:], h[2:]) && holds(tx, kind, s, e.id) {
						return []byte(e.id)
					}
				}
			}
		}
	}
	if kind == ixMobile {
		return tx.Bucket(bByMobile).Get([]byte(s))
	}
	b := tx.Bucket(bByToken)
	for _, k := range tokenKeyForms(s) {
		if id := b.Get(k); id != nil {
			return id
		}
	}
	return nil
}

// tokenOwner is the member id the card index gives for token t (nil: none).
func tokenOwner(tx *bolt.Tx, t string) []byte { return ixOwner(tx, ixCard, t) }

// mobileOwner is the member id the mobile index gives for m (nil: none).
func mobileOwner(tx *bolt.Tx, m string) []byte { return ixOwner(tx, ixMobile, m) }

// indexOp is one change to the member index: entry (kind, hash, id) added
// or removed, or (legacy) a key of an earlier schema's index deleted.
type indexOp struct {
	kind   byte
	h      []byte
	id     string
	del    bool
	legacy []byte // bucket of the earlier index; k is the key to delete
	k      []byte
}

// indexOps appends the index changes that take member old (nil: new) to m.
// Reads happen here, before any write.
func indexOps(tx *bolt.Tx, ops []indexOp, old, m *entry.Member) []indexOp {
	if old != nil {
		for _, t := range old.CardTokens {
			if !slices.Contains(m.CardTokens, t) || old.ID != m.ID {
				ops = append(ops, indexOp{kind: ixCard, h: cardHash(t), id: old.ID, del: true})
			}
			for _, k := range tokenKeyForms(t) {
				if string(tx.Bucket(bByToken).Get(k)) == old.ID {
					ops = append(ops, indexOp{legacy: bByToken, k: k})
				}
			}
		}
		if old.Mobile != "" {
			if old.Mobile != m.Mobile || old.ID != m.ID {
				ops = append(ops, indexOp{kind: ixMobile, h: mobileHash(old.Mobile), id: old.ID, del: true})
			}
			if string(tx.Bucket(bByMobile).Get([]byte(old.Mobile))) == old.ID {
				ops = append(ops, indexOp{legacy: bByMobile, k: []byte(old.Mobile)})
			}
		}
	}
	for _, t := range m.CardTokens {
		ops = append(ops, indexOp{kind: ixCard, h: cardHash(t), id: m.ID})
	}
	if m.Mobile != "" {
		ops = append(ops, indexOp{kind: ixMobile, h: mobileHash(m.Mobile), id: m.ID})
	}
	return ops
}

// indexMember keeps the member index in step with a member changing from
// old (nil: new) to m.
func indexMember(w *writer, old, m *entry.Member) error {
	return applyIndexOps(w, indexOps(w.tx, nil, old, m))
}

// applyIndexOps writes the changes slot by slot, in key order (each slot
// and leaf written once); a slot's removals go before its additions.
func applyIndexOps(w *writer, ops []indexOp) error {
	bySlot := map[string][]indexOp{}
	for _, o := range ops {
		if o.legacy != nil {
			if err := w.del(o.legacy, o.k); err != nil {
				return err
			}
			continue
		}
		k := string(ixSlot(o.kind, o.h))
		bySlot[k] = append(bySlot[k], o)
	}
	keys := make([]string, 0, len(bySlot))
	for k := range bySlot {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := w.tx.Bucket(bIndex)
	for _, k := range keys {
		was := b.Get([]byte(k))
		es, err := decodeSlot(was)
		if err != nil {
			return err
		}
		sop := bySlot[k]
		for _, o := range sop {
			if o.del {
				es = slices.DeleteFunc(es, func(e ixEntry) bool { return e.id == o.id && bytes.Equal(e.rest[:], o.h[2:]) })
			}
		}
		for _, o := range sop {
			if o.del {
				continue
			}
			var e ixEntry
			copy(e.rest[:], o.h[2:])
			e.id = o.id
			if i, found := slices.BinarySearchFunc(es, e, ixCompare); !found {
				es = slices.Insert(es, i, e)
			}
		}
		switch v := encodeSlot(es); {
		case bytes.Equal(v, was):
			// Unchanged (a member whose cards and mobile stay): no
			// write, so the leaf is not copied.
		case len(es) == 0:
			err = w.del(bIndex, []byte(k))
		default:
			err = w.put(bIndex, []byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// appendSlots adds sorted index entries (slot key, then hash rest and id:
// the load's stream order) to the slots they belong to, one put a slot.
func appendSlots(w *writer, keys []runEntry) error {
	b := w.tx.Bucket(bIndex)
	for i := 0; i < len(keys); {
		slot := keys[i].k[:3]
		j := i
		for j < len(keys) && bytes.Equal(keys[j].k[:3], slot) {
			j++
		}
		// Entries already in the slot (a member enrolled during the load)
		// are kept.
		es, err := decodeSlot(b.Get(slot))
		if err != nil {
			return err
		}
		for _, e := range keys[i:j] {
			var x ixEntry
			copy(x.rest[:], e.k[3:])
			x.id = string(e.v)
			es = append(es, x)
		}
		slices.SortFunc(es, ixCompare)
		es = slices.CompactFunc(es, func(a, b ixEntry) bool { return ixCompare(a, b) == 0 })
		v := encodeSlot(es)
		if err := w.put(bIndex, append([]byte(nil), slot...), v); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// ixKeyOf is a load stream key of an index entry: slot, then hash rest.
func ixKeyOf(kind byte, s string) []byte {
	h := ixHash(kind, s)
	return append([]byte{kind}, h...)
}
