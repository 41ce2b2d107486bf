package pg

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"posagent/sync/hq"
	"posagent/sync/hq/messages"
)

var _ hq.Outbox = (*Store)(nil)

// Querier is what EnqueueTx needs: a pgx.Tx (the usual case, the
// transaction of the change that caused the messages), a connection or the
// pool.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// enqueueSQL stores messages of consenting members; an id already stored
// stays as it is (same cause twice → one message). Rows are inserted in
// the order given so seq (the listing order) follows it.
const enqueueSQL = `INSERT INTO outbox (id, kind, member, store, to_addr, lang, body, created_at, not_before, due_at)
SELECT m.id, m.kind, m.member, m.store, m.to_addr, m.lang, m.body, m.created_at, m.not_before, m.due_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[], $9::timestamptz[], $10::timestamptz[]) WITH ORDINALITY
     AS m(id, kind, member, store, to_addr, lang, body, created_at, not_before, due_at, ord)
WHERE EXISTS (SELECT 1 FROM member_consent c WHERE c.member = m.member AND c.status = 'granted')
ORDER BY m.ord
ON CONFLICT (id) DO NOTHING`

// enqueueArgs checks ms and lays them out as enqueueSQL's arguments; nil
// when there is nothing to store.
func enqueueArgs(ms []messages.Message) ([]any, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	if err := hq.CheckMessages(ms); err != nil {
		return nil, err
	}
	n := len(ms)
	ids, kinds, members, stores, tos, langs, bodies := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created, notBefore, due := make([]time.Time, n), make([]pgtype.Timestamptz, n), make([]time.Time, n)
	for i, m := range ms {
		ids[i], kinds[i], members[i], stores[i], tos[i], langs[i], bodies[i] = m.ID, string(m.Kind), m.Member, m.Store, m.To, m.Lang, m.Text
		created[i], due[i] = m.CreatedAt, hq.MessageDue(m)
		notBefore[i] = pgtype.Timestamptz{Time: m.NotBefore, Valid: !m.NotBefore.IsZero()}
	}
	return []any{ids, kinds, members, stores, tos, langs, bodies, created, notBefore, due}, nil
}

// EnqueueTx stores ms in q's transaction: messages of members without
// consent (or opted out) are dropped, and a message whose id is stored
// already is kept as it was.
func EnqueueTx(ctx context.Context, q Querier, ms []messages.Message) error {
	args, err := enqueueArgs(ms)
	if err != nil || args == nil {
		return err
	}
	if _, err := q.Exec(ctx, enqueueSQL, args...); err != nil {
		return fmt.Errorf("hq: storing messages: %w", err)
	}
	return nil
}

// QueueEnqueue queues EnqueueTx's statement on b, for callers that
// pipeline a transaction's statements in one batch.
func QueueEnqueue(b *pgx.Batch, ms []messages.Message) error {
	args, err := enqueueArgs(ms)
	if err != nil || args == nil {
		return err
	}
	b.Queue(enqueueSQL, args...)
	return nil
}

// Enqueue stores ms in a transaction of its own.
func (s *Store) Enqueue(ctx context.Context, ms []messages.Message) error {
	return EnqueueTx(ctx, s.pool, ms)
}

const claimSQL = `WITH c AS (
    SELECT id, due_at, seq FROM outbox WHERE status = 'pending' AND due_at <= $1
    ORDER BY due_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET due_at = $3, lease = $4, attempts = o.attempts + 1
FROM c WHERE o.id = c.id
RETURNING o.id, o.kind, o.member, o.store, o.to_addr, o.lang, o.body, o.created_at, o.not_before, o.attempts, c.due_at, c.seq`

// ClaimMessages leases due messages. The lease is the row's due_at moved
// to the lease's end under a fresh token, so it needs no session state
// (works through PgBouncer's transaction pooling) and a sender that dies
// leaves rows that fall due again by themselves.
func (s *Store) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, n int) ([]hq.Claimed, error) {
	if n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("hq: claim needs a batch size and a lease (got %d, %s)", n, lease)
	}
	token, err := leaseToken()
	if err != nil {
		return nil, err
	}
	until := now.Add(lease)
	rows, err := s.pool.Query(ctx, claimSQL, now, n, until, token)
	if err != nil {
		return nil, fmt.Errorf("hq: claiming messages: %w", err)
	}
	type claimedSeq struct {
		c   hq.Claimed
		was time.Time
		seq int64
	}
	var out []claimedSeq
	for rows.Next() {
		var c hq.Claimed
		var kind string
		var nb pgtype.Timestamptz
		var seq int64
		var was time.Time
		if err := rows.Scan(&c.ID, &kind, &c.Member, &c.Store, &c.To, &c.Lang, &c.Text, &c.CreatedAt, &nb, &c.Attempts, &was, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		c.Kind, c.Token, c.Until = messages.Kind(kind), token, until
		if nb.Valid {
			c.NotBefore = nb.Time
		}
		out = append(out, claimedSeq{c, was, seq})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hq: claiming messages: %w", err)
	}
	// UPDATE … RETURNING keeps no order; hand them out oldest first.
	slices.SortFunc(out, func(a, b claimedSeq) int {
		if d := a.was.Compare(b.was); d != 0 {
			return d
		}
		return cmp.Compare(a.seq, b.seq)
	})
	cs := make([]hq.Claimed, len(out))
	for i, c := range out {
		cs[i] = c.c
	}
	return cs, nil
}

func leaseToken() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// settle runs a lease-holding update; no row → ErrLeaseLost.
func (s *Store) settle(ctx context.Context, c hq.Claimed, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, append([]any{c.ID, c.Token}, args...)...)
	if err != nil {
		return fmt.Errorf("hq: message %s: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", hq.ErrLeaseLost, c.ID)
	}
	return nil
}

const leased = ` WHERE id = $1 AND lease = $2 AND status = 'pending'`

func (s *Store) AckMessage(ctx context.Context, c hq.Claimed, at time.Time) error {
	return s.settle(ctx, c, `UPDATE outbox SET status = 'sent', done_at = $3, lease = '', last_error = ''`+leased, at)
}

func (s *Store) FailMessage(ctx context.Context, c hq.Claimed, at time.Time, reason string, next time.Time) error {
	if next.IsZero() {
		return s.settle(ctx, c, `UPDATE outbox SET status = 'dead', done_at = $3, lease = '', last_error = $4`+leased, at, reason)
	}
	return s.settle(ctx, c, `UPDATE outbox SET due_at = $3, lease = '', last_error = $4`+leased, next, reason)
}

func (s *Store) DeferMessage(ctx context.Context, c hq.Claimed, until time.Time) error {
	return s.settle(ctx, c, `UPDATE outbox SET due_at = $3, lease = '', attempts = greatest(attempts - 1, 0)`+leased, until)
}

func (s *Store) SuppressMessage(ctx context.Context, c hq.Claimed, at time.Time, reason string) error {
	return s.settle(ctx, c, `UPDATE outbox SET status = 'suppressed', done_at = $3, lease = '', last_error = $4`+leased, at, reason)
}

func (s *Store) Messages(ctx context.Context, f hq.OutboxFilter) ([]hq.OutboxMessage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	// Only the filters given, so each listing reads its own index.
	where, args := []string{"true"}, []any{f.Limit}
	if f.Status != "" {
		args = append(args, f.Status)
		where = append(where, fmt.Sprintf("status = $%d", len(args)))
	}
	if f.Member != "" {
		args = append(args, f.Member)
		where = append(where, fmt.Sprintf("member = $%d", len(args)))
	}
	rows, err := s.pool.Query(ctx, `SELECT id, kind, member, store, to_addr, lang, body, created_at, not_before,
		status, attempts, due_at, last_error, done_at
		FROM outbox WHERE `+strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT $1`, args...)
	if err != nil {
		return nil, fmt.Errorf("hq: listing messages: %w", err)
	}
	var out []hq.OutboxMessage
	for rows.Next() {
		var m hq.OutboxMessage
		var kind string
		var nb, done pgtype.Timestamptz
		if err := rows.Scan(&m.ID, &kind, &m.Member, &m.Store, &m.To, &m.Lang, &m.Text, &m.CreatedAt, &nb,
			&m.Status, &m.Attempts, &m.DueAt, &m.LastError, &done); err != nil {
			rows.Close()
			return nil, err
		}
		m.Kind = messages.Kind(kind)
		if nb.Valid {
			m.NotBefore = nb.Time
		}
		if done.Valid {
			m.DoneAt = done.Time
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hq: listing messages: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

func (s *Store) RetryMessage(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE outbox SET status = 'pending', attempts = 0, due_at = 'epoch', lease = '', done_at = NULL
		WHERE id = $1 AND status = 'dead'`, id)
	if err != nil {
		return fmt.Errorf("hq: retrying message %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: no dead message %s", hq.ErrNotFound, id)
	}
	return nil
}

// setConsentSQL logs the change and makes it the standing one unless a
// later one stands already (callbacks and pages may report out of order).
const setConsentSQL = `WITH l AS (INSERT INTO member_consent_log (member, status, at, source) VALUES ($1, $2, $3, $4))
INSERT INTO member_consent (member, status, at, source) VALUES ($1, $2, $3, $4)
ON CONFLICT (member) DO UPDATE SET status = excluded.status, at = excluded.at, source = excluded.source
WHERE member_consent.at <= excluded.at`

func (s *Store) setConsent(ctx context.Context, member, status string, at time.Time, source string) error {
	if err := hq.CheckConsent(member, at); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, setConsentSQL, member, status, at, source); err != nil {
		return fmt.Errorf("hq: consent of %s: %w", member, err)
	}
	return nil
}

func (s *Store) SetConsent(ctx context.Context, member string, granted bool, at time.Time, source string) error {
	st := hq.ConsentWithdrawn
	if granted {
		st = hq.ConsentGranted
	}
	return s.setConsent(ctx, member, st, at, source)
}

func (s *Store) OptOut(ctx context.Context, member string, at time.Time, source string) error {
	return s.setConsent(ctx, member, hq.ConsentOptedOut, at, source)
}

func (s *Store) Consent(ctx context.Context, member string) (hq.Consent, error) {
	c := hq.Consent{Member: member}
	err := s.pool.QueryRow(ctx, `SELECT status, at, source FROM member_consent WHERE member = $1`, member).Scan(&c.Status, &c.At, &c.Source)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("hq: consent of %s: %w", member, err)
	}
	return c, nil
}

func (s *Store) ConsentLog(ctx context.Context, member string) ([]hq.ConsentEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, at, source FROM member_consent_log WHERE member = $1 ORDER BY seq`, member)
	if err != nil {
		return nil, fmt.Errorf("hq: consent log of %s: %w", member, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.ConsentEvent, error) {
		e := hq.ConsentEvent{Member: member}
		err := r.Scan(&e.Status, &e.At, &e.Source)
		return e, err
	})
}
