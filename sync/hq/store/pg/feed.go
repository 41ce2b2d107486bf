package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/wire"
)

type changesCursor struct {
	M feedPos   `json:"m"`
	P int       `json:"p"`
	S *snapSkip `json:"s,omitempty"` // after a snapshot, until M passes S.Xmax
}

func (s *Store) Changes(ctx context.Context, cursor string, limit int) (wire.Changes, error) {
	var cur changesCursor
	if err := hq.DecodeCursor(cursor, &cur); err != nil {
		return wire.Changes{}, err
	}
	if _, err := cur.M.norm(); err != nil {
		return wire.Changes{}, err
	}
	var ch wire.Changes
	var err error
	if ch.Members, cur.M, cur.S, ch.More, err = s.memberChanges(ctx, cur.M, cur.S, limit); err != nil {
		return ch, err
	}
	// Publishing holds a table lock and versions only increase, so versions
	// commit in order and a version number is a safe cursor.
	prows, err := s.pool.Query(ctx, `SELECT version, effective_from, source FROM programs WHERE version > $1 ORDER BY version`, cur.P)
	if err != nil {
		return ch, err
	}
	ch.Programs, err = pgx.CollectRows(prows, func(r pgx.CollectableRow) (wire.ProgramVersion, error) {
		var p wire.ProgramVersion
		err := r.Scan(&p.Version, &p.EffectiveFrom, &p.Source)
		return p, err
	})
	if err != nil {
		return ch, err
	}
	if n := len(ch.Programs); n > 0 {
		cur.P = ch.Programs[n-1].Version
	}
	ch.Cursor = hq.EncodeCursor(cur)
	return ch, nil
}

// feedLock ("feed") is the class of the advisory lock every transaction
// that adds to the feeds (entries, member_changes) holds, shared, from
// before it has an xid until it ends (feedWriterSQL, its first statement).
// The feeds wait only for those (feedHorizon): waiting for every
// transaction on the server, as the snapshot's xmin does, let one long
// transaction anywhere on it (another database, a bulk load, an archive)
// hold every till's member feed back for as long as it ran.
const feedLock = 0x66656564

// feedWriterSQL starts a transaction that writes entries or
// member_changes: the feed lock, then the xid, in one statement.
const feedWriterSQL = `SELECT pg_advisory_xact_lock_shared($1::int4, hashtext(current_schema())), pg_current_xact_id()`

// feedHorizonSQL is the xid below which every feed writer has ended: the
// least of the statement snapshot's xmax and the xids of the transactions
// holding the feed lock when pg_locks is read (after the snapshot was
// taken), their 32-bit xids widened next to xmax. A holder without an xid
// yet gets one at or above xmax, except in the instant between its xid and
// the lock on it, where xmin stands in. A writer that does not hold the lock
// then either ended before (it takes the lock before its xid) or gets its
// xid after: its rows are at or above the horizon.
const feedHorizonSQL = `WITH snap AS MATERIALIZED (
	SELECT pg_snapshot_xmin(s)::text::int8 AS xmin, pg_snapshot_xmax(s)::text::int8 AS xmax FROM pg_current_snapshot() AS s),
locks AS MATERIALIZED (
	SELECT locktype, database, classid, objid, objsubid, virtualtransaction, transactionid::text::int8 AS x32, mode FROM pg_locks),
w AS (
	SELECT (SELECT min(CASE WHEN d < 2147483648 THEN snap.xmax + d ELSE snap.xmax + d - 4294967296 END)
		FROM locks t, snap, LATERAL (SELECT ((t.x32 - snap.xmax % 4294967296) % 4294967296 + 4294967296) % 4294967296 AS d) dd
		WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.virtualtransaction = h.virtualtransaction) AS x
	FROM locks h
	WHERE h.locktype = 'advisory' AND h.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND h.classid = $1::int4::oid AND h.objid = hashtext(current_schema())::oid AND h.objsubid = 2)
SELECT least(snap.xmax, (SELECT min(x) FROM w), CASE WHEN EXISTS (SELECT FROM w WHERE x IS NULL) THEN snap.xmin END) FROM snap`

// feedHorizon is feedHorizonSQL's xid. Read it before the snapshot that
// reads the feed: a writer that ends in between is then visible to it.
func (s *Store) feedHorizon(ctx context.Context) (uint64, error) {
	var h int64
	if err := s.pool.QueryRow(ctx, feedHorizonSQL, int32(feedLock)).Scan(&h); err != nil {
		return 0, fmt.Errorf("hq: feed horizon: %w", err)
	}
	return uint64(h), nil
}

// feedPageSQL reads one page of the member feed after ($1, $2): the next
// $3 positions of the change log — each log row in xid order, its ids
// (deduplicated, in byte order) — and, for each, the member only where
// this is its last change (members.xid; live is false elsewhere), so a
// member is handed out once however often it changed and a later change
// hands it out again further on. Only transactions below the feed horizon
// ($6, feedHorizon) are read, so nothing can commit behind the cursor. The LIMIT is on
// log positions, before any member is looked up: the incremental sort
// orders one log row's ids at a time in memory, and only the $3 positions
// of the page are looked up by the members' primary key, so a page costs
// the same however long the log is and however many stale ids it holds.
// A page may hold fewer members than positions (stale ones) while more
// follow. Rows a snapshot already delivered (below $4 and not among the
// transactions in flight then, $5) are passed over.
const feedPageSQL = `WITH pos AS MATERIALIZED (
	SELECT c.xid, u.id FROM member_changes c
	CROSS JOIN LATERAL (SELECT DISTINCT u.id FROM unnest(c.ids) AS u(id)) u
	WHERE c.xid >= $1::xid8 AND c.xid < $6::xid8
		AND (c.xid > $1::xid8 OR u.id COLLATE "C" > $2)
		AND NOT (c.xid < $4::xid8 AND c.xid <> ALL($5::xid8[]))
	ORDER BY c.xid, u.id COLLATE "C"
	LIMIT $3)
SELECT pos.xid, m.id IS NOT NULL AS live, pos.id, m.data, coalesce(m.points, 0), coalesce(m.stored_value, 0),
	coalesce(m.flagged, false), m.last_sale, m.tier_at, coalesce(m.coupons, '[]')
	FROM pos LEFT JOIN members m ON m.id = pos.id AND m.xid = pos.xid
	ORDER BY pos.xid, pos.id COLLATE "C"`

// snapSkip names what a snapshot delivered beyond its xmin: every
// transaction below Xmax except those in flight when it was taken (Xip).
// The feed after a snapshot passes over the change log rows of those
// transactions, so nothing the snapshot held is handed out again.
type snapSkip struct {
	Xmax string   `json:"xmax"`
	Xip  []string `json:"xip,omitempty"`
}

// bounds is the skip set as query arguments (none: nothing skipped).
func (k *snapSkip) bounds() (xmax uint64, xip []uint64, err error) {
	if k == nil {
		return 0, []uint64{}, nil
	}
	if xmax, err = strconv.ParseUint(k.Xmax, 10, 64); err != nil {
		return 0, nil, fmt.Errorf("%w (xmax %q)", hq.ErrCursor, k.Xmax)
	}
	xip = make([]uint64, 0, len(k.Xip))
	for _, s := range k.Xip {
		x, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%w (xip %q)", hq.ErrCursor, s)
		}
		xip = append(xip, x)
	}
	return xmax, xip, nil
}

// memberChanges reads one page of the member feed after pos (feedPageSQL),
// one repeatable-read snapshot serving the log and the member rows. At the
// end of the feed the position moves on to the horizon, so the stale ids
// behind it are not read again by the next poll.
func (s *Store) memberChanges(ctx context.Context, pos feedPos, skip *snapSkip, limit int) (out []wire.MemberState, next feedPos, nextSkip *snapSkip, more bool, err error) {
	from, err := pos.norm()
	if err != nil {
		return nil, pos, skip, false, err
	}
	xmax, xip, err := skip.bounds()
	if err != nil {
		return nil, pos, skip, false, err
	}
	horizon, err := s.feedHorizon(ctx)
	if err != nil {
		return nil, pos, skip, false, err
	}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		out, next, nextSkip, more = nil, pos, skip, false
		rows, err := tx.Query(ctx, feedPageSQL, from, pos.K, limit, xmax, xip, horizon)
		if err != nil {
			return err
		}
		defer rows.Close()
		read := 0
		for rows.Next() {
			var x uint64
			var live bool
			m, err := scanFeedMember(rows, &x, &live)
			if err != nil {
				return err
			}
			read++
			if live {
				out = append(out, m.State())
			}
			next = feedPos{X: xidPos(x), K: m.ID}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		more = read == limit // the next page may be empty
		if !more && horizon > from {
			// Every log row below the horizon after pos was read:
			// continue from the horizon itself, which may still be running.
			next = feedPos{X: xidPos(horizon)}
		}
		if nextSkip != nil {
			if n, _ := next.norm(); n >= xmax {
				nextSkip = nil // past every transaction the snapshot held
			}
		}
		return nil
	})
	return out, next, nextSkip, more, err
}

// scanFeedMember reads a row of feedPageSQL (x: the log row's xid, live:
// whether this is the member's last change; only then is the rest read).
func scanFeedMember(r pgx.Row, x *uint64, live *bool) (hq.Member, error) {
	var m hq.Member
	var ls, ta pgtype.Timestamptz
	var coupons []byte
	if err := r.Scan(x, live, &m.ID, &m.Data, &m.Points, &m.StoredValue, &m.Flagged, &ls, &ta, &coupons); err != nil {
		return m, err
	}
	if ls.Valid {
		m.LastSale = ls.Time.UTC()
	}
	if ta.Valid {
		m.TierAt = ta.Time.UTC()
	}
	return m, json.Unmarshal(coupons, &m.Coupons)
}

// Snapshot sends every member as one repeatable-read snapshot holds them
// and returns the changes cursor that continues exactly after it: from
// the snapshot's xmin, passing over the transactions the snapshot already
// held (committed ones below its xmax), so members changed by transactions
// in flight when it was taken come with the feed and nothing it held comes
// again. Rows stream from the server; memory stays flat.
func (s *Store) Snapshot(ctx context.Context, fn func(wire.MemberState) error) (string, error) {
	var cursor string
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var xmin, xmax uint64
		var xip []uint64
		if err := tx.QueryRow(ctx, `SELECT pg_snapshot_xmin(s), pg_snapshot_xmax(s),
			coalesce((SELECT array_agg(x) FROM pg_snapshot_xip(s) AS x), '{}')
			FROM pg_current_snapshot() AS s`).Scan(&xmin, &xmax, &xip); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, snapshotSQL)
		if err != nil {
			return err
		}
		defer rows.Close()
		var sm snapMember
		for rows.Next() {
			st, err := sm.scan(rows)
			if err != nil {
				return err
			}
			if err := fn(st); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		cur := changesCursor{M: feedPos{X: xidPos(xmin)}}
		if xmax > xmin {
			cur.S = &snapSkip{Xmax: xidPos(xmax)}
			for _, x := range xip {
				cur.S.Xip = append(cur.S.Xip, xidPos(x))
			}
		}
		cursor = hq.EncodeCursor(cur)
		return nil
	})
	return cursor, err
}

// snapshotSQL reads every member as the snapshot sends it. PostgreSQL
// takes the member's fields out of its data (a lookup in the binary jsonb,
// no text rendering of the whole document) so HQ parses no JSON for
// them. Only the card tokens come as a JSON array, nearly always of plain
// strings, and coupons as JSON when a member holds any.
const snapshotSQL = `SELECT id, data->>'name', data->>'mobile', data->>'birthday', data->>'tier',
	data->>'referrer_id', data->>'enrolled_at', data->'card_tokens',
	points, stored_value, flagged, last_sale, coupons
	FROM members`

// snapMember holds the scan targets of snapshotSQL across rows.
type snapMember struct {
	id                                                 string
	name, mobile, birthday, tier, referrer, enrolledAt pgtype.Text
	tokens, coupons                                    []byte
	lastSale                                           pgtype.Timestamptz
	m                                                  hq.Member
}

// scan reads a row of snapshotSQL into the state it sends: the same as
// scanFeedMember followed by hq.Member.State.
func (s *snapMember) scan(r pgx.Row) (wire.MemberState, error) {
	s.m = hq.Member{}
	if err := r.Scan(&s.id, &s.name, &s.mobile, &s.birthday, &s.tier, &s.referrer, &s.enrolledAt, &s.tokens,
		&s.m.Points, &s.m.StoredValue, &s.m.Flagged, &s.lastSale, &s.coupons); err != nil {
		return wire.MemberState{}, err
	}
	s.m.ID = s.id
	d := &entry.Member{Name: s.name.String, Mobile: s.mobile.String, Birthday: s.birthday.String, Tier: s.tier.String,
		ReferrerID: s.referrer.String, EnrolledAt: s.enrolledAt.String}
	var err error
	if d.CardTokens, err = jsonStrings(s.tokens); err != nil {
		return wire.MemberState{}, fmt.Errorf("hq: member %s: card tokens: %w", s.id, err)
	}
	s.m.Data = d
	if s.lastSale.Valid {
		s.m.LastSale = s.lastSale.Time.UTC()
	}
	if len(s.coupons) > 0 && string(s.coupons) != "[]" && string(s.coupons) != "null" {
		if err := json.Unmarshal(s.coupons, &s.m.Coupons); err != nil {
			return wire.MemberState{}, fmt.Errorf("hq: member %s: coupons: %w", s.id, err)
		}
	}
	return s.m.State(), nil
}

// jsonStrings reads a JSON array of strings (nil or JSON null: none). An
// array of strings without escapes, as card tokens are, is split by hand;
// anything else goes to encoding/json.
func jsonStrings(b []byte) ([]string, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	if out, ok := plainStrings(b); ok {
		return out, nil
	}
	var out []string
	err := json.Unmarshal(b, &out)
	return out, err
}

// plainStrings splits ["a", "b"] whose strings hold no backslash; ok is
// false for anything else.
func plainStrings(b []byte) (out []string, ok bool) {
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	ws()
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i++
	ws()
	if i < len(b) && b[i] == ']' {
		i++
		ws()
		return []string{}, i == len(b) // as encoding/json reads []
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' || b[j] < 0x20 {
				return nil, false
			}
			j++
		}
		if j >= len(b) {
			return nil, false
		}
		out = append(out, string(b[i+1:j]))
		i = j + 1
		ws()
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i++
			ws()
		case ']':
			i++
			ws()
			return out, i == len(b)
		default:
			return nil, false
		}
	}
}
