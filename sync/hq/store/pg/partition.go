package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/sync/hq"
)

// Entries are partitioned by the month received, UTC (migration 7). hq
// creates the partitions: the current and next month on Open and at every
// prune tick, and any other month an insert finds missing (Ingest retries
// the insert after making it), so no one ever creates one by hand.

// partitionLock keys the advisory lock under which partitions are made, so
// HQ processes sharing the database do not race to create the same one.
const partitionLock = 0x70617274 // "part"

// monthOf is the first instant of t's month, UTC.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// partitionName is month's partition of entries.
func partitionName(month time.Time) string {
	return "entries_" + month.Format("2006_01")
}

// ensurePartitions makes sure the partitions of the months of ts exist.
// Store.months remembers those this process made or found, so the periodic
// check costs no round trip; a month an insert found missing is forgotten
// first (it may have been archived since).
func (s *Store) ensurePartitions(ctx context.Context, ts ...time.Time) error {
	var missing []time.Time
	for _, t := range ts {
		m := monthOf(t)
		if _, ok := s.months.Load(m); !ok {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))`, int32(partitionLock)); err != nil {
			return err
		}
		for _, m := range missing {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName(m)).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF entries FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{partitionName(m)}.Sanitize(), m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339))); err != nil {
				return fmt.Errorf("hq: partition of entries for %s: %w", m.Format("2006-01"), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range missing {
		s.months.Store(m, true)
	}
	return nil
}

// ensureAhead makes the current and next month's partitions.
func (s *Store) ensureAhead(ctx context.Context, now time.Time) error {
	m := monthOf(now)
	return s.ensurePartitions(ctx, m, m.AddDate(0, 1, 0))
}

// noPartition reports an insert that found no partition for its row
// (check_violation, as PostgreSQL reports it).
func noPartition(err error) bool { return pgCode(err) == "23514" }

// partitionMissing makes the partition of t's month after an insert found
// none, and reports whether the insert is worth retrying.
func (s *Store) partitionMissing(ctx context.Context, err error, t time.Time) bool {
	if !noPartition(err) {
		return false
	}
	s.months.Delete(monthOf(t))
	return s.ensurePartitions(ctx, t) == nil
}

// The sale entries refunds and voids reverse are read by id, which does
// not say the month received: a lookup over every partition plans and
// opens each of them. So it looks among the months a refund is likely to
// follow its sale by first (this month and the last, pruned when planned)
// and what archiving kept, and over every month only for the ids not found
// there (a refund long after its sale, or one that came before it).
const (
	recentSalesSQL = `SELECT e.body FROM entries e JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(store, till, seq)
	ON e.store = u.store AND e.till = u.till AND e.seq = u.seq WHERE e.kind = 'sale' AND e.received_at >= $4
	UNION ALL SELECT a.body FROM archived_sales a JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(store, till, seq)
	ON a.store = u.store AND a.till = u.till AND a.seq = u.seq`
	allSalesSQL = `SELECT e.body FROM entries e JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(store, till, seq)
	ON e.store = u.store AND e.till = u.till AND e.seq = u.seq WHERE e.kind = 'sale'`
)

// recentFrom is where recentSalesSQL looks from: the start of last month.
func recentFrom() time.Time { return monthOf(time.Now()).AddDate(0, -1, 0) }

// unseen are the ids (as store, till, seq) whose sale entry is not in
// sales yet.
func unseen(sales map[string]*hq.SaleFact, stores, tills []string, seqs []int64) (ss, ts []string, qs []int64) {
	for i := range seqs {
		if s := sales[fmt.Sprintf("%s/%s/%d", stores[i], tills[i], seqs[i])]; s == nil || !s.Seen {
			ss, ts, qs = append(ss, stores[i]), append(ts, tills[i]), append(qs, seqs[i])
		}
	}
	return ss, ts, qs
}
