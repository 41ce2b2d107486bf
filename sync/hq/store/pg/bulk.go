package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// Bulk loading of a history kept elsewhere (an older system's sales, or a
// chain-sized history for measuring reports): hours of uploads become
// minutes of COPY. Entries go straight into their month's partition and
// the aggregates are written whole from an hq.AggBuilder that folded the
// same entries, so what a report reads is exactly what ingest would have
// kept (TestBulkLoadMatchesFold checks it against the store's own fold).

// CopyEntries writes es, received at the times given (received[i] for
// es[i]), into the month partitions of entries with one COPY per month, in
// one transaction, making the partitions it needs. It checks nothing an
// upload checks (gaps, duplicates), moves no till's mark and keeps no
// aggregate, totals or enrolment fact: LoadAggregates writes the
// aggregates and totals from the same entries.
func (s *Store) CopyEntries(ctx context.Context, es []entry.Entry, received []time.Time) error {
	if len(es) != len(received) {
		return fmt.Errorf("hq: CopyEntries: %d entries, %d times received", len(es), len(received))
	}
	if err := s.ensurePartitions(ctx, received...); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for lo := 0; lo < len(es); {
			m := monthOf(received[lo])
			hi := lo + 1
			for hi < len(es) && monthOf(received[hi]).Equal(m) {
				hi++
			}
			i := lo
			_, err := tx.CopyFrom(ctx, pgx.Identifier{partitionName(m)}, entryCols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == hi {
					return nil, nil
				}
				e := &es[i]
				body, err := json.Marshal(e)
				row := []any{e.Store, e.Till, int64(e.Seq), string(e.Kind), e.MemberID, e.At, received[i].UTC(), body}
				i++
				return row, err
			}))
			if err != nil {
				return fmt.Errorf("hq: copying entries received in %s: %w", m.Format("2006-01"), err)
			}
			lo = hi
		}
		return nil
	})
}

// LoadAggregates replaces every KPI aggregate row and fact and the entry
// totals with d (hq.AggBuilder's Dump or hq.RecomputeAggregates of the
// stored entries), with COPY, in one transaction holding the aggregate
// lock exclusively, and records d.Config as what they were built with. It
// stores what ingest's fold stores: of a sale only what its refunds and
// voids wrote, of a member the enrolment and its visit records.
func (s *Store) LoadAggregates(ctx context.Context, d *hq.AggDump) error {
	return s.retry(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))`, int32(aggLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `TRUNCATE agg_days, agg_months, agg_sales, agg_members, agg_visits, agg_totals`); err != nil {
			return err
		}
		cols := append([]string{"day", "scope", "store", "cashier", "writer"}, hq.AggCounterNames[:]...)
		for _, t := range []struct {
			table string
			rows  []hq.AggRow
		}{{"agg_days", d.Days}, {"agg_months", d.Months}} {
			i := 0
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(t.rows) {
					return nil, nil
				}
				r := &t.rows[i]
				i++
				row := []any{int32(r.Day), r.Scope, r.Store, r.Cashier, ""}
				for _, v := range r.N {
					row = append(row, v)
				}
				return row, nil
			})); err != nil {
				return fmt.Errorf("hq: loading %s: %w", t.table, err)
			}
		}
		var sales [][]any
		for id, f := range d.Sales {
			if f.HasReversal() {
				b, err := json.Marshal(f.Reversal())
				if err != nil {
					return err
				}
				sales = append(sales, []any{id, b})
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"agg_sales"}, []string{"id", "fact"}, pgx.CopyFromRows(sales)); err != nil {
			return fmt.Errorf("hq: loading agg_sales: %w", err)
		}
		ids := make([]string, 0, len(d.Members))
		for id := range d.Members {
			ids = append(ids, id)
		}
		// Members' heads first, then their visit records, each as one
		// stream: no member's records are held beyond its own.
		i := 0
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"agg_members"}, []string{"id", "fact"}, pgx.CopyFromFunc(func() ([]any, error) {
			for ; i < len(ids); i++ {
				if h := d.Members[ids[i]].Head(); h.Enrolled {
					b, err := json.Marshal(h)
					i++
					return []any{ids[i-1], b}, err
				}
			}
			return nil, nil
		})); err != nil {
			return fmt.Errorf("hq: loading agg_members: %w", err)
		}
		var keys []hq.VisitKey
		var visits [][]hq.Visit
		i, k := 0, 0
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"agg_visits"}, []string{"member", "store", "month", "visits"}, pgx.CopyFromFunc(func() ([]any, error) {
			for k == len(keys) {
				if i == len(ids) {
					return nil, nil
				}
				keys, visits = d.Members[ids[i]].Records()
				i, k = i+1, 0
			}
			k++
			return []any{ids[i-1], keys[k-1].Store, int32(keys[k-1].Month), hq.EncodeVisits(visits[k-1])}, nil
		})); err != nil {
			return fmt.Errorf("hq: loading agg_visits: %w", err)
		}
		b := &pgx.Batch{}
		queueTotals(b, d.Totals, "")
		b.Queue(`UPDATE agg_config SET config = $1, built = true`, d.Config)
		return tx.SendBatch(ctx, b).Close()
	})
}
