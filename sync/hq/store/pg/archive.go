package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/sync/hq"
	"posagent/sync/wire"
)

var _ hq.Archiver = (*Store)(nil)

// archiveLock keys the advisory lock the drop transaction holds.
const archiveLock = 0x61726368 // "arch"

// ArchiveMonths lists the months before before that have a partition.
func (s *Store) ArchiveMonths(ctx context.Context, before time.Time) ([]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'entries'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []time.Time
	for _, n := range names {
		m, err := time.Parse("entries_2006_01", n)
		if err != nil {
			continue // not one of hq's
		}
		if m.Before(before) {
			out = append(out, m)
		}
	}
	return out, nil
}

// archiveRowsSQL reads a partition in export order.
const archiveRowsSQL = `SELECT id, xid, body, received_at FROM %s ORDER BY xid, id`

// keepSalesSQL keeps, of a partition's sales, what a later refund or void
// needs (hq.SaleFact.Keep: member sales and sales that moved points; a
// walk-in sale's reversal needs no body of it, its fact is kept apart), cut
// to the fields the fold reads (hq.AggConfig.See).
const keepSalesSQL = `INSERT INTO archived_sales (store, till, seq, body)
SELECT store, till, seq, jsonb_strip_nulls(jsonb_build_object(
	'store', store, 'till', till, 'seq', seq, 'kind', kind, 'member_id', member_id,
	'cashier', body->'cashier', 'at', body->'at', 'local', body->'local',
	'sale', jsonb_build_object('due', body->'sale'->'due', 'points_earned', body->'sale'->'points_earned',
		'redeem_points', body->'sale'->'redeem_points')))
FROM %s
WHERE kind = 'sale' AND (member_id <> ''
	OR coalesce((body->'sale'->>'points_earned')::bigint, 0) <> 0
	OR coalesce((body->'sale'->>'redeem_points')::bigint, 0) <> 0)
ON CONFLICT (store, till, seq) DO NOTHING`

// ArchiveMonth writes month's partition through write, then in one
// transaction checks that the partition holds exactly the rows written
// (count and xor of ids; nothing else can change since entries are only
// ever inserted), keeps the sale facts later refunds need, records the
// manifest and detaches and drops the partition. A crash or error before
// that commit leaves everything as it was; a rerun writes the file again.
func (s *Store) ArchiveMonth(ctx context.Context, month time.Time, write func(hq.ArchiveSource) (hq.Archive, error)) (hq.Archive, error) {
	month = monthOf(month)
	part := pgx.Identifier{partitionName(month)}.Sanitize()
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName(month)).Scan(&exists); err != nil {
		return hq.Archive{}, err
	}
	if !exists {
		return hq.Archive{}, fmt.Errorf("hq: no entries partition for %s (archived already?)", month.Format("2006-01"))
	}
	ar, err := write(func(fn func(hq.ArchivedEntry, int64) error) error {
		rows, err := s.pool.Query(ctx, fmt.Sprintf(archiveRowsSQL, part))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var x uint64
			var body []byte
			var at time.Time
			if err := rows.Scan(&id, &x, &body, &at); err != nil {
				return err
			}
			e := hq.ArchivedEntry{ExportedEntry: wire.ExportedEntry{ReceivedAt: at.UTC().Format(time.RFC3339Nano)}, Pos: hq.ExportPos{X: x, N: id}}
			if err := json.Unmarshal(body, &e.Entry); err != nil {
				return err
			}
			if err := fn(e, id); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if pgCode(err) == "42P01" { // dropped while being read
		return ar, errArchivedMeanwhile(month)
	}
	if err != nil {
		return ar, err
	}
	manifest, err := json.Marshal(ar)
	if err != nil {
		return ar, err
	}
	for i := 0; ; i++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			// One archiver at a time; another may have dropped the month
			// while this one wrote it.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))`, int32(archiveLock)); err != nil {
				return err
			}
			var there bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName(month)).Scan(&there); err != nil {
				return err
			}
			if !there {
				return errArchivedMeanwhile(month)
			}
			// SHARE: no row can be added to the month from here on.
			if _, err := tx.Exec(ctx, `LOCK TABLE `+part+` IN SHARE MODE`); err != nil {
				return err
			}
			var n, xor int64
			if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(bit_xor(id), 0) FROM `+part).Scan(&n, &xor); err != nil {
				return err
			}
			if n != ar.Entries || xor != ar.IDXor {
				return fmt.Errorf("hq: month %s changed while it was written (%d entries, %d written); nothing was dropped: run hq archive again",
					ar.Month, n, ar.Entries)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(keepSalesSQL, part)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO archives (month, manifest, last_x, last_n) VALUES ($1, $2, $3, $4)`,
				ar.Month, manifest, ar.Last.X, ar.Last.N); err != nil {
				return err
			}
			// Detaching takes the parent exclusively: wait for running
			// uploads and reads, but not forever (they queue behind).
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `ALTER TABLE entries DETACH PARTITION `+part); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+part)
			return err
		})
		// Lock timeout or deadlock: the transaction left nothing; again.
		if c := pgCode(err); (c == "55P03" || c == "40P01") && i < 10 {
			continue
		}
		if pgCode(err) == "42P01" { // dropped by another archiver (catalog seen late)
			err = errArchivedMeanwhile(month)
		}
		break
	}
	s.months.Delete(month)
	return ar, err
}

func errArchivedMeanwhile(month time.Time) error {
	return fmt.Errorf("hq: month %s was archived meanwhile by another hq archive, which recorded it; nothing more to do", month.Format("2006-01"))
}

// Archives lists the archived months' manifests, in archiving order.
func (s *Store) Archives(ctx context.Context) ([]hq.Archive, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, manifest, archived_at FROM archives ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.Archive, error) {
		var a hq.Archive
		var id int64
		var m []byte
		var at time.Time
		if err := r.Scan(&id, &m, &at); err != nil {
			return a, err
		}
		err := json.Unmarshal(m, &a)
		a.ID, a.ArchivedAt = id, at.UTC()
		return a, err
	})
}

// archivedBehind is the export's check that its cursor has passed every
// archived row (those of archives after cur.A, which the reader has
// already taken from files): if not, the reader is told which files hold
// what it has not read and how to continue (hq.ArchivedError).
func (s *Store) archivedBehind(ctx context.Context, cur feedPos, x uint64) error {
	rows, err := s.pool.Query(ctx, `SELECT id, manifest->>'file' FROM archives
		WHERE id > $1 AND (last_x, last_n) > ($2::xid8, $3) ORDER BY id`, cur.A, x, cur.N)
	if err != nil {
		return err
	}
	var files []string
	var last int64
	var id int64
	var file string
	if _, err := pgx.ForEachRow(rows, []any{&id, &file}, func() error {
		files, last = append(files, file), id
		return nil
	}); err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	next := cur
	next.A = last
	return &hq.ArchivedError{Files: files, After: hq.ExportPos{X: x, N: cur.N}, Continue: hq.EncodeCursor(next)}
}

// errArchivedRebuild: a rebuild reads the stored entries only.
func archivedRebuildError(ctx context.Context, tx pgx.Tx) error {
	var months []string
	rows, err := tx.Query(ctx, `SELECT month FROM archives ORDER BY id`)
	if err != nil {
		return err
	}
	if months, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(months) == 0 {
		return err
	}
	return fmt.Errorf("%w: entries of %s are archived to files; a rebuild from the stored entries would drop their figures (hq verify --archive DIR checks the aggregates against the files and the entries)",
		errRebuildArchived, strings.Join(months, ", "))
}

var errRebuildArchived = errors.New("hq: cannot rebuild the KPI aggregates from the stored entries")
