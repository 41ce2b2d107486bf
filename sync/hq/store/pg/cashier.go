package pg

import (
	"context"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/staff"
	"posagent/sync/hq"
)

var (
	_ hq.CashierStore     = (*Store)(nil)
	_ hq.AllCashiersStore = (*Store)(nil)
)

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
	rows, err := s.pool.Query(ctx, `SELECT `+cashierCols+` FROM cashiers WHERE store = $1 ORDER BY id COLLATE "C"`, store)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanCashier)
}

// EachStoreCashiers calls fn with each store's cashiers by id, one read
// of the whole table in store order.
func (s *Store) EachStoreCashiers(ctx context.Context, fn func(store string, list []staff.Cashier) error) error {
	rows, err := s.pool.Query(ctx, `SELECT `+cashierCols+` FROM cashiers ORDER BY store COLLATE "C", id COLLATE "C"`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var list []staff.Cashier
	for rows.Next() {
		c, err := scanCashier(rows)
		if err != nil {
			return err
		}
		if len(list) > 0 && list[0].Store != c.Store {
			if err := fn(list[0].Store, list); err != nil {
				return err
			}
			list = nil
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(list) > 0 {
		return fn(list[0].Store, list)
	}
	return nil
}

const cashierCols = `store, id, name, role, disabled, pin_hash, updated_at`

func scanCashier(r pgx.CollectableRow) (staff.Cashier, error) {
	var c staff.Cashier
	err := r.Scan(&c.Store, &c.ID, &c.Name, &c.Role, &c.Disabled, &c.PINHash, &c.UpdatedAt)
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c, err
}
