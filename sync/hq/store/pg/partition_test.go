package pg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
)

// latestMigration is the number of the newest migration file, the schema
// version Open leaves.
func latestMigration(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("migrations")
	require.NoError(t, err)
	v := 0
	for _, d := range des {
		n, err := strconv.Atoi(strings.SplitN(d.Name(), "_", 2)[0])
		require.NoError(t, err, d.Name())
		v = max(v, n)
	}
	return v
}

// TestPartitionCost (POSAGENT_HQ_BENCH=1) isolates what partitioning
// changes in ingest from the rest (the KPI fold dominates the ingest
// benchmark and its noise): COPY of 500-row batches by 4 writers into the
// partitioned entries and into an unpartitioned copy, in alternating
// pairs, and the sale lookup by (store, till, seq) a refund makes, across
// 24 monthly partitions, across the recent two, and on one table. Target: COPY into partitions
// within 10% of the plain table (median of pairs). The lookup has no
// target: it plans and opens every partition (a sale's month is not known
// from a refund), so it grows with the months kept; it is printed.
func TestPartitionCost(t *testing.T) {
	if os.Getenv("POSAGENT_HQ_BENCH") != "1" {
		t.Skip("benchmark: set POSAGENT_HQ_BENCH=1")
	}
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	ctx = context.Background()
	p := st.Pool()
	_, err = p.Exec(ctx, `CREATE TABLE plain_entries (LIKE entries INCLUDING ALL)`)
	require.NoError(t, err)
	// 24 months of partitions, as a database that archives yearly holds.
	start := time.Date(time.Now().Year()-2, time.Now().Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := range 24 {
		at := start.AddDate(0, m, 0)
		_, err := p.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS entries_%s PARTITION OF entries FOR VALUES FROM ('%s') TO ('%s')`,
			at.Format("2006_01"), at.Format(time.RFC3339), at.AddDate(0, 1, 0).Format(time.RFC3339)))
		require.NoError(t, err)
	}
	cols := []string{"store", "till", "seq", "kind", "member_id", "at", "received_at", "body"}
	body := []byte(`{"store":"S","kind":"sale","sale":{"due":1000,"points_earned":10,"lines":[{"line_no":1,"sku":"SKU1","qty":1}]}}`)
	const writers, batches, size = 4, 25, 500
	copyAll := func(table string, round int) time.Duration {
		now := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		begin := time.Now()
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					rows := make([][]any, size)
					for i := range rows {
						seq := int64(b*size + i + 1)
						rows[i] = []any{fmt.Sprintf("S%d", round), fmt.Sprintf("T%d", w), seq, "sale", "M1", now, now, body}
					}
					if err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
						_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
						return err
					}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		return time.Since(begin)
	}
	// recent: as a refund looks first, in this and last month's
	// partitions only (pruned when planned).
	since := time.Date(time.Now().Year(), time.Now().Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	lookup := func(table string, recent bool) time.Duration {
		q := `SELECT count(*) FROM ` + table + ` e JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(store, till, seq)
				ON e.store = u.store AND e.till = u.till AND e.seq = u.seq WHERE e.kind = 'sale' AND e.received_at >= $4`
		from := time.Time{}
		if recent {
			from = since
		}
		begin := time.Now()
		for i := range 200 {
			var n int
			require.NoError(t, p.QueryRow(ctx, q, []string{"S0", "S0"}, []string{"T0", "T1"}, []int64{int64(i + 1), int64(i + 2)}, from).Scan(&n))
			require.Equal(t, 2, n)
		}
		return time.Since(begin)
	}
	const pairs = 5
	var copyRatios, lookupP, lookupR, lookupQ []float64
	for r := range pairs {
		var dp, dq time.Duration
		if r%2 == 0 {
			dp, dq = copyAll("entries", r), copyAll("plain_entries", r)
		} else {
			dq, dp = copyAll("plain_entries", r), copyAll("entries", r)
		}
		copyRatios = append(copyRatios, dq.Seconds()/dp.Seconds())
		lp, lr, lq := lookup("entries", false), lookup("entries", true), lookup("plain_entries", false)
		lookupP, lookupR, lookupQ = append(lookupP, lp.Seconds()/200*1000), append(lookupR, lr.Seconds()/200*1000), append(lookupQ, lq.Seconds()/200*1000)
		t.Logf("pair %d: COPY partitioned %.0f rows/s, plain %.0f rows/s; 200 lookups: every partition %v, recent ones %v, plain %v",
			r, writers*batches*size/dp.Seconds(), writers*batches*size/dq.Seconds(), lp.Round(time.Millisecond), lr.Round(time.Millisecond), lq.Round(time.Millisecond))
	}
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	fmt.Printf("partitioned/plain COPY speed %.2f× (median of %d pairs; target ≥ 0.90×); refund's sale lookup %.2f ms over 25 partitions, %.2f ms over the recent ones, %.2f ms on one table (medians)\n",
		median(copyRatios), pairs, median(lookupP), median(lookupR), median(lookupQ))
	require.GreaterOrEqual(t, median(copyRatios), 0.90, "COPY into the partitioned entries is slower than the target")
}

// TestMigrationPartitionsExistingEntries: a database whose entries predate
// migration 7 keeps every row (ids, transaction ids, bodies) in monthly
// partitions, its tills' acks stand, and uploads go on from there.
func TestMigrationPartitionsExistingEntries(t *testing.T) {
	ctx, u := freshSchema(t)
	c, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer c.Close(ctx)
	des, err := os.ReadDir("migrations")
	require.NoError(t, err)
	_, err = c.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	for _, d := range des {
		n, err := strconv.Atoi(strings.SplitN(d.Name(), "_", 2)[0])
		require.NoError(t, err)
		if n >= 7 {
			continue
		}
		sql, err := os.ReadFile(filepath.Join("migrations", d.Name()))
		require.NoError(t, err)
		_, err = c.Exec(ctx, string(sql))
		require.NoError(t, err, d.Name())
		_, err = c.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, n, d.Name())
		require.NoError(t, err)
	}
	_, err = c.Exec(ctx, `INSERT INTO tills (store, till, acked) VALUES ('S1', 'T1', 3);
		INSERT INTO entries (store, till, seq, kind, at, received_at, body) VALUES
		('S1', 'T1', 1, 'topup', '2025-11-30T23:00:00Z', '2025-11-30T23:59:59Z', '{"store":"S1","till":"T1","seq":1,"kind":"topup"}'),
		('S1', 'T1', 2, 'topup', '2025-12-01T00:00:00Z', '2025-12-01T00:00:01Z', '{"store":"S1","till":"T1","seq":2,"kind":"topup"}'),
		('S1', 'T1', 3, 'topup', '2026-02-01T00:00:00Z', '2026-02-03T00:00:00Z', '{"store":"S1","till":"T1","seq":3,"kind":"topup"}')`)
	require.NoError(t, err)
	rows := func() string {
		var s string
		require.NoError(t, c.QueryRow(ctx, `SELECT string_agg(format('%s %s %s/%s/%s %s %s', id, xid, store, till, seq, received_at, body), E'\n' ORDER BY id) FROM entries`).Scan(&s))
		return s
	}
	before := rows()

	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	require.Equal(t, before, rows())
	var parts []string
	r, err := c.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'entries'::regclass ORDER BY 1`)
	require.NoError(t, err)
	parts, err = pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	require.Subset(t, parts, []string{"entries_2025_11", "entries_2025_12", "entries_2026_01", "entries_2026_02", partitionOf(time.Now())})
	var n int
	require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM entries_2025_11`).Scan(&n))
	require.Equal(t, 1, n, "23:59:59 UTC on 30 November is November's")

	acked, err := st.TillAcked(ctx, "S1", "T1")
	require.NoError(t, err)
	require.EqualValues(t, 3, acked)
	a := &hqtest.Till{Store: "S1", Till: "T1", Seq: 3}
	ingest(t, st, received(time.Now(), a.Sale("M1", time.Now(), 100, 1, 0, 0, "")))
	var maxID int64
	require.NoError(t, c.QueryRow(ctx, `SELECT max(id) FROM entries`).Scan(&maxID))
	require.EqualValues(t, 4, maxID, "ids go on from the old table's sequence")
}

func partitionOf(t time.Time) string { return "entries_" + t.UTC().Format("2006_01") }
