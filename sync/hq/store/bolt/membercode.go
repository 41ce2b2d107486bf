package bolt

import (
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
// bMCRepeats: code\x00store\x00till → hq.MemberCodeRepeat.
var (
	bMCKeys    = []byte("member_code_keys")
	bMCClaims  = []byte("member_code_claims")
	bMCRepeats = []byte("member_code_repeats")
)

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
		k := key(c.Code, c.Store, c.Till)
		if rb.Get(k) != nil {
			return nil
		}
		return boltjs.Put(rb, k, hq.MemberCodeRepeat{First: first, Again: c})
	})
	return first, repeat, err
}

// MemberCodeRepeats lists the repeats recorded since, oldest first.
func (s *Store) MemberCodeRepeats(_ context.Context, since time.Time) ([]hq.MemberCodeRepeat, error) {
	var out []hq.MemberCodeRepeat
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bMCRepeats)
		if b == nil {
			return nil
		}
		return boltjs.Each(b, func(_ []byte, r hq.MemberCodeRepeat) error {
			if !r.Again.At.Before(since) {
				out = append(out, r)
			}
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b hq.MemberCodeRepeat) int { return a.Again.At.Compare(b.Again.At) })
	return out, err
}
