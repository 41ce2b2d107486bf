package bolt

import (
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"posagent/ledger/staff"
	"posagent/sync/hq"
)

// bCashiers: store\x00id → staff.Cashier. Made on first use, so a file of
// an HQ without cashiers keeps its schema.
var bCashiers = []byte("cashiers")

var _ hq.CashierStore = (*Store)(nil)

// PutCashier adds or replaces the cashier (Store, ID).
func (s *Store) PutCashier(_ context.Context, c staff.Cashier) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bCashiers)
		if err != nil {
			return err
		}
		return b.Put(key(c.Store, c.ID), v)
	})
}

// StoreCashiers lists one store's cashiers by id.
func (s *Store) StoreCashiers(_ context.Context, store string) ([]staff.Cashier, error) {
	var out []staff.Cashier
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bCashiers)
		if b == nil {
			return nil
		}
		prefix := append(key(store), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) > len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var cs staff.Cashier
			if err := json.Unmarshal(v, &cs); err != nil {
				return fmt.Errorf("hq: cashier record %q: %w", k, err)
			}
			out = append(out, cs)
		}
		return nil
	})
	return out, err
}
