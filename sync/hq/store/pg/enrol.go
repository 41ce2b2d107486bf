package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/sync/hq"
)

var _ hq.EnrolStore = (*Store)(nil)

// UpdatePending implements hq.EnrolStore: the row is locked for the
// transaction, so two code checks of one mobile count both attempts.
func (s *Store) UpdatePending(ctx context.Context, mobile string, fn func(hq.Pending, bool) (hq.Pending, bool, error)) error {
	return s.retry(ctx, func(tx pgx.Tx) error {
		// The row is made to exist (a JSON null until fn fills it) or, when
		// it does, locked and read, in one statement, so a mobile seen for
		// the first time is locked too and a purge deleting the row
		// meanwhile cannot leave nothing to read; fn's error rolls the
		// placeholder back with everything else.
		var p hq.Pending
		var raw []byte
		if err := tx.QueryRow(ctx, `INSERT INTO enrol_pending AS e (mobile, body) VALUES ($1, 'null')
			ON CONFLICT (mobile) DO UPDATE SET body = e.body RETURNING body`, mobile).Scan(&raw); err != nil {
			return err
		}
		found := string(raw) != "null"
		if found {
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("pending enrolment of %s: %w", mobile, err)
			}
		}
		next, del, err := fn(p, found)
		if err != nil {
			return err
		}
		if del {
			_, err := tx.Exec(ctx, `DELETE FROM enrol_pending WHERE mobile = $1`, mobile)
			return err
		}
		next.Mobile = mobile
		body, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE enrol_pending SET body = $2 WHERE mobile = $1`, mobile, body)
		return err
	})
}

// PurgePending implements hq.EnrolStore with one DELETE: a row another
// transaction holds (UpdatePending locks it) is judged again once that
// commits, on what it wrote, so a renewed sign-up stays. The table holds
// only the mobiles of the last day or so, so the scan is small.
func (s *Store) PurgePending(ctx context.Context, expiredBefore, windowBefore time.Time) (int, error) {
	t, err := s.pool.Exec(ctx, `DELETE FROM enrol_pending
		WHERE (body->>'expires')::timestamptz < $1 AND (body->>'window_start')::timestamptz < $2`, expiredBefore, windowBefore)
	return int(t.RowsAffected()), err
}

// AddCardLink implements hq.EnrolStore.
func (s *Store) AddCardLink(ctx context.Context, l hq.CardLink) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO card_links (token_hash, member_id, created_at) VALUES ($1, $2, $3)`,
		l.TokenHash, l.Member, l.CreatedAt)
	if pgCode(err) == "23505" {
		return fmt.Errorf("card link: %w", hq.ErrConflict)
	}
	return err
}

// CardLink implements hq.EnrolStore.
func (s *Store) CardLink(ctx context.Context, hash string) (hq.CardLink, error) {
	l := hq.CardLink{TokenHash: hash}
	var revoked *time.Time
	err := s.pool.QueryRow(ctx, `SELECT member_id, created_at, revoked_at FROM card_links WHERE token_hash = $1`, hash).
		Scan(&l.Member, &l.CreatedAt, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("card link: %w", hq.ErrNotFound)
	}
	if revoked != nil {
		l.RevokedAt = revoked.UTC()
	}
	l.CreatedAt = l.CreatedAt.UTC()
	return l, err
}

// RevokeCardLinks implements hq.EnrolStore.
func (s *Store) RevokeCardLinks(ctx context.Context, member string, at time.Time) (int, error) {
	t, err := s.pool.Exec(ctx, `UPDATE card_links SET revoked_at = $2 WHERE member_id = $1 AND revoked_at IS NULL`, member, at)
	return int(t.RowsAffected()), err
}

// AddWebEnrolment implements hq.EnrolStore.
func (s *Store) AddWebEnrolment(ctx context.Context, e hq.WebEnrolment) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO web_enrolments (member_id, body) VALUES ($1, $2) ON CONFLICT (member_id) DO NOTHING`, e.Member, body)
	return err
}

// WebEnrolment implements hq.EnrolStore.
func (s *Store) WebEnrolment(ctx context.Context, member string) (hq.WebEnrolment, error) {
	var e hq.WebEnrolment
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM web_enrolments WHERE member_id = $1`, member).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("self-enrolment of %s: %w", member, hq.ErrNotFound)
	}
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(raw, &e)
}
