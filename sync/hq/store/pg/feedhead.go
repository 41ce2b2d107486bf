package pg

import (
	"context"
	"fmt"
	"strconv"

	"posagent/sync/hq"
)

var _ hq.FeedHeadStore = (*Store)(nil)

// feedHeadSQL reads, after the feed horizon ($1, feedHorizon, read in an
// earlier statement so every writer below it is visible here), the last
// change log row below the horizon, the last program version and the
// cashier lists' generation: three index or one-row lookups.
const feedHeadSQL = `SELECT coalesce((SELECT max(xid) FROM member_changes WHERE xid < $1::xid8)::text, ''),
	coalesce((SELECT max(version) FROM programs), 0),
	(SELECT n FROM cashier_generation)`

// FeedHead reads the head of the changes feed in two statements: the
// horizon, then feedHeadSQL.
func (s *Store) FeedHead(ctx context.Context) (hq.FeedHead, error) {
	horizon, err := s.feedHorizon(ctx)
	if err != nil {
		return nil, err
	}
	h := feedHead{horizon: horizon}
	var last string
	if err := s.pool.QueryRow(ctx, feedHeadSQL, horizon).Scan(&last, &h.program, &h.cashiers); err != nil {
		return nil, fmt.Errorf("hq: feed head: %w", err)
	}
	if last != "" {
		if h.last, err = strconv.ParseUint(last, 10, 64); err != nil {
			return nil, fmt.Errorf("hq: feed head: xid %q: %w", last, err)
		}
		h.hasLast = true
	}
	return h, nil
}

// feedHead is what FeedHead read. Every feed writer below horizon had
// ended when it was read, so no change log row below it can appear later.
type feedHead struct {
	horizon  uint64
	last     uint64 // the last change log row's xid below horizon, if hasLast
	hasLast  bool
	program  int
	cashiers int64
}

func (h feedHead) CashiersGen() int64 { return h.cashiers }

// UpToDate answers as Changes would have at the read, for a cursor with
// no change log row at or after its position below the horizon and no
// program after its own: no member, no program, the position moved on to
// the horizon (never back), the snapshot's skip set dropped once passed.
// Any other cursor, a bad one included, is left to Changes.
func (h feedHead) UpToDate(cursor string) (string, bool) {
	var cur changesCursor
	if hq.DecodeCursor(cursor, &cur) != nil {
		return "", false
	}
	from, err := cur.M.norm()
	if err != nil || cur.P < h.program || h.hasLast && h.last >= from {
		return "", false
	}
	xmax, _, err := cur.S.bounds()
	if err != nil {
		return "", false
	}
	if h.horizon > from {
		cur.M = feedPos{X: xidPos(h.horizon)}
		from = h.horizon
	}
	if cur.S != nil && from >= xmax {
		cur.S = nil
	}
	return hq.EncodeCursor(cur), true
}
