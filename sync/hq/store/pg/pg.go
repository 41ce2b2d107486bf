// Package pg is the PostgreSQL HQ store (pgx v5). The schema is migrated on
// Open from embedded, numbered SQL files, in one transaction under an
// advisory lock, recorded in schema_migrations.
//
// The export and changes feeds are ordered by the writing transaction's id
// (xid8). A plain increasing id skips rows: a batch that took ids 10..19 may
// commit after one that took 20..29, and a reader that already moved past 29
// never sees 10..19. Here a reader only takes rows whose transaction id is
// below the xmin of its snapshot (no transaction older than that is still
// running), so nothing can later commit behind its cursor. Transaction ids
// are ordered and compared as numbers (the xid8 column, uint64 in Go), never
// as text, which would misorder them each time they gain a digit.
package pg

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/wire"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options tune the store.
type Options struct {
	// MaxConns is the pool size [the URL's pool_max_conns, else
	// max(16, 4×CPU)]. An upload holds a connection for a few round trips
	// and a WAL flush, waiting more than working, so the pool is larger
	// than the cores (pgxpool's own default, max(4, CPU), kept 64 admitted
	// uploads queueing on 4 connections of an idle server).
	MaxConns int32
	// PruneEvery is how often the member change log drops the entries of
	// members that changed again since (PruneChanges) [10m; <0: never].
	PruneEvery time.Duration
	// IdentityFeed: the member feed carries what uploads change of who a
	// member is (enrolments, tier changes, a new flag), not their balance
	// changes, which tills take from the member look-up (hq serve
	// --member-feed identity). Changes made at HQ always go out.
	IdentityFeed bool
}

// Store is the PostgreSQL HQ store.
type Store struct {
	pool     *pgxpool.Pool
	quick    *pgxpool.Pool      // member look-ups only (quickConns)
	stop     context.CancelFunc // ends the pruner
	done     chan struct{}      // closed when the pruner has ended
	months   sync.Map           // entries partitions known to exist (partition.go)
	identity bool               // Options.IdentityFeed
}

var _ hq.Store = (*Store)(nil)

// Open connects to url (a postgres:// URL or key=value string; add
// search_path=... to use a schema), and migrates the schema.
//
// Any number of HQ processes may share one database, directly or through
// PgBouncer in transaction pooling mode: the store keeps no session state
// (migrations lock with a transaction-level advisory lock, a till's
// uploads serialise on its row in tills) and, unless url sets pgx's
// default_query_exec_mode, runs unnamed statements whose descriptions it
// caches (cache_describe) rather than named prepared statements, which a
// transaction pooler hands to other server connections.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("hq: PostgreSQL URL: %w", err)
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = int32(max(16, 4*runtime.NumCPU()))
	}
	if !setsExecMode(url) {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("hq: PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("hq: PostgreSQL at %s is not reachable: %w%s", cfg.ConnConfig.Host, err, poolerHint(err))
	}
	// Cashiers wait on member look-ups; uploads, which can wait, may hold
	// every connection of the main pool at a busy hour.
	qcfg := cfg.Copy()
	qcfg.MaxConns, qcfg.MinConns = quickConns, 0
	quick, err := pgxpool.NewWithConfig(ctx, qcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("hq: PostgreSQL: %w", err)
	}
	s := &Store{pool: pool, quick: quick, done: make(chan struct{}), identity: o.IdentityFeed}
	fail := func(err error) (*Store, error) {
		quick.Close()
		pool.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return fail(err)
	}
	if err := s.buildAggregates(ctx); err != nil {
		return fail(fmt.Errorf("hq: building KPI aggregates: %w", err))
	}
	if err := s.ensureAhead(ctx, time.Now()); err != nil {
		return fail(err)
	}
	every := o.PruneEvery
	if every == 0 {
		every = 10 * time.Minute
	}
	var pctx context.Context
	pctx, s.stop = context.WithCancel(context.Background())
	go s.pruner(pctx, every)
	return s, nil
}

// pruner runs PruneChanges every interval until ctx ends; a failed round is
// retried at the next one (the log only grows meanwhile).
func (s *Store) pruner(ctx context.Context, every time.Duration) {
	defer close(s.done)
	if every < 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.PruneChanges(ctx)
			_ = s.ensureAhead(ctx, time.Now()) // a failure is retried at the insert that needs it
		}
	}
}

// Pool exposes the connection pool (benchmarks compare against raw COPY).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, f := range files {
		base := strings.TrimPrefix(f, "migrations/")
		n, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with its number", f)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{n, base, string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrationLock keys the advisory lock that lets one HQ migrate at a time.
const migrationLock = 0x706f7361_6871 // "posahq"

func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("hq: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("hq: schema_migrations: %w", err)
		}
		// Every migration not yet recorded is applied, in order, not only
		// those above the highest recorded: one numbered below a migration
		// already applied (from a parallel line of work) must not be skipped.
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return err
		}
		done := map[int]bool{}
		last := ms[len(ms)-1].version
		for _, v := range applied {
			if v > last {
				return fmt.Errorf("hq: database schema version %d is newer than this hq knows (%d); upgrade hq", v, last)
			}
			done[v] = true
		}
		for _, m := range ms {
			if done[m.version] {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("hq: migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
		}
		return ensureFns(ctx, tx)
	})
}

// SchemaVersion is the highest migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) Close() error {
	s.stop()
	<-s.done
	s.SetMessageSettings(nil)
	s.quick.Close()
	s.pool.Close()
	return nil
}

func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retry reruns a transaction that lost a deadlock or serialization race.
func (s *Store) retry(ctx context.Context, fn func(pgx.Tx) error) error {
	for i := 0; ; i++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if c := pgCode(err); (c == "40P01" || c == "40001") && i < 8 {
			continue
		}
		return err
	}
}

func (s *Store) AddCredential(ctx context.Context, c hq.Credential) error {
	rights := c.Rights
	if rights == nil {
		rights = []string{} // the column is NOT NULL
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO credentials (role, id, name, time_zone, token_hash, created_at, rights) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		c.Role, c.ID, c.Name, c.TimeZone, c.TokenHash, c.CreatedAt, rights)
	if pgCode(err) == "23505" {
		return fmt.Errorf("%w: %s %q", hq.ErrConflict, c.Role, c.ID)
	}
	return err
}

func (s *Store) RevokeCredential(ctx context.Context, role, id string) error {
	t, err := s.pool.Exec(ctx, `UPDATE credentials SET revoked_at = coalesce(revoked_at, now()) WHERE role = $1 AND id = $2`, role, id)
	if err == nil && t.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s %q", hq.ErrNotFound, role, id)
	}
	return err
}

const credCols = `role, id, name, time_zone, token_hash, created_at, revoked_at, rights`

func scanCred(r pgx.Row) (hq.Credential, error) {
	var c hq.Credential
	var rev pgtype.Timestamptz
	err := r.Scan(&c.Role, &c.ID, &c.Name, &c.TimeZone, &c.TokenHash, &c.CreatedAt, &rev, &c.Rights)
	if rev.Valid {
		c.RevokedAt = rev.Time
	}
	if len(c.Rights) == 0 {
		c.Rights = nil // as bbolt keeps none
	}
	return c, err
}

// Every request reads its credential and every upload its till's mark:
// functions, so the server keeps their plans (fn.go).
var (
	credByHashSQL = plFn("cred_by_hash", []string{"text"}, "role text, id text, name text, time_zone text, token_hash text, created_at timestamptz, revoked_at timestamptz, rights text[]",
		`SELECT c.role, c.id, c.name, c.time_zone, c.token_hash, c.created_at, c.revoked_at, c.rights FROM credentials c WHERE c.token_hash = $1`)
	tillAckedSQL = plFn("till_acked", []string{"text", "text"}, "acked int8", `SELECT t.acked FROM tills t WHERE t.store = $1 AND t.till = $2`)
)

func (s *Store) CredentialByHash(ctx context.Context, hash string) (hq.Credential, error) {
	c, err := scanCred(s.pool.QueryRow(ctx, credByHashSQL, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, hq.ErrNotFound
	}
	return c, err
}

func (s *Store) Credentials(ctx context.Context) ([]hq.Credential, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+credCols+` FROM credentials ORDER BY role, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.Credential, error) { return scanCred(r) })
}

func (s *Store) TillAcked(ctx context.Context, store, till string) (uint64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, tillAckedSQL, store, till).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(n), err
}

// Ingest stores a batch in one transaction of three round trips, the same
// as a bare BEGIN/COPY/COMMIT: BEGIN and the till lock in one pipeline, the
// COPY, and the acks, balances and COMMIT in another. The rows and balance
// deltas are made before the transaction for the usual upload, the one
// that starts right after what HQ acked.
func (s *Store) Ingest(ctx context.Context, b hq.Batch) (wire.Ack, error) {
	ctx = s.trigContext(ctx) // reminder settings for trigIngest (triggers.go)
	var pre *prepared
	if b.First > 0 {
		p, err := prepare(b, b.First-1)
		if err != nil {
			return wire.Ack{}, err
		}
		pre = &p
	}
	settle := false
	for i := 0; ; i++ {
		ack, err := s.ingest(ctx, b, pre, settle)
		switch c := pgCode(err); {
		case (c == "40P01" || c == "40001") && i < 8:
			continue
		case c == "22003" && i < 8:
			// A balance would leave bigint: again, reading the balances
			// first and setting aside the entries that do not fit.
			settle = true
			continue
		case i < 8 && s.partitionMissing(ctx, err, b.ReceivedAt):
			continue
		}
		return ack, err
	}
}

func (s *Store) ingest(ctx context.Context, b hq.Batch, pre *prepared, settle bool) (wire.Ack, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return wire.Ack{}, err
	}
	defer c.Release()
	conn := c.Conn()
	ack, err := ingest(ctx, conn, b, true, pre, settle, s.identity)
	if err != nil && conn.PgConn().TxStatus() != 'I' {
		// The transaction failed before or at its COMMIT. A connection that
		// cannot even roll back is closed, so the pool drops it.
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			_ = conn.Close(ctx)
		}
	}
	return ack, err
}

// prepared is what a batch writes when HQ has acked its till up to acked.
type prepared struct {
	acked uint64
	es    []entry.Entry // the entries stored
	rows  [][]any       // for COPY into entries
	ds    []hq.Delta
	dead  []hq.DeadLetter
	over  bool // ds for a member sum beyond int64: settle the batch
}

func prepare(b hq.Batch, acked uint64) (prepared, error) {
	es, dead := hq.Fresh(b, acked)
	rows, err := entryRows(es, b.ReceivedAt)
	if err != nil {
		return prepared{}, err
	}
	ds, err := hq.Deltas(es)
	over := errors.Is(err, hq.ErrOverflow)
	if over {
		err = nil
	}
	return prepared{acked: acked, es: es, rows: rows, ds: ds, dead: dead, over: over}, err
}

// IngestTx does Ingest's work inside tx, which the caller commits. Exported
// so tests can hold an ingest transaction open.
func IngestTx(ctx context.Context, tx pgx.Tx, b hq.Batch) (wire.Ack, error) {
	return ingest(ctx, tx, b, false, nil, false, false)
}

// querier is what ingest needs of a connection or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// ingest stores b through q. own: q is a bare connection, and ingest
// begins and commits the transaction itself, pipelined with its statements.
// pre, if made for the acked position found, saves making it again.
// settle: read the members' balances first and set aside the entries that
// would take one beyond bigint (as when pre's deltas overflow). identity:
// only identity changes go out with the feed (Options.IdentityFeed).
func ingest(ctx context.Context, q querier, b hq.Batch, own bool, pre *prepared, settle, identity bool) (wire.Ack, error) {
	var acked int64
	first := &pgx.Batch{}
	if own {
		first.Queue("BEGIN")
	}
	var aggCfg hq.AggConfig
	first.Queue(beginUploadSQL, int32(feedLock), b.Store, b.Till, int32(aggLock)).QueryRow(func(r pgx.Row) error {
		return r.Scan(&acked, &aggCfg)
	})
	if err := q.SendBatch(ctx, first).Close(); err != nil {
		return wire.Ack{}, err
	}
	if b.First > uint64(acked)+1 {
		if own {
			if _, err := q.Exec(ctx, "ROLLBACK"); err != nil {
				return wire.Ack{}, err
			}
		}
		return wire.Ack{}, &hq.GapError{Expected: uint64(acked) + 1}
	}
	dup := b.Last <= uint64(acked)
	var dead []hq.DeadLetter
	if dup || b.First <= uint64(acked) {
		// Dead letters of earlier uploads of this range belong in the ack too.
		rows, err := q.Query(ctx, `SELECT store, till, seq, reason FROM dead_letters
			WHERE store = $1 AND till = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq`, b.Store, b.Till, int64(b.First), int64(b.Last))
		if err != nil {
			return wire.Ack{}, err
		}
		dead, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.DeadLetter, error) {
			var d hq.DeadLetter
			var seq int64
			err := r.Scan(&d.Store, &d.Till, &seq, &d.Reason)
			d.Seq = uint64(seq)
			return d, err
		})
		if err != nil {
			return wire.Ack{}, err
		}
	}
	if dup {
		if own {
			if _, err := q.Exec(ctx, "COMMIT"); err != nil {
				return wire.Ack{}, err
			}
		}
		return hq.AckFor(b, dead, true), nil
	}
	if pre == nil || pre.acked != uint64(acked) {
		p, err := prepare(b, uint64(acked))
		if err != nil {
			return wire.Ack{}, err
		}
		pre = &p
	}
	if settle || pre.over {
		p, err := settleBatch(ctx, q, b, uint64(acked))
		if err != nil {
			return wire.Ack{}, err
		}
		pre = &p
	}
	if err := copyRows(ctx, q, pre.rows); err != nil {
		return wire.Ack{}, err
	}
	fresh := pre.dead
	last := &pgx.Batch{}
	// Reminder indexes and messages, in this transaction (triggers.go).
	// The read the messages need goes in one round trip with the fold's.
	reads := &pgx.Batch{}
	finish, err := trigQueue(ctx, pre, reads, last)
	if err != nil {
		return wire.Ack{}, err
	}
	// The KPI aggregates change with the entries, in this transaction.
	agg := &pgx.Batch{}
	if err := foldAgg(ctx, q, aggCfg, pre.es, b.Store+"/"+b.Till, false, reads, agg); err != nil {
		return wire.Ack{}, err
	}
	if err := finish(); err != nil {
		return wire.Ack{}, err
	}
	// The messages go ahead of the aggregate writes, so the locks are taken
	// in one order whatever the message settings (trigIngest).
	last.QueuedQueries = append(last.QueuedQueries, agg.QueuedQueries...)
	if err := queueFraud(last, b.Till, pre.es); err != nil {
		return wire.Ack{}, err
	}
	for _, d := range fresh {
		last.Queue(`INSERT INTO dead_letters (store, till, seq, reason, raw, received_at) VALUES ($1,$2,$3,$4,$5,$6)`,
			d.Store, d.Till, int64(d.Seq), d.Reason, d.Raw, d.ReceivedAt)
	}
	dead = append(dead, fresh...)
	var feed []string // nil: every member changed
	if identity {
		feed = []string{}
		for _, d := range pre.ds {
			if d.Identity() {
				feed = append(feed, d.MemberID)
			}
		}
	}
	if err := applyDeltas(ctx, q, last, pre.ds, feed, &tillAck{b.Store, b.Till, int64(b.Last)}, own); err != nil {
		return wire.Ack{}, err
	}
	return hq.AckFor(b, dead, false), nil
}

// beginUploadSQL starts an upload's transaction: the feed lock and the xid
// (feedWriterSQL), the till's row locked (uploads of one till go one at a
// time) and its acked mark read, the aggregate lock taken shared and the
// aggregate configuration read (aggLockSQL).
var beginUploadSQL = plBlock("begin_upload", []string{"int4", "text", "text", "int4"}, "o_acked int8, o_config jsonb", `DECLARE
	a int8;
	c jsonb;
BEGIN
	PERFORM pg_advisory_xact_lock_shared($1, hashtext(current_schema())), pg_current_xact_id();
	INSERT INTO tills AS t (store, till) VALUES ($2, $3)
		ON CONFLICT (store, till) DO UPDATE SET acked = t.acked RETURNING t.acked INTO a;
	SELECT config INTO c FROM agg_config, pg_advisory_xact_lock_shared($4, hashtext(current_schema()));
	RETURN QUERY SELECT a, c;
END`)

var ackTillSQL = plFn("ack_till", []string{"text", "text", "int8"}, "", `UPDATE tills SET acked = $3 WHERE store = $1 AND till = $2`)

// settleBatch locks the balances of the batch's members (in id order, as
// the balance update does) and prepares b with the entries that would take
// one beyond bigint turned into dead letters (hq.Settle).
func settleBatch(ctx context.Context, q querier, b hq.Batch, acked uint64) (prepared, error) {
	ids := hq.BalanceMembers(b, acked)
	rows, err := q.Query(ctx, `SELECT id, points, stored_value FROM members WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids)
	if err != nil {
		return prepared{}, err
	}
	bal := map[string]hq.Balance{}
	var id string
	var v hq.Balance
	if _, err := pgx.ForEachRow(rows, []any{&id, &v.Points, &v.StoredValue}, func() error {
		bal[id] = v
		return nil
	}); err != nil {
		return prepared{}, err
	}
	settled, _ := hq.Settle(b, acked, bal)
	return prepare(settled, acked)
}

var entryCols = []string{"store", "till", "seq", "kind", "member_id", "at", "received_at", "body"}

// entryRows are es as COPY rows for entries, received at at.
func entryRows(es []entry.Entry, at time.Time) ([][]any, error) {
	rows := make([][]any, len(es))
	for i := range es {
		e := &es[i]
		body, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		rows[i] = []any{e.Store, e.Till, int64(e.Seq), string(e.Kind), e.MemberID, e.At, at, body}
	}
	return rows, nil
}

func copyRows(ctx context.Context, q querier, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := q.CopyFrom(ctx, pgx.Identifier{"entries"}, entryCols, pgx.CopyFromRows(rows))
	return err
}

// balanceSQL adds every member's balance deltas in one statement (the flag
// rule is hq.Member.ApplyBalances's) and logs the members changed
// (logChangesSQL): all of them with $10 null, otherwise those among $10
// and the newly flagged, the others keeping their feed position
// (members.xid). It sets the data of members whose only structural change
// is an enrolment ($8 ids, $9 the enrolment's data; hq.Member.ApplyStructure:
// a tier change already seen keeps its tier) and, given a till ($5, $6),
// sets its acked mark ($7): one call and round trip where there were up
// to five and two.
var balanceSQL = plBlock("balances", []string{"text[]", "int8[]", "int8[]", "timestamptz[]", "text", "text", "int8", "text[]", "jsonb[]", "text[]"}, "", `BEGIN
WITH up AS (INSERT INTO members AS m (id, points, stored_value, flagged, last_sale)
SELECT id, p, sv, p < 0 OR sv < 0, ls FROM unnest($1::text[], $2::int8[], $3::int8[], $4::timestamptz[]) AS u(id, p, sv, ls)
ON CONFLICT (id) DO UPDATE SET
	points = m.points + excluded.points,
	stored_value = m.stored_value + excluded.stored_value,
	flagged = m.flagged OR m.points + excluded.points < 0 OR m.stored_value + excluded.stored_value < 0,
	last_sale = greatest(m.last_sale, excluded.last_sale),
	xid = CASE WHEN $10 IS NULL OR m.id = ANY($10) OR NOT m.flagged AND (m.points + excluded.points < 0 OR m.stored_value + excluded.stored_value < 0)
		THEN pg_current_xact_id() ELSE m.xid END
RETURNING m.id, m.xid = pg_current_xact_id() AS fed)
INSERT INTO member_changes (ids) SELECT array_agg(id) FROM up WHERE fed HAVING count(*) > 0
	ON CONFLICT (xid) DO UPDATE SET ids = member_changes.ids || excluded.ids;
IF cardinality($8) > 0 THEN
	UPDATE members m SET data = CASE WHEN m.data IS NOT NULL AND m.tier_at IS NOT NULL
		THEN u.data || jsonb_build_object('tier', CASE WHEN jsonb_typeof(m.data->'tier') = 'string' THEN m.data->'tier' ELSE '""'::jsonb END)
		ELSE u.data END
	FROM unnest($8::text[], $9::jsonb[]) AS u(id, data) WHERE m.id = u.id;
END IF;
IF $5 IS NOT NULL THEN
	UPDATE tills SET acked = $7 WHERE store = $5 AND till = $6;
END IF;
END`)

// The last pipeline's writes in one call (mergeCalls, in applyDeltas): the
// reminder indexes, the aggregates, the fraud facts and the balances.
var _ = func() bool {
	plCombine("ingest_tail", msgIndexSQL, aggWriteSQL, fraudSQL, balanceSQL)
	return true
}()

// tillAck is the acked mark an upload sets.
type tillAck struct {
	store, till string
	acked       int64
}

var (
	structuralReadSQL = plFn("structural_read", []string{"text[]"}, "id text, data jsonb, tier_at timestamptz, coupons jsonb, flagged bool",
		`SELECT id, data, tier_at, coupons, flagged FROM members WHERE id = ANY($1) ORDER BY id`)
	// A member not in the feed ($6 false) keeps its feed position.
	structuralWriteSQL = plFn("structural_write", []string{"text[]", "jsonb[]", "timestamptz[]", "jsonb[]", "bool[]", "bool[]"}, "",
		`UPDATE members SET data = u.data, tier_at = u.tier_at, coupons = u.coupons, flagged = u.flagged,
			xid = CASE WHEN u.fed THEN pg_current_xact_id() ELSE members.xid END
		FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[], $4::jsonb[], $5::bool[], $6::bool[]) AS u(id, data, tier_at, coupons, flagged, fed)
		WHERE members.id = u.id`)
)

// applyDeltas sends batch (queued by the caller) with the balance update
// and, for members whose data, tier or coupons change, reads them back
// (locked by the update), merges in Go and writes them. feed, if not nil:
// the only members whose change goes out with the feed (balanceSQL). ack, if not nil:
// the till's acked mark to set. commit: end the transaction in the last
// pipeline.
func applyDeltas(ctx context.Context, q querier, batch *pgx.Batch, ds []hq.Delta, feed []string, ack *tillAck, commit bool) error {
	ids := make([]string, len(ds))
	pts := make([]int64, len(ds))
	svs := make([]int64, len(ds))
	lss := make([]pgtype.Timestamptz, len(ds))
	var structural []string
	byID := map[string]hq.Delta{}
	enrolIDs, enrolData := []string{}, [][]byte{}
	for i, d := range ds {
		ids[i], pts[i], svs[i] = d.MemberID, d.Points, d.StoredValue
		lss[i] = pgtype.Timestamptz{Time: d.LastSale, Valid: !d.LastSale.IsZero()}
		switch {
		case d.Enrol != nil && d.Tier == "" && len(d.CouponsIssued)+len(d.CouponsUsed)+len(d.CouponsRestored) == 0:
			// An enrolment alone: balanceSQL sets the data, without the
			// read back and the round trip below.
			b, err := json.Marshal(d.Enrol)
			if err != nil {
				return err
			}
			enrolIDs, enrolData = append(enrolIDs, d.MemberID), append(enrolData, b)
		case d.Structural():
			structural = append(structural, d.MemberID)
			byID[d.MemberID] = d
		}
	}
	switch {
	case len(ds) > 0 && ack != nil:
		batch.Queue(balanceSQL, ids, pts, svs, lss, ack.store, ack.till, ack.acked, enrolIDs, enrolData, feed)
	case len(ds) > 0:
		batch.Queue(balanceSQL, ids, pts, svs, lss, nil, nil, nil, enrolIDs, enrolData, feed)
	case ack != nil:
		batch.Queue(ackTillSQL, ack.store, ack.till, ack.acked)
	}
	var ms []hq.Member
	if len(structural) > 0 {
		batch.Queue(structuralReadSQL, structural).Query(func(rows pgx.Rows) error {
			var err error
			ms, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.Member, error) {
				var m hq.Member
				var tierAt pgtype.Timestamptz
				var coupons []byte
				err := r.Scan(&m.ID, &m.Data, &tierAt, &coupons, &m.Flagged)
				if tierAt.Valid {
					m.TierAt = tierAt.Time
				}
				if err == nil {
					err = json.Unmarshal(coupons, &m.Coupons)
				}
				return m, err
			})
			return err
		})
	} else if commit {
		batch.Queue("COMMIT")
	}
	mergeCalls(batch)
	if err := q.SendBatch(ctx, batch).Close(); err != nil {
		return err
	}
	if len(structural) == 0 {
		return nil
	}
	data := make([][]byte, len(ms))
	tiers := make([]pgtype.Timestamptz, len(ms))
	coupons := make([][]byte, len(ms))
	flags := make([]bool, len(ms))
	fed := make([]bool, len(ms))
	mids := make([]string, len(ms))
	for i := range ms {
		m := &ms[i]
		m.ApplyStructure(byID[m.ID])
		var err error
		if data[i], err = json.Marshal(m.Data); err != nil {
			return err
		}
		if m.Coupons == nil {
			m.Coupons = []hq.CouponState{}
		}
		if coupons[i], err = json.Marshal(m.Coupons); err != nil {
			return err
		}
		mids[i], flags[i] = m.ID, m.Flagged
		// A new flag was logged by balanceSQL, which moved members.xid.
		fed[i] = feed == nil || slices.Contains(feed, m.ID)
		tiers[i] = pgtype.Timestamptz{Time: m.TierAt, Valid: !m.TierAt.IsZero()}
	}
	end := &pgx.Batch{}
	end.Queue(structuralWriteSQL, mids, data, tiers, coupons, flags, fed)
	if commit {
		end.Queue("COMMIT")
	}
	return q.SendBatch(ctx, end).Close()
}

func (s *Store) DeadLetters(ctx context.Context, all bool) ([]hq.DeadLetter, error) {
	rows, err := s.pool.Query(ctx, `SELECT store, till, seq, reason, raw, received_at, resolved_at FROM dead_letters
		WHERE $1 OR resolved_at IS NULL ORDER BY received_at, store, till, seq`, all)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.DeadLetter, error) {
		var d hq.DeadLetter
		var seq int64
		var res pgtype.Timestamptz
		err := r.Scan(&d.Store, &d.Till, &seq, &d.Reason, &d.Raw, &d.ReceivedAt, &res)
		d.Seq = uint64(seq)
		if res.Valid {
			d.ResolvedAt = res.Time
		}
		return d, err
	})
}

func (s *Store) ResolveDeadLetter(ctx context.Context, store, till string, seq uint64, e entry.Entry, at time.Time) error {
	if err := s.ensurePartitions(ctx, at); err != nil {
		return err
	}
	return s.retry(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, feedWriterSQL, int32(feedLock)); err != nil {
			return err
		}
		t, err := tx.Exec(ctx, `UPDATE dead_letters SET resolved_at = $4 WHERE store = $1 AND till = $2 AND seq = $3 AND resolved_at IS NULL`,
			store, till, int64(seq), at)
		if err != nil {
			return err
		}
		if t.RowsAffected() == 0 {
			return fmt.Errorf("%w: open dead letter %s/%s/%d", hq.ErrNotFound, store, till, seq)
		}
		rows, err := entryRows([]entry.Entry{e}, at)
		if err != nil {
			return err
		}
		if err := copyRows(ctx, tx, rows); err != nil {
			return err
		}
		ds, err := hq.Deltas([]entry.Entry{e})
		if err != nil {
			return err
		}
		if err := foldNow(ctx, tx, []entry.Entry{e}, store+"/"+till); err != nil {
			return err
		}
		if err := fraudNow(ctx, tx, till, []entry.Entry{e}); err != nil {
			return err
		}
		b := &pgx.Batch{}
		// Reminder indexes and messages, as at ingest (triggers.go).
		if err := trigIngest(s.trigContext(ctx), tx, &prepared{es: []entry.Entry{e}, ds: ds}, b); err != nil {
			return err
		}
		err = applyDeltas(ctx, tx, b, ds, nil, nil, false)
		if pgCode(err) == "22003" { // rolled back: it stays a dead letter
			err = fmt.Errorf("%w: %v", hq.ErrOverflow, err)
		}
		return err
	})
}

// feedPos is a position in an xid-ordered feed: the transaction id and the
// row key within it. The id travels as decimal text, but the queries order
// and compare the xid8 column itself and Go compares it as a uint64, so
// positions compare the way rows are ordered: as numbers, never as text
// (where "100000003" sorts before "99999990").
type feedPos struct {
	X string `json:"x"` // xid8 as decimal text
	K string `json:"k,omitempty"`
	N int64  `json:"n,omitempty"`
	A int64  `json:"a,omitempty"` // export: archives read from files (archivedBehind)
}

// norm checks the position's transaction id ("" is the start), writes it
// in canonical form and returns it.
func (p *feedPos) norm() (uint64, error) {
	if p.X == "" {
		p.X = "0"
	}
	x, err := strconv.ParseUint(p.X, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w (xid %q)", hq.ErrCursor, p.X)
	}
	p.X = strconv.FormatUint(x, 10)
	return x, nil
}

func xidPos(x uint64) string { return strconv.FormatUint(x, 10) }

const memberCols = `id, data, points, stored_value, flagged, last_sale, tier_at, coupons, reviews`

func scanMember(r pgx.Row, extra ...any) (hq.Member, error) {
	var m hq.Member
	var ls, ta pgtype.Timestamptz
	var coupons, reviews []byte
	err := r.Scan(append([]any{&m.ID, &m.Data, &m.Points, &m.StoredValue, &m.Flagged, &ls, &ta, &coupons, &reviews}, extra...)...)
	if err != nil {
		return m, err
	}
	if ls.Valid {
		m.LastSale = ls.Time.UTC()
	}
	if ta.Valid {
		m.TierAt = ta.Time.UTC()
	}
	if err := json.Unmarshal(reviews, &m.Reviews); err != nil {
		return m, err
	}
	return m, json.Unmarshal(coupons, &m.Coupons)
}

// logChangesSQL records the members a transaction changed (one row per
// transaction, so a feed position (xid, id) orders them).
var logChangesSQL = plFn("log_changes", []string{"text[]"}, "", `INSERT INTO member_changes (ids) VALUES ($1)
	ON CONFLICT (xid) DO UPDATE SET ids = member_changes.ids || excluded.ids`)

// pruneSQL rewrites up to $2 member_changes rows from xid $1 on (below the
// snapshot's xmin, so no writer still adds to them) to the members whose last
// change they are, and deletes the rows left empty. It returns the last xid
// it looked at and how many rows it read. Safe while the feed is read: an id
// dropped at x belongs to a member whose last change y ≠ x has its own row,
// where the feed hands it out.
const pruneSQL = `WITH c AS (
	SELECT xid, ids FROM member_changes
	WHERE xid > $1::xid8 AND xid < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY member_changes.xid LIMIT $2
), live AS (
	SELECT c.xid, cardinality(c.ids) AS n,
		coalesce(array_agg(DISTINCT u.id) FILTER (WHERE m.xid = c.xid), '{}') AS ids
	FROM c CROSS JOIN LATERAL unnest(c.ids) AS u(id) LEFT JOIN members m ON m.id = u.id
	GROUP BY c.xid, c.ids
), gone AS (
	DELETE FROM member_changes mc USING live
	WHERE mc.xid = live.xid AND cardinality(live.ids) = 0
), kept AS (
	UPDATE member_changes mc SET ids = live.ids FROM live
	WHERE mc.xid = live.xid AND cardinality(live.ids) BETWEEN 1 AND live.n - 1
)
SELECT coalesce(max(xid), $1::xid8), count(*) FROM c`

// pruneRows is how many member_changes rows one prune transaction reads
// (tests make it small to page across many transactions).
var pruneRows = 500

// PruneChanges shrinks the member change log to each member's last change,
// so a new store's first pull reads about one entry a member however long
// HQ has run. It works in short transactions (a long one would hold the
// feeds back) and returns how many log rows it read. Open runs it every
// Options.PruneEvery.
func (s *Store) PruneChanges(ctx context.Context) (int, error) {
	rows := pruneRows
	var after uint64 // xid8, as in the feeds
	total := 0
	for {
		var last uint64
		var n int
		if err := s.pool.QueryRow(ctx, pruneSQL, after, rows).Scan(&last, &n); err != nil {
			return total, fmt.Errorf("hq: prune member changes: %w", err)
		}
		total += n
		if n < rows {
			return total, nil
		}
		after = last
	}
}

func (s *Store) Export(ctx context.Context, cursor string, limit int) (wire.ExportPage, error) {
	var cur feedPos
	if err := hq.DecodeCursor(cursor, &cur); err != nil {
		return wire.ExportPage{}, err
	}
	from, err := cur.norm()
	if err != nil {
		return wire.ExportPage{}, err
	}
	if err := s.archivedBehind(ctx, cur, from); err != nil {
		return wire.ExportPage{}, err
	}
	var p wire.ExportPage
	horizon, err := s.feedHorizon(ctx)
	if err != nil {
		return p, err
	}
	// The xid8 column itself in the select list, the order and the
	// comparison (pgx maps it to uint64): rows and cursor both go by number.
	rows, err := s.pool.Query(ctx, `SELECT e.id, e.xid, e.body, e.received_at FROM entries e
		WHERE (e.xid, e.id) > ($1::xid8, $2) AND e.xid < $4::xid8
		ORDER BY e.xid, e.id LIMIT $3`, from, cur.N, limit+1, horizon)
	if err != nil {
		return p, err
	}
	defer rows.Close()
	for rows.Next() {
		if len(p.Entries) == limit {
			p.More = true
			break
		}
		var id int64
		var x uint64
		var body []byte
		var at time.Time
		if err := rows.Scan(&id, &x, &body, &at); err != nil {
			return p, err
		}
		var e wire.ExportedEntry
		if err := json.Unmarshal(body, &e.Entry); err != nil {
			return p, err
		}
		e.ReceivedAt = at.UTC().Format(time.RFC3339Nano)
		p.Entries = append(p.Entries, e)
		cur = feedPos{X: xidPos(x), N: id, A: cur.A}
	}
	if err := rows.Err(); err != nil {
		return p, err
	}
	p.Cursor = hq.EncodeCursor(cur)
	return p, nil
}

func (s *Store) Scan(ctx context.Context, fn func(hq.Stored) error) error {
	rows, err := s.pool.Query(ctx, `SELECT body, received_at FROM entries ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		var x hq.Stored
		if err := rows.Scan(&body, &x.ReceivedAt); err != nil {
			return err
		}
		if err := json.Unmarshal(body, &x.Entry); err != nil {
			return err
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s *Store) Member(ctx context.Context, id string) (hq.Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `SELECT `+memberCols+` FROM members WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("%w: member %q", hq.ErrNotFound, id)
	}
	return m, err
}

// quickConns is the look-ups' own pool: a till's look-up waits for at
// most the other look-ups, never for the uploads in flight.
const quickConns = 4

// MemberLookup reads the member and the store's marks in one statement,
// so under one snapshot: an upload sets its till's mark in the transaction
// that changes the balances. It runs on its own connections (quickConns).
func (s *Store) MemberLookup(ctx context.Context, store, id string) (wire.MemberLookup, error) {
	var acked map[string]int64
	m, err := scanMember(s.quick.QueryRow(ctx, `SELECT `+memberCols+`,
		(SELECT coalesce(jsonb_object_agg(till, acked), '{}') FROM tills WHERE store = $2) FROM members WHERE id = $1`, id, store), &acked)
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.MemberLookup{}, fmt.Errorf("%w: member %q", hq.ErrNotFound, id)
	}
	if err != nil {
		return wire.MemberLookup{}, err
	}
	l := wire.MemberLookup{Member: m.State(), Acked: make(map[string]uint64, len(acked))}
	for t, a := range acked {
		l.Acked[t] = uint64(a)
	}
	return l, nil
}

func (s *Store) Members(ctx context.Context, fn func(hq.Member) error) error {
	return s.members(ctx, `SELECT `+memberCols+` FROM members ORDER BY id`, fn)
}

func (s *Store) FlaggedMembers(ctx context.Context) ([]hq.Member, error) {
	var out []hq.Member
	err := s.members(ctx, `SELECT `+memberCols+` FROM members WHERE flagged ORDER BY id`, func(m hq.Member) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

func (s *Store) ReviewMember(ctx context.Context, id string, r hq.Review) (hq.Member, error) {
	var m hq.Member
	err := s.retry(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, feedWriterSQL, int32(feedLock)); err != nil {
			return err
		}
		var err error
		// The row lock keeps an ingest from changing the member between the
		// check and the write.
		m, err = scanMember(tx.QueryRow(ctx, `SELECT `+memberCols+` FROM members WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: member %q", hq.ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if err := m.Review(r); err != nil {
			return err
		}
		reviews, err := json.Marshal(m.Reviews)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE members SET flagged = false, reviews = $2, xid = pg_current_xact_id() WHERE id = $1`, id, reviews)
		b.Queue(logChangesSQL, []string{id})
		return tx.SendBatch(ctx, b).Close()
	})
	return m, err
}

// members calls fn for every member the query selects (memberCols).
func (s *Store) members(ctx context.Context, query string, fn func(hq.Member) error) error {
	rows, err := s.pool.Query(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s *Store) ApplyDeltas(ctx context.Context, ds []hq.Delta) error {
	return s.retry(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(feedWriterSQL, int32(feedLock))
		return applyDeltas(ctx, tx, b, ds, nil, nil, false)
	})
}

func (s *Store) PublishProgram(ctx context.Context, p wire.ProgramVersion) error {
	if p.Version <= 0 {
		return fmt.Errorf("hq: program version %d must be ≥ 1", p.Version)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One publisher at a time, so versions commit in order.
		if _, err := tx.Exec(ctx, `LOCK TABLE programs IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var old wire.ProgramVersion
		err := tx.QueryRow(ctx, `SELECT version, effective_from, source FROM programs WHERE version = $1`, p.Version).Scan(&old.Version, &old.EffectiveFrom, &old.Source)
		switch {
		case err == nil && old == p:
			return nil
		case err == nil:
			return fmt.Errorf("%w: program version %d was published with other content; publish a new version", hq.ErrConflict, p.Version)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var newest int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM programs`).Scan(&newest); err != nil {
			return err
		}
		if newest > p.Version {
			return fmt.Errorf("%w: program version %d is older than the newest published (%d)", hq.ErrConflict, p.Version, newest)
		}
		_, err = tx.Exec(ctx, `INSERT INTO programs (version, effective_from, source) VALUES ($1, $2, $3)`, p.Version, p.EffectiveFrom, p.Source)
		return err
	})
}

func (s *Store) Programs(ctx context.Context) ([]wire.ProgramVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, effective_from, source FROM programs ORDER BY version`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (wire.ProgramVersion, error) {
		var p wire.ProgramVersion
		err := r.Scan(&p.Version, &p.EffectiveFrom, &p.Source)
		return p, err
	})
}
