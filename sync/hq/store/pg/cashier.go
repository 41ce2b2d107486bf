package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/staff"
	"posagent/sync/hq"
)

var _ hq.CashierStore = (*Store)(nil)

// PutCashier adds or replaces the cashier (Store, ID).
func (s *Store) PutCashier(ctx context.Context, c staff.Cashier) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO cashiers (store, id, name, role, disabled, pin_hash, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (store, id) DO UPDATE SET name = $3, role = $4, disabled = $5, pin_hash = $6, updated_at = $7`,
		c.Store, c.ID, c.Name, c.Role, c.Disabled, c.PINHash, c.UpdatedAt)
	return err
}

// StoreCashiers lists one store's cashiers by id.
func (s *Store) StoreCashiers(ctx context.Context, store string) ([]staff.Cashier, error) {
	rows, err := s.pool.Query(ctx, `SELECT store, id, name, role, disabled, pin_hash, updated_at
		FROM cashiers WHERE store = $1 ORDER BY id COLLATE "C"`, store)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (staff.Cashier, error) {
		var c staff.Cashier
		err := r.Scan(&c.Store, &c.ID, &c.Name, &c.Role, &c.Disabled, &c.PINHash, &c.UpdatedAt)
		c.UpdatedAt = c.UpdatedAt.UTC()
		return c, err
	})
}
