package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bMemberCodes holds what the till needs for member codes:
//
//	'k'          → []MemberCodeKey, HQ's public keys (JSON), as last sent
//	'u' code id  → MemberCodeUse: a code accepted here, kept until it expires
//	'q' code id  → MemberCodeUse: a use HQ has not heard of yet
//
// Made at Open when missing, like the cashiers' bucket.
var bMemberCodes = []byte("membercodes")

// MemberCodeKey is a public key of HQ's member codes, as the till keeps it.
type MemberCodeKey struct {
	ID       string    `json:"id"`
	Public   []byte    `json:"public"` // Ed25519, 32 bytes
	NotAfter time.Time `json:"not_after,omitzero"`
}

// MemberCodeUse is a member code accepted at one of the store's tills.
type MemberCodeUse struct {
	Code    string    `json:"code"` // the code's id, never the code
	Member  string    `json:"member"`
	Till    string    `json:"till"`
	SeenAt  time.Time `json:"seen_at"`
	Expires time.Time `json:"expires"`
	// Until is when no till accepts the code any more (Expires and the
	// clock-skew allowance): the use is kept for repeats until then.
	Until time.Time `json:"until"`
}

func (l *Ledger) ensureMemberCodeBucket() error {
	var have bool
	_ = l.db.View(func(tx *bolt.Tx) error { have = tx.Bucket(bMemberCodes) != nil; return nil })
	if have {
		return nil
	}
	if err := l.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bMemberCodes)
		return err
	}); err != nil {
		return storageErr(l.path, fmt.Errorf("ledger: add the member-code bucket to %s: %w", l.path, err))
	}
	return nil
}

// ApplyMemberCodeKeys replaces the public keys of HQ's member codes.
func (l *Ledger) ApplyMemberCodeKeys(keys []MemberCodeKey) error {
	for _, k := range keys {
		if len(k.Public) != 32 || k.ID == "" {
			return wrapErr(ErrInvalid, "member-code key %q from HQ is not a 32-byte public key with an id", k.ID)
		}
	}
	v, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	_, err = l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		return nil, w.put(bMemberCodes, []byte{'k'}, v)
	})
	return err
}

// MemberCodeKeys are the public keys codes are verified with; none before
// the first sync with an HQ that issues codes.
func (l *Ledger) MemberCodeKeys() ([]MemberCodeKey, error) {
	var ks []MemberCodeKey
	err := l.read(func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(bMemberCodes), []byte{'k'}, &ks)
		return err
	})
	return ks, err
}

// UseMemberCode records u as accepted at the till. If the code was accepted
// here before (at any till of this ledger) and has not expired, nothing
// changes and the first use comes back with repeat true. Uses past their
// expiry are dropped on the way, so the bucket holds about a minute of
// codes.
func (l *Ledger) UseMemberCode(ctx context.Context, u MemberCodeUse) (first MemberCodeUse, repeat bool, err error) {
	now := l.now()
	_, err = l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		b := tx.Bucket(bMemberCodes)
		k := append([]byte{'u'}, u.Code...)
		if ok, err := getJSON(b, k, &first); err != nil {
			return nil, err
		} else if ok && now.Before(first.Until) {
			repeat = true
			return nil, nil
		}
		var drop [][]byte
		c := b.Cursor()
		for ck, v := c.Seek([]byte{'u'}); ck != nil && ck[0] == 'u'; ck, v = c.Next() {
			var old MemberCodeUse
			if json.Unmarshal(v, &old) != nil || !now.Before(old.Until) {
				drop = append(drop, append([]byte(nil), ck...))
			}
		}
		for _, d := range drop {
			if err := w.del(bMemberCodes, d); err != nil {
				return nil, err
			}
		}
		first = u
		return nil, w.putJSON(bMemberCodes, k, u)
	})
	return first, repeat, err
}

// QueueMemberCodeClaim keeps a claim for HQ until it is uploaded (a code
// accepted while HQ was unreachable).
func (l *Ledger) QueueMemberCodeClaim(ctx context.Context, c MemberCodeUse) error {
	_, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		return nil, w.putJSON(bMemberCodes, append([]byte{'q'}, c.Code...), c)
	})
	return err
}

// QueuedMemberCodeClaims lists up to limit queued claims.
func (l *Ledger) QueuedMemberCodeClaims(limit int) ([]MemberCodeUse, error) {
	var out []MemberCodeUse
	err := l.read(func(tx *bolt.Tx) error {
		c := tx.Bucket(bMemberCodes).Cursor()
		for k, v := c.Seek([]byte{'q'}); k != nil && k[0] == 'q' && len(out) < limit; k, v = c.Next() {
			var cl MemberCodeUse
			if err := json.Unmarshal(v, &cl); err != nil {
				return fmt.Errorf("%w: member-code claim %q unreadable: %v", ErrCorrupt, k, err)
			}
			out = append(out, cl)
		}
		return nil
	})
	return out, err
}

// DropMemberCodeClaims drops claims HQ has taken.
func (l *Ledger) DropMemberCodeClaims(codes []string) error {
	_, err := l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		for _, c := range codes {
			if err := w.del(bMemberCodes, append([]byte{'q'}, c...)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return err
}
