package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/staff"
)

// bCashiers holds the store's cashier accounts and their sign-in lockouts:
//
//	'c' id → staff.Cashier (JSON)
//	'l' id → Lockout (JSON); kept apart so a cashier list from HQ never
//	         resets a lockout
//	'v'    → version of the last cashier list applied from HQ
//
// It is made at Open when missing; a posagent without cashiers ignores it,
// so the file keeps its schema.
var bCashiers = []byte("cashiers")

// Lockout is a cashier's run of wrong PINs.
type Lockout struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// Locked reports whether sign-in is refused at now.
func (lo Lockout) Locked(now time.Time) bool { return now.Before(lo.LockedUntil) }

// ErrCashierLocked: too many wrong PINs; sign-in is refused until the
// lockout ends. It is also ErrInvalid.
var ErrCashierLocked error = &subErr{"cashier locked after wrong PINs", ErrInvalid}

func cashierKey(tag byte, id string) []byte { return append([]byte{tag}, id...) }

// ensureCashierBucket makes the cashier bucket of a file written before it
// existed.
func (l *Ledger) ensureCashierBucket() error {
	var have bool
	_ = l.db.View(func(tx *bolt.Tx) error { have = tx.Bucket(bCashiers) != nil; return nil })
	if have {
		return nil
	}
	if err := l.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bCashiers)
		return err
	}); err != nil {
		return storageErr(l.path, fmt.Errorf("ledger: add the cashier bucket to %s: %w", l.path, err))
	}
	return nil
}

// PutCashier adds or replaces a cashier of this till's own (no HQ). A
// cashier that came from HQ is changed at HQ only.
func (l *Ledger) PutCashier(ctx context.Context, c staff.Cashier) error {
	c.Source = staff.SourceLocal
	if c.Store == "" {
		c.Store = l.store
	}
	if c.Store != l.store {
		return wrapErr(ErrInvalid, "cashier %s is of store %q, this ledger is store %q", c.ID, c.Store, l.store)
	}
	if err := c.Validate(); err != nil {
		return wrapErr(ErrInvalid, "%v", err)
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = l.now().UTC()
	}
	_, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		var old staff.Cashier
		if ok, err := getJSON(tx.Bucket(bCashiers), cashierKey('c', c.ID), &old); err != nil {
			return nil, err
		} else if ok && old.Source == staff.SourceHQ {
			return nil, wrapErr(ErrInvalid, "cashier %s comes from HQ; change it there (posagent hq cashier ...)", c.ID)
		}
		return nil, w.putJSON(bCashiers, cashierKey('c', c.ID), c)
	})
	return err
}

// ApplyCashiers replaces the cashiers from HQ with list, the store's whole
// list as HQ holds it now, and records its version. Cashiers HQ no longer
// lists are removed; a till's own cashier with the id of one from HQ is
// replaced by HQ's.
func (l *Ledger) ApplyCashiers(version string, list []staff.Cashier) error {
	seen := map[string]bool{}
	for i := range list {
		c := &list[i]
		c.Source = staff.SourceHQ
		if c.Store != l.store {
			return wrapErr(ErrInvalid, "cashier %s from HQ is of store %q, this ledger is store %q", c.ID, c.Store, l.store)
		}
		if err := c.Validate(); err != nil {
			return wrapErr(ErrInvalid, "from HQ: %v", err)
		}
		if seen[c.ID] {
			return wrapErr(ErrInvalid, "HQ listed cashier %s twice", c.ID)
		}
		seen[c.ID] = true
	}
	_, err := l.submit(context.Background(), func(tx *bolt.Tx, w *writer) (any, error) {
		var drop [][]byte
		c := tx.Bucket(bCashiers).Cursor()
		for k, v := c.Seek([]byte{'c'}); k != nil && k[0] == 'c'; k, v = c.Next() {
			var old staff.Cashier
			if err := json.Unmarshal(v, &old); err != nil {
				return nil, fmt.Errorf("%w: cashier record %q: %v", ErrCorrupt, k, err)
			}
			if old.Source == staff.SourceHQ && !seen[old.ID] {
				drop = append(drop, append([]byte(nil), k...))
			}
		}
		for _, k := range drop {
			if err := w.del(bCashiers, k); err != nil {
				return nil, err
			}
		}
		for _, c := range list {
			if err := w.putJSON(bCashiers, cashierKey('c', c.ID), c); err != nil {
				return nil, err
			}
		}
		return nil, w.put(bCashiers, []byte{'v'}, []byte(version))
	})
	return err
}

// CashiersVersion is the version of the last list applied from HQ ("" none).
func (l *Ledger) CashiersVersion() (string, error) {
	var v string
	err := l.read(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bCashiers); b != nil {
			v = string(b.Get([]byte{'v'}))
		}
		return nil
	})
	return v, err
}

// Cashier returns one cashier; unknown → ErrNotFound.
func (l *Ledger) Cashier(id string) (staff.Cashier, error) {
	var c staff.Cashier
	var ok bool
	err := l.read(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCashiers)
		if b == nil {
			return nil
		}
		var err error
		ok, err = getJSON(b, cashierKey('c', id), &c)
		return err
	})
	if err == nil && !ok {
		err = wrapErr(ErrNotFound, "no cashier %q on this till: check the id, or add the cashier (posagent cashier add, or at HQ)", id)
	}
	return c, err
}

// Cashiers lists every cashier by id.
func (l *Ledger) Cashiers() ([]staff.Cashier, error) {
	var out []staff.Cashier
	err := l.read(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCashiers)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte{'c'}); k != nil && k[0] == 'c'; k, v = c.Next() {
			var cs staff.Cashier
			if err := json.Unmarshal(v, &cs); err != nil {
				return fmt.Errorf("%w: cashier record %q: %v", ErrCorrupt, k, err)
			}
			out = append(out, cs)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// CashierLockout is the cashier's current run of wrong PINs.
func (l *Ledger) CashierLockout(id string) (Lockout, error) {
	var lo Lockout
	err := l.read(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bCashiers); b != nil {
			_, err := getJSON(b, cashierKey('l', id), &lo)
			return err
		}
		return nil
	})
	return lo, err
}

// RecordSignIn records a PIN check durably: a right PIN clears the run, a
// wrong one adds to it and, at maxTries, locks the cashier until now+lockFor
// (and starts a new run). It returns the state after the attempt.
func (l *Ledger) RecordSignIn(ctx context.Context, id string, ok bool, now time.Time, maxTries int, lockFor time.Duration) (Lockout, error) {
	if err := checkID("cashier id", id); err != nil {
		return Lockout{}, err
	}
	res, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		var lo Lockout
		if _, err := getJSON(tx.Bucket(bCashiers), cashierKey('l', id), &lo); err != nil {
			return nil, err
		}
		if ok {
			if lo == (Lockout{}) {
				return lo, nil // nothing to write: most sign-ins
			}
			lo = Lockout{}
			return lo, w.del(bCashiers, cashierKey('l', id))
		}
		lo.Failures++
		if maxTries > 0 && lo.Failures >= maxTries {
			lo = Lockout{LockedUntil: now.Add(lockFor).UTC()}
		}
		return lo, w.putJSON(bCashiers, cashierKey('l', id), lo)
	})
	if err != nil {
		return Lockout{}, err
	}
	return res.(Lockout), nil
}

// ClearLockout ends a cashier's lockout (after a PIN reset).
func (l *Ledger) ClearLockout(ctx context.Context, id string) error {
	_, err := l.submit(ctx, func(tx *bolt.Tx, w *writer) (any, error) {
		if tx.Bucket(bCashiers).Get(cashierKey('l', id)) == nil {
			return nil, nil
		}
		return nil, w.del(bCashiers, cashierKey('l', id))
	})
	return err
}
