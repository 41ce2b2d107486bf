package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// KPI aggregates (hq.AggConfig.Fold), written in the ingest transaction.
//
// Locks: every writer of aggregates holds aggLock shared for its
// transaction and a rebuild holds it exclusively, so a rebuild never sees
// half an upload. Facts are read and written under transaction-level
// advisory locks on their ids (class aggFactLock), taken in one statement
// in hash order: two uploads touching the same member or sale take turns,
// others do not wait for each other. Transaction-level locks work through
// PgBouncer in transaction pooling mode (session locks do not).
const (
	aggLock     = 0x706f7361_6b70 // "posakp"
	aggFactLock = 0x6b706966      // "kpif", the class of fact locks
)

// aggLockSQL takes the shared aggregate lock and reads the configuration.
const aggLockSQL = `SELECT config FROM agg_config, pg_advisory_xact_lock_shared($1)`

var aggCols = strings.Join(hq.AggCounterNames[:], ", ")

// wrapSQL adds two bigints with wrap-around, as Go adds int64s.
func wrapSQL(a, b string) string {
	return fmt.Sprintf("((%s::numeric + %s + 27670116110564327424) %% 18446744073709551616 - 9223372036854775808)::int8", a, b)
}

func aggUpsertSQL(table string) string {
	var casts, sets []string
	for i, n := range hq.AggCounterNames {
		casts = append(casts, fmt.Sprintf("$%d::int8[]", i+6))
		sets = append(sets, fmt.Sprintf("%s = %s", n, wrapSQL("a."+n, "excluded."+n)))
	}
	return fmt.Sprintf(`INSERT INTO %s AS a (day, scope, store, cashier, writer, %s)
SELECT * FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], %s)
ON CONFLICT (day, scope, store, cashier, writer) DO UPDATE SET %s`, table, aggCols, strings.Join(casts, ", "), strings.Join(sets, ", "))
}

var (
	aggDaysSQL   = aggUpsertSQL("agg_days")
	aggMonthsSQL = aggUpsertSQL("agg_months")
)

// lockFactsSQL locks ids' facts ($1: the fact kind, a hash salt).
const lockFactsSQL = `SELECT count(pg_advisory_xact_lock($2, h)) FROM
	(SELECT DISTINCT hashtext($1 || u) AS h FROM unnest($3::text[]) AS u ORDER BY h) AS x`

func rowArgs(rs []hq.AggRow, writer string) []any {
	days := make([]int32, len(rs))
	scopes, stores, cashiers, writers := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs))
	cols := make([][]int64, hq.AggCounters)
	for i := range cols {
		cols[i] = make([]int64, len(rs))
	}
	for i, r := range rs {
		days[i], scopes[i], stores[i], cashiers[i], writers[i] = int32(r.Day), r.Scope, r.Store, r.Cashier, writer
		for j, v := range r.N {
			cols[j][i] = v
		}
	}
	args := []any{days, scopes, stores, cashiers, writers}
	for _, c := range cols {
		args = append(args, c)
	}
	return args
}

// readFacts locks (unless locked: a rebuild holds everything) and reads
// the facts of ids from table into put.
func readFacts(ctx context.Context, q querier, table string, ids []string, locked bool, put func(id string, b []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if !locked {
		b.Queue(lockFactsSQL, table, int32(aggFactLock), ids)
	}
	b.Queue(`SELECT id, fact FROM `+table+` WHERE id = ANY($1)`, ids).Query(func(rows pgx.Rows) error {
		var id string
		var fact []byte
		_, err := pgx.ForEachRow(rows, []any{&id, &fact}, func() error { return put(id, fact) })
		return err
	})
	return q.SendBatch(ctx, b).Close()
}

// foldAgg folds es (stored in this transaction by writer, the uploading
// store/till) into the aggregates and queues the writes on out, which the
// caller sends.
func foldAgg(ctx context.Context, q querier, cfg hq.AggConfig, es []entry.Entry, writer string, locked bool, out *pgx.Batch) error {
	if len(es) == 0 {
		return nil
	}
	f := hq.NewAggFacts()
	err := readFacts(ctx, q, "agg_sales", hq.AggSaleIDs(es), locked, func(id string, b []byte) error {
		var s hq.SaleFact
		f.Sales[id] = &s
		return json.Unmarshal(b, &s)
	})
	if err != nil {
		return err
	}
	err = readFacts(ctx, q, "agg_members", hq.AggMemberIDs(es, f.Sales), locked, func(id string, b []byte) error {
		var m hq.MemberFact
		f.Members[id] = &m
		return json.Unmarshal(b, &m)
	})
	if err != nil {
		return err
	}
	r := cfg.Fold(es, "", f)
	var putIDs, delIDs []string
	var puts [][]byte
	for _, id := range r.Sales {
		if s := f.Sales[id]; s.Keep() {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			putIDs, puts = append(putIDs, id), append(puts, b)
		} else {
			delIDs = append(delIDs, id)
		}
	}
	if len(putIDs) > 0 {
		out.Queue(`INSERT INTO agg_sales (id, fact) SELECT * FROM unnest($1::text[], $2::jsonb[])
			ON CONFLICT (id) DO UPDATE SET fact = excluded.fact`, putIDs, puts)
	}
	if len(delIDs) > 0 {
		out.Queue(`DELETE FROM agg_sales WHERE id = ANY($1)`, delIDs)
	}
	putIDs, puts, delIDs = nil, nil, nil
	for _, id := range r.Members {
		if m := f.Members[id]; hq.KeepMember(m) {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			putIDs, puts = append(putIDs, id), append(puts, b)
		} else {
			delIDs = append(delIDs, id)
		}
	}
	if len(putIDs) > 0 {
		out.Queue(`INSERT INTO agg_members (id, fact) SELECT * FROM unnest($1::text[], $2::jsonb[])
			ON CONFLICT (id) DO UPDATE SET fact = excluded.fact`, putIDs, puts)
	}
	if len(delIDs) > 0 {
		out.Queue(`DELETE FROM agg_members WHERE id = ANY($1)`, delIDs)
	}
	days, months := r.Delta.Rows()
	if len(days) > 0 {
		out.Queue(aggDaysSQL, rowArgs(days, writer)...)
		out.Queue(aggMonthsSQL, rowArgs(months, writer)...)
	}
	return nil
}

// foldNow folds es and sends the writes at once (outside ingest's pipeline).
func foldNow(ctx context.Context, q querier, es []entry.Entry, writer string) error {
	var cfg hq.AggConfig
	b := &pgx.Batch{}
	b.Queue(aggLockSQL, int64(aggLock)).QueryRow(func(r pgx.Row) error { return r.Scan(&cfg) })
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	out := &pgx.Batch{}
	if err := foldAgg(ctx, q, cfg, es, writer, false, out); err != nil {
		return err
	}
	if out.Len() == 0 {
		return nil
	}
	return q.SendBatch(ctx, out).Close()
}

func (s *Store) AggConfig(ctx context.Context) (hq.AggConfig, error) {
	var c hq.AggConfig
	err := s.pool.QueryRow(ctx, `SELECT config FROM agg_config`).Scan(&c)
	return c, err
}

// RebuildAggregates recomputes the aggregates from the entries in one
// transaction holding the aggregate lock exclusively (uploads wait).
func (s *Store) RebuildAggregates(ctx context.Context, c hq.AggConfig) error {
	return s.rebuild(ctx, c, false)
}

// buildAggregates builds the aggregates once if no hq has yet (the
// backfill after migration 5).
func (s *Store) buildAggregates(ctx context.Context) error {
	c, err := s.AggConfig(ctx)
	if err != nil {
		return err
	}
	return s.rebuild(ctx, c, true)
}

func (s *Store) rebuild(ctx context.Context, c hq.AggConfig, onlyUnbuilt bool) error {
	return s.retry(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(aggLock)); err != nil {
			return err
		}
		if onlyUnbuilt {
			var built bool
			if err := tx.QueryRow(ctx, `SELECT built FROM agg_config`).Scan(&built); err != nil || built {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `TRUNCATE agg_days, agg_months, agg_sales, agg_members`); err != nil {
			return err
		}
		var after int64
		for {
			rows, err := tx.Query(ctx, `SELECT id, body FROM entries WHERE id > $1 ORDER BY id LIMIT 5000`, after)
			if err != nil {
				return err
			}
			var es []entry.Entry
			var id int64
			var body []byte
			if _, err := pgx.ForEachRow(rows, []any{&id, &body}, func() error {
				after = id
				var e entry.Entry
				es = append(es, e)
				return json.Unmarshal(body, &es[len(es)-1])
			}); err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			out := &pgx.Batch{}
			if err := foldAgg(ctx, tx, c, es, "", true, out); err != nil {
				return err
			}
			if err := tx.SendBatch(ctx, out).Close(); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE agg_config SET config = $1, built = true`, c)
		return err
	})
}

func (s *Store) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	table := "agg_days"
	if months {
		table = "agg_months"
	}
	if scopes == nil {
		scopes = []string{} // NULL would match nothing
	}
	rows, err := s.pool.Query(ctx, `SELECT day, scope, store, cashier, `+aggCols+` FROM `+table+`
		WHERE day BETWEEN $1 AND $2 AND (cardinality($3::text[]) = 0 OR scope = ANY($3))`, int32(from), int32(to), scopes)
	if err != nil {
		return nil, err
	}
	return collectAggRows(rows)
}

func collectAggRows(rows pgx.Rows) ([]hq.AggRow, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.AggRow, error) {
		var a hq.AggRow
		var day int32
		dst := []any{&day, &a.Scope, &a.Store, &a.Cashier}
		for i := range a.N {
			dst = append(dst, &a.N[i])
		}
		err := r.Scan(dst...)
		a.Day = hq.Day(day)
		return a, err
	})
}

func (s *Store) AggDump(ctx context.Context) (*hq.AggDump, error) {
	d := &hq.AggDump{Sales: map[string]*hq.SaleFact{}, Members: map[string]*hq.MemberFact{}}
	// One snapshot for all of it.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT config FROM agg_config`).Scan(&d.Config); err != nil {
			return err
		}
		for _, t := range []struct {
			table string
			dst   *[]hq.AggRow
		}{{"agg_days", &d.Days}, {"agg_months", &d.Months}} {
			rows, err := tx.Query(ctx, `SELECT day, scope, store, cashier, `+aggCols+` FROM `+t.table)
			if err != nil {
				return err
			}
			if *t.dst, err = collectAggRows(rows); err != nil {
				return err
			}
		}
		var id string
		var b []byte
		rows, err := tx.Query(ctx, `SELECT id, fact FROM agg_sales`)
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error {
			var f hq.SaleFact
			d.Sales[id] = &f
			return json.Unmarshal(b, &f)
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, fact FROM agg_members`)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&id, &b}, func() error {
			var f hq.MemberFact
			d.Members[id] = &f
			return json.Unmarshal(b, &f)
		})
		return err
	})
	return d, err
}
