package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"posagent/sync/hq"
)

var _ hq.MemberCodeStore = (*Store)(nil)

func scanMCKey(r pgx.CollectableRow) (hq.MemberCodeKey, error) {
	var k hq.MemberCodeKey
	var retired *time.Time
	err := r.Scan(&k.ID, &k.Private, &k.ShortSecret, &k.CreatedAt, &retired)
	k.CreatedAt = k.CreatedAt.UTC()
	if retired != nil {
		k.RetiredAt = retired.UTC()
	}
	return k, err
}

// MemberCodeKeys lists every key kept, oldest first.
func (s *Store) MemberCodeKeys(ctx context.Context) ([]hq.MemberCodeKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, private, short_secret, created_at, retired_at
		FROM member_code_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanMCKey)
}

// EnsureMemberCodeKey returns the active key, storing k if there is none.
// The partial unique index on the active key decides a race.
func (s *Store) EnsureMemberCodeKey(ctx context.Context, k hq.MemberCodeKey) (hq.MemberCodeKey, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO member_code_keys (id, private, short_secret, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, k.ID, k.Private, k.ShortSecret, k.CreatedAt); err != nil {
		return hq.MemberCodeKey{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, private, short_secret, created_at, retired_at
		FROM member_code_keys WHERE retired_at IS NULL`)
	if err != nil {
		return hq.MemberCodeKey{}, err
	}
	active, err := pgx.CollectExactlyOneRow(rows, scanMCKey)
	if errors.Is(err, pgx.ErrNoRows) {
		// Retired between the insert and the select by a rotation: that
		// rotation's key is active now; ask again.
		return hq.MemberCodeKey{}, fmt.Errorf("hq: member-code key changed while being made; retry")
	}
	return active, err
}

// RotateMemberCodeKey retires the active key at k.CreatedAt and stores k;
// keys whose codes expired before now are deleted.
func (s *Store) RotateMemberCodeKey(ctx context.Context, k hq.MemberCodeKey, now time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE member_code_keys SET retired_at = $1 WHERE retired_at IS NULL`, k.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM member_code_keys WHERE retired_at + make_interval(secs => $2) < $1`,
			now, hq.MemberCodeKey{RetiredAt: now}.NotAfter().Sub(now).Seconds()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO member_code_keys (id, private, short_secret, created_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, k.ID, k.Private, k.ShortSecret, k.CreatedAt)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("%w: member-code key %s", hq.ErrConflict, k.ID)
		}
		return err
	})
}

// ClaimMemberCode records a use of a code; see hq.MemberCodeStore.
func (s *Store) ClaimMemberCode(ctx context.Context, c hq.MemberCodeClaim) (first hq.MemberCodeClaim, repeat bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO member_code_claims (code, member, store, till, seen_at, expires, received, late)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code) DO NOTHING`,
			c.Code, c.Member, c.Store, c.Till, c.SeenAt, c.Expires, c.At, c.Late); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT code, member, store, till, seen_at, expires, received, late
			FROM member_code_claims WHERE code = $1`, c.Code).Scan(&first.Code, &first.Member, &first.Store, &first.Till,
			&first.SeenAt, &first.Expires, &first.At, &first.Late)
		if err != nil {
			return err
		}
		first.SeenAt, first.Expires, first.At = first.SeenAt.UTC(), first.Expires.UTC(), first.At.UTC()
		if first.Store == c.Store && first.Till == c.Till {
			return nil
		}
		repeat = true
		_, err = tx.Exec(ctx, `INSERT INTO member_code_repeats (code, member, store, till, seen_at, expires, received, late)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code, store, till) DO NOTHING`,
			c.Code, c.Member, c.Store, c.Till, c.SeenAt, c.Expires, c.At, c.Late)
		return err
	})
	return first, repeat, err
}

// memberCodeRepeatsSQL reads the repeats received in [$1, $2) by the
// index on received, each with its first claim by primary key.
const memberCodeRepeatsSQL = `SELECT f.code, f.member, f.store, f.till, f.seen_at, f.expires, f.received, f.late,
		r.member, r.store, r.till, r.seen_at, r.expires, r.received, r.late
	FROM member_code_repeats r JOIN member_code_claims f ON f.code = r.code
	WHERE r.received >= $1 AND r.received < $2
	ORDER BY r.received, r.code COLLATE "C", r.store COLLATE "C", r.till COLLATE "C"`

// MemberCodeRepeats lists the repeats recorded in [since, until), oldest
// first, by the index on received.
func (s *Store) MemberCodeRepeats(ctx context.Context, since, until time.Time) ([]hq.MemberCodeRepeat, error) {
	// A range on both ends, so the index bounds the read; no end is infinity.
	to := pgtype.Timestamptz{Time: until, InfinityModifier: pgtype.Finite, Valid: true}
	if until.IsZero() {
		to.InfinityModifier = pgtype.Infinity
	}
	rows, err := s.pool.Query(ctx, memberCodeRepeatsSQL, since, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (hq.MemberCodeRepeat, error) {
		var r hq.MemberCodeRepeat
		f, a := &r.First, &r.Again
		err := row.Scan(&f.Code, &f.Member, &f.Store, &f.Till, &f.SeenAt, &f.Expires, &f.At, &f.Late,
			&a.Member, &a.Store, &a.Till, &a.SeenAt, &a.Expires, &a.At, &a.Late)
		a.Code = f.Code
		for _, t := range []*time.Time{&f.SeenAt, &f.Expires, &f.At, &a.SeenAt, &a.Expires, &a.At} {
			*t = t.UTC()
		}
		return r, err
	})
}
