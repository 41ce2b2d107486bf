package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
)

// Member-code buckets, made on first use like the cashiers':
// bMCKeys: key id → hq.MemberCodeKey; bMCClaims: code id → first claim;
// bMCRepeats: code\x00store\x00till → hq.MemberCodeRepeat;
// bMCRepeatsAt: received time (mcTimeKey)\x00code\x00store\x00till → nothing,
// the time index a month's repeats are read by, written in the repeat's
// transaction and made together with bMCRepeats.
var (
	bMCKeys      = []byte("member_code_keys")
	bMCClaims    = []byte("member_code_claims")
	bMCRepeats   = []byte("member_code_repeats")
	bMCRepeatsAt = []byte("member_code_repeats_at")
)

// mcTimeKey is t as fixed-width UTC text, which sorts as the time does
// for every year 0–9999.
func mcTimeKey(t time.Time) []byte {
	return []byte(t.UTC().Format("2006-01-02T15:04:05.000000000Z"))
}

var _ hq.MemberCodeStore = (*Store)(nil)

func mcKeys(tx *bbolt.Tx) ([]hq.MemberCodeKey, error) {
	b := tx.Bucket(bMCKeys)
	if b == nil {
		return nil, nil
	}
	ks, err := boltjs.All[hq.MemberCodeKey](b)
	slices.SortFunc(ks, func(a, b hq.MemberCodeKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return ks, err
}

// MemberCodeKeys lists every key kept, oldest first.
func (s *Store) MemberCodeKeys(_ context.Context) (out []hq.MemberCodeKey, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		out, err = mcKeys(tx)
		return err
	})
	return out, err
}

// EnsureMemberCodeKey returns the active key, storing k if there is none.
func (s *Store) EnsureMemberCodeKey(_ context.Context, k hq.MemberCodeKey) (active hq.MemberCodeKey, err error) {
	err = s.db.Update(func(tx *bbolt.Tx) error {
		ks, err := mcKeys(tx)
		if err != nil {
			return err
		}
		for _, x := range ks {
			if x.RetiredAt.IsZero() {
				active = x
				return nil
			}
		}
		b, err := tx.CreateBucketIfNotExists(bMCKeys)
		if err != nil {
			return err
		}
		if b.Get([]byte(k.ID)) != nil {
			return fmt.Errorf("%w: member-code key %s", hq.ErrConflict, k.ID)
		}
		active = k
		return boltjs.Put(b, []byte(k.ID), k)
	})
	return active, err
}

// RotateMemberCodeKey retires the active key at k.CreatedAt and stores k;
// keys whose codes expired before now are deleted.
func (s *Store) RotateMemberCodeKey(_ context.Context, k hq.MemberCodeKey, now time.Time) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		ks, err := mcKeys(tx)
		if err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bMCKeys)
		if err != nil {
			return err
		}
		if b.Get([]byte(k.ID)) != nil {
			return fmt.Errorf("%w: member-code key %s", hq.ErrConflict, k.ID)
		}
		for _, x := range ks {
			switch {
			case x.RetiredAt.IsZero():
				x.RetiredAt = k.CreatedAt
				if err := boltjs.Put(b, []byte(x.ID), x); err != nil {
					return err
				}
			case now.After(x.NotAfter()):
				if err := b.Delete([]byte(x.ID)); err != nil {
					return err
				}
			}
		}
		return boltjs.Put(b, []byte(k.ID), k)
	})
}

// ClaimMemberCode records a use of a code; see hq.MemberCodeStore.
func (s *Store) ClaimMemberCode(_ context.Context, c hq.MemberCodeClaim) (first hq.MemberCodeClaim, repeat bool, err error) {
	err = s.db.Update(func(tx *bbolt.Tx) error {
		cb, err := tx.CreateBucketIfNotExists(bMCClaims)
		if err != nil {
			return err
		}
		v := cb.Get([]byte(c.Code))
		if v == nil {
			first = c
			return boltjs.Put(cb, []byte(c.Code), c)
		}
		if err := json.Unmarshal(v, &first); err != nil {
			return fmt.Errorf("hq: member-code claim %q: %w", c.Code, err)
		}
		if first.Store == c.Store && first.Till == c.Till {
			return nil
		}
		repeat = true
		rb, err := tx.CreateBucketIfNotExists(bMCRepeats)
		if err != nil {
			return err
		}
		ib, err := tx.CreateBucketIfNotExists(bMCRepeatsAt)
		if err != nil {
			return err
		}
		k := key(c.Code, c.Store, c.Till)
		if rb.Get(k) != nil {
			return nil
		}
		if err := ib.Put(mcRepeatAtKey(c.At, k), nil); err != nil {
			return err
		}
		return boltjs.Put(rb, k, hq.MemberCodeRepeat{First: first, Again: c})
	})
	return first, repeat, err
}

func mcRepeatAtKey(at time.Time, k []byte) []byte {
	return append(append(mcTimeKey(at), 0), k...)
}

// indexMCRepeats builds the time index of a file whose repeats were
// recorded before it existed (schema 5 and older); it does nothing when
// the index is there or there are no repeats.
func indexMCRepeats(tx *bbolt.Tx) error {
	rb := tx.Bucket(bMCRepeats)
	if rb == nil || tx.Bucket(bMCRepeatsAt) != nil {
		return nil
	}
	ib, err := tx.CreateBucket(bMCRepeatsAt)
	if err != nil {
		return err
	}
	return boltjs.Each(rb, func(k []byte, r hq.MemberCodeRepeat) error {
		return ib.Put(mcRepeatAtKey(r.Again.At, k), nil)
	})
}

// MemberCodeRepeats reads the repeats recorded in [since, until) by the
// time index, oldest first.
func (s *Store) MemberCodeRepeats(ctx context.Context, since, until time.Time) ([]hq.MemberCodeRepeat, error) {
	var out []hq.MemberCodeRepeat
	from := mcTimeKey(since)
	var to []byte
	if !until.IsZero() {
		to = mcTimeKey(until)
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		ib, rb := tx.Bucket(bMCRepeatsAt), tx.Bucket(bMCRepeats)
		if ib == nil || rb == nil {
			return nil
		}
		c := ib.Cursor()
		for k, _ := c.Seek(from); k != nil && (to == nil || bytes.Compare(k, to) < 0); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			rk := k[bytes.IndexByte(k, 0)+1:] // the time's text holds no NUL
			v := rb.Get(rk)
			if v == nil {
				return fmt.Errorf("hq: member-code repeat %q is in the time index but not stored; the file is damaged", rk)
			}
			var r hq.MemberCodeRepeat
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("hq: member-code repeat %q: %w", rk, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
