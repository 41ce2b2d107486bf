package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
)

// Self-enrolment buckets, made on first write (a file from before them
// simply has none).
var (
	bPending   = []byte("enrol_pending")  // mobile → Pending
	bCardLinks = []byte("card_links")     // token hash → CardLink
	bCardByMem = []byte("card_links_mem") // member\x00token hash → ""
	bWebEnrol  = []byte("web_enrolments") // member → WebEnrolment
)

var _ hq.EnrolStore = (*Store)(nil)

func bucket(tx *bbolt.Tx, name []byte) (*bbolt.Bucket, error) {
	if tx.Writable() {
		return tx.CreateBucketIfNotExists(name)
	}
	return tx.Bucket(name), nil
}

// UpdatePending implements hq.EnrolStore.
func (s *Store) UpdatePending(ctx context.Context, mobile string, fn func(hq.Pending, bool) (hq.Pending, bool, error)) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bPending)
		if err != nil {
			return err
		}
		var p hq.Pending
		raw := b.Get([]byte(mobile))
		if raw != nil {
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("pending enrolment of %s: %w", mobile, err)
			}
		}
		next, del, err := fn(p, raw != nil)
		if err != nil {
			return err
		}
		if del {
			return b.Delete([]byte(mobile))
		}
		next.Mobile = mobile
		return boltjs.Put(b, []byte(mobile), next)
	})
}

// PurgePending implements hq.EnrolStore: one write transaction, so no
// update of a record can come between judging and deleting it.
func (s *Store) PurgePending(ctx context.Context, expiredBefore, windowBefore time.Time) (int, error) {
	var stale [][]byte
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bPending)
		if b == nil {
			return nil
		}
		if err := b.ForEach(func(k, v []byte) error {
			var p hq.Pending
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("pending enrolment of %s: %w", k, err)
			}
			if p.Stale(expiredBefore, windowBefore) {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(stale), nil
}

// AddCardLink implements hq.EnrolStore.
func (s *Store) AddCardLink(ctx context.Context, l hq.CardLink) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bCardLinks)
		if err != nil {
			return err
		}
		bm, err := bucket(tx, bCardByMem)
		if err != nil {
			return err
		}
		if b.Get([]byte(l.TokenHash)) != nil {
			return fmt.Errorf("card link: %w", hq.ErrConflict)
		}
		if err := boltjs.Put(b, []byte(l.TokenHash), l); err != nil {
			return err
		}
		return bm.Put([]byte(l.Member+"\x00"+l.TokenHash), nil)
	})
}

// CardLink implements hq.EnrolStore.
func (s *Store) CardLink(ctx context.Context, hash string) (hq.CardLink, error) {
	return viewJSON[hq.CardLink](s, bCardLinks, []byte(hash), "card link")
}

// viewJSON reads the JSON record at k of the bucket name; a missing one
// (or no bucket yet: they are made on first write) is hq.ErrNotFound, with
// what saying which record.
func viewJSON[T any](s *Store, name, k []byte, what string) (T, error) {
	var v T
	err := s.db.View(func(tx *bbolt.Tx) error {
		var raw []byte
		if b := tx.Bucket(name); b != nil {
			raw = b.Get(k)
		}
		if raw == nil {
			return fmt.Errorf("%s: %w", what, hq.ErrNotFound)
		}
		return json.Unmarshal(raw, &v)
	})
	return v, err
}

// RevokeCardLinks implements hq.EnrolStore.
func (s *Store) RevokeCardLinks(ctx context.Context, member string, at time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bCardLinks)
		if err != nil {
			return err
		}
		bm, err := bucket(tx, bCardByMem)
		if err != nil {
			return err
		}
		prefix := []byte(member + "\x00")
		c := bm.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			h := k[len(prefix):]
			var l hq.CardLink
			raw := b.Get(h)
			if raw == nil {
				continue
			}
			if err := json.Unmarshal(raw, &l); err != nil {
				return err
			}
			if !l.RevokedAt.IsZero() {
				continue
			}
			l.RevokedAt = at.UTC()
			if err := boltjs.Put(b, h, l); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// AddWebEnrolment implements hq.EnrolStore.
func (s *Store) AddWebEnrolment(ctx context.Context, e hq.WebEnrolment) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := bucket(tx, bWebEnrol)
		if err != nil {
			return err
		}
		if b.Get([]byte(e.Member)) != nil {
			return nil
		}
		return boltjs.Put(b, []byte(e.Member), e)
	})
}

// WebEnrolment implements hq.EnrolStore.
func (s *Store) WebEnrolment(ctx context.Context, member string) (hq.WebEnrolment, error) {
	return viewJSON[hq.WebEnrolment](s, bWebEnrol, []byte(member), "self-enrolment of "+member)
}
