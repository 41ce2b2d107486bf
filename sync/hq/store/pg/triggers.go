package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/messages"
)

// The reminder triggers: their indexes (migration 0013) kept in the ingest
// transaction, the after-sale and tier-upgrade messages written there
// too, and the per-day jobs.

var trigSettings sync.Map // *Store → *messages.Settings

// SetMessageSettings sets what ingest's triggers send from now on (nil:
// nothing; the indexes are kept up to date either way).
func (s *Store) SetMessageSettings(st *messages.Settings) {
	if st == nil {
		trigSettings.Delete(s)
		return
	}
	trigSettings.Store(s, st)
}

type trigCtxKey struct{}

// trigContext carries the store's settings to the ingest code, which runs
// on a connection and not the store.
func (s *Store) trigContext(ctx context.Context) context.Context {
	if v, ok := trigSettings.Load(s); ok {
		return context.WithValue(ctx, trigCtxKey{}, v.(*messages.Settings))
	}
	return ctx
}

var defaultSettings = sync.OnceValue(func() *messages.Settings {
	return &messages.Settings{Program: loyalty.DefaultProgram()}
})

// trigIngest queues on last the index upserts for the entries pre stores
// and the messages they cause. Only messages need a read first (the
// members' balances and data), one round trip without row locks: the
// locks the transaction takes stay in the same order whatever the
// settings (index rows, then aggregates, then members), so HQ processes
// with different settings cannot deadlock each other. A sale at another
// store committed between that read and this commit is missing from the
// balance the message states; the balance itself is exact.
func trigIngest(ctx context.Context, q querier, pre *prepared, last *pgx.Batch) error {
	reads := &pgx.Batch{}
	finish, err := trigQueue(ctx, pre, reads, last)
	if err != nil {
		return err
	}
	if reads.Len() > 0 {
		if err := q.SendBatch(ctx, reads).Close(); err != nil {
			return err
		}
	}
	return finish()
}

// trigQueue is trigIngest in two steps, so the caller can send the read
// with its own (ingest sends it with the fold's reads): it queues the read
// on reads and the index upserts on last; finish, called once reads were
// sent, queues the messages on last.
func trigQueue(ctx context.Context, pre *prepared, reads, last *pgx.Batch) (finish func() error, err error) {
	none := func() error { return nil }
	st, send := ctx.Value(trigCtxKey{}).(*messages.Settings)
	if !send {
		st = defaultSettings()
	}
	es := pre.es
	var ids, stores, mds []string
	var enrolled []time.Time
	var touched []string
	for i := range es {
		e := &es[i]
		switch {
		case e.Enrol != nil:
			id := e.Enrol.Member.ID
			if id == "" {
				id = e.MemberID
			}
			md, _ := messages.BirthdayMonthDay(e.Enrol.Member.Birthday)
			ids, stores, mds, enrolled = append(ids, id), append(stores, e.Store), append(mds, md), append(enrolled, e.At)
		case e.MemberID != "" && (e.Sale != nil || e.Tier != nil):
			touched = append(touched, e.MemberID)
		}
	}
	var lots []any // msgLotsSQL's arguments
	if ea := st.Earnings(es); len(ea) > 0 {
		type key struct {
			m string
			d string
		}
		sum := map[key]int64{}
		for _, x := range ea {
			k := key{x.Member, x.Expires.String()}
			sum[k] = messages.AddPoints(sum[k], x.Points)
		}
		keys := make([]key, 0, len(sum))
		for k := range sum {
			keys = append(keys, k)
		}
		// Rows in key order: concurrent uploads lock them in one order.
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].m != keys[j].m {
				return keys[i].m < keys[j].m
			}
			return keys[i].d < keys[j].d
		})
		lm, ld, lp := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys))
		for i, k := range keys {
			lm[i], ld[i], lp[i] = k.m, k.d, sum[k]
		}
		lots = []any{lm, ld, lp}
	}
	if len(ids) > 0 || lots != nil {
		if lots == nil {
			lots = []any{[]string{}, []string{}, []int64{}}
		}
		last.Queue(msgIndexSQL, append([]any{ids, stores, mds, enrolled}, lots...)...)
	}
	if !send || len(touched) == 0 {
		return none, nil
	}
	var rs []trigRow
	reads.Queue(trigMembersSQL, touched).Query(func(rows pgx.Rows) error {
		var err error
		rs, err = pgx.CollectRows(rows, scanTrigRow)
		return err
	})
	return func() error {
		byID := map[string]trigRow{}
		for _, r := range rs {
			byID[r.id] = r
		}
		home := map[string]string{}
		for i, id := range ids {
			home[id] = stores[i]
		}
		members := map[string]messages.Member{}
		for _, d := range pre.ds {
			r := byID[d.MemberID]
			data := r.data
			if d.Enrol != nil {
				data = d.Enrol
			}
			store := r.store
			if store == "" {
				store = home[d.MemberID]
			}
			m := messages.MemberOf(data, store, messages.AddPoints(r.points, d.Points))
			m.ID = d.MemberID
			members[d.MemberID] = m
		}
		return QueueEnqueue(last, append(st.AfterSales(es, members), st.TierUpgrades(es, members)...))
	}, nil
}

// The trigger statements of ingest, as functions (fn.go).
const (
	msgMembersStmt = `INSERT INTO message_members (member_id, store, birthday_md, enrolled_at)
			SELECT DISTINCT ON (id) id, store, nullif(md, ''), at FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, store, md, at)
			ORDER BY id, at DESC
			ON CONFLICT (member_id) DO UPDATE SET store = CASE WHEN message_members.store = '' THEN excluded.store ELSE message_members.store END,
				birthday_md = excluded.birthday_md, enrolled_at = excluded.enrolled_at`
	msgLotsStmt = `INSERT INTO message_lots AS l (member_id, expires, points)
			SELECT m, d::date, p FROM unnest($%d::text[], $%d::text[], $%d::int8[]) WITH ORDINALITY AS u(m, d, p, o) ORDER BY o
			ON CONFLICT (member_id, expires) DO UPDATE SET points = CASE WHEN l.points > 9223372036854775807 - excluded.points
				THEN 9223372036854775807 ELSE l.points + excluded.points END`
)

var (
	// msgIndexSQL keeps both indexes, each when it has rows ($1, $5).
	msgIndexSQL = plBlock("msg_index", []string{"text[]", "text[]", "text[]", "timestamptz[]", "text[]", "text[]", "int8[]"}, "",
		"BEGIN\nIF cardinality($1) > 0 THEN\n"+msgMembersStmt+";\nEND IF;\nIF cardinality($5) > 0 THEN\n"+fmt.Sprintf(msgLotsStmt, 5, 6, 7)+";\nEND IF;\nEND")
	trigMembersSQL = plFn("trig_members", []string{"text[]"}, "id text, points int8, data jsonb, store text", `SELECT m.id, m.points, m.data, coalesce(mm.store, '') FROM members m
		LEFT JOIN message_members mm ON mm.member_id = m.id WHERE m.id = ANY($1)`)
)

type trigRow struct {
	id     string
	points int64
	data   *entry.Member
	store  string
}

func scanTrigRow(r pgx.CollectableRow) (trigRow, error) {
	var t trigRow
	err := r.Scan(&t.id, &t.points, &t.data, &t.store)
	return t, err
}

// The day job's reads: each goes through an index by the day's key
// (TestReminderDayQueriesUseIndexes), never over all members.
const (
	trigCols = `m.id, m.points, m.data, coalesce(mm.store, '')`
	// birthdaySQL: the members whose birthday month-day is one of $1.
	birthdaySQL = `SELECT ` + trigCols + ` FROM message_members mm JOIN members m ON m.id = mm.member_id
		WHERE mm.birthday_md = ANY($1) ORDER BY m.id`
	// expiringSQL: the members with points whose last valid day is $1, the
	// points earned for it and for later days.
	expiringSQL = `SELECT ` + trigCols + `, l.points,
		(SELECT least(coalesce(sum(l2.points), 0), 9223372036854775807)::int8 FROM message_lots l2
		 WHERE l2.member_id = l.member_id AND l2.expires > l.expires)
		FROM message_lots l JOIN members m ON m.id = l.member_id LEFT JOIN message_members mm ON mm.member_id = l.member_id
		WHERE l.expires = $1::date ORDER BY m.id`
	// recallSQL: the members whose last activity (last sale, or enrolment
	// before any) is in [$1, $2).
	recallSQL = `SELECT ` + trigCols + `, m.coupons FROM members m LEFT JOIN message_members mm ON mm.member_id = m.id
		WHERE m.last_sale >= $1 AND m.last_sale < $2
		UNION ALL
		SELECT ` + trigCols + `, m.coupons FROM message_members mm JOIN members m ON m.id = mm.member_id
		WHERE m.last_sale IS NULL AND mm.enrolled_at >= $1 AND mm.enrolled_at < $2`
)

// LastMessageDay is the latest day whose reminder job ran.
func (s *Store) LastMessageDay(ctx context.Context) (messages.Date, bool, error) {
	var d *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT max(day) FROM message_days`).Scan(&d); err != nil || d == nil {
		return messages.Date{}, false, err
	}
	return messages.Date{Y: d.Year(), M: d.Month(), D: d.Day()}, true, nil
}

// RunMessageDay runs day's reminder job in one transaction: the day's row
// is inserted first and is the claim (a second HQ process inserting it
// waits for the first to commit and then finds it; if the first rolls
// back, the second runs the day), then the coupons, the messages and the
// counts. No session state: it works through PgBouncer in transaction mode.
func (s *Store) RunMessageDay(ctx context.Context, st *messages.Settings, day messages.Date, now time.Time) (hq.MessageDay, error) {
	var res hq.MessageDay
	err := s.retry(ctx, func(tx pgx.Tx) error {
		res = hq.MessageDay{Day: day.String()}
		if _, err := tx.Exec(ctx, feedWriterSQL, int32(feedLock)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO message_days (day, ran_at) VALUES ($1::date, $2) ON CONFLICT (day) DO NOTHING`, day.String(), now)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		var msgs []messages.Message
		var ds []hq.Delta
		today := messages.DateOf(now, st.ChainZone())
		if target, on := st.BirthdayTarget(day); on && !target.Before(today) {
			rows, err := tx.Query(ctx, birthdaySQL, messages.BirthdayKeys(target))
			if err != nil {
				return err
			}
			ms, err := pgx.CollectRows(rows, scanTrigRow)
			if err != nil {
				return err
			}
			for _, r := range ms {
				msg, c, ok := st.Birthday(day, r.member(), now)
				if ok {
					msgs = append(msgs, msg)
					res.Birthday++
				}
				if c != nil {
					ds = append(ds, hq.Delta{MemberID: r.id, CouponsIssued: []entry.MemberCoupon{*c}})
				}
			}
		}
		if target, on := st.ExpiryTarget(day); on && !target.Before(today) {
			rows, err := tx.Query(ctx, expiringSQL, target.String())
			if err != nil {
				return err
			}
			type lotRow struct {
				trigRow
				at, later int64
			}
			ls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lotRow, error) {
				var x lotRow
				err := r.Scan(&x.id, &x.points, &x.data, &x.store, &x.at, &x.later)
				return x, err
			})
			if err != nil {
				return err
			}
			for _, r := range ls {
				if msg, ok := st.PointsExpiring(day, r.member(), messages.Expiring(r.points, r.at, r.later), now); ok {
					msgs = append(msgs, msg)
					res.PointsExpiring++
				}
			}
		}
		loc := st.ChainZone()
		states := st.RecallDates(day)
		for _, state := range []string{loyalty.StateAtRisk, loyalty.StateDormant} {
			d, ok := states[state]
			if !ok {
				continue
			}
			from, to := d.Start(loc), d.AddDays(1).Start(loc)
			rows, err := tx.Query(ctx, recallSQL, from, to)
			if err != nil {
				return err
			}
			type recallRow struct {
				trigRow
				coupons []hq.CouponState
			}
			rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (recallRow, error) {
				var x recallRow
				var cs []byte
				err := r.Scan(&x.id, &x.points, &x.data, &x.store, &cs)
				if err == nil {
					err = json.Unmarshal(cs, &x.coupons)
				}
				return x, err
			})
			if err != nil {
				return err
			}
			for _, r := range rs {
				msg, c, ok := st.Recall(day, state, r.member(), now)
				if c == nil || hq.HasCoupon(r.coupons, c.ID) {
					continue
				}
				ds = append(ds, hq.Delta{MemberID: r.id, CouponsIssued: []entry.MemberCoupon{*c}})
				if ok {
					msgs = append(msgs, msg)
					res.Recall++
				}
			}
		}
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].MemberID < ds[j].MemberID })
		ds = mergeDeltas(ds)
		if len(ds) > 0 {
			if err := applyDeltas(ctx, tx, &pgx.Batch{}, ds, nil, nil, false); err != nil {
				return err
			}
		}
		if err := EnqueueTx(ctx, tx, msgs); err != nil {
			return err
		}
		res.Ran, res.RanAt = true, now.UTC()
		_, err = tx.Exec(ctx, `UPDATE message_days SET birthday = $2, points_expiring = $3, recall = $4 WHERE day = $1::date`,
			day.String(), res.Birthday, res.PointsExpiring, res.Recall)
		return err
	})
	if err != nil {
		return hq.MessageDay{}, fmt.Errorf("hq: reminders of %s: %w", day, err)
	}
	return res, nil
}

func (r trigRow) member() messages.Member {
	m := messages.MemberOf(r.data, r.store, r.points)
	m.ID = r.id
	return m
}

// mergeDeltas folds sorted deltas of one member into one: applyDeltas
// updates each member once.
func mergeDeltas(ds []hq.Delta) []hq.Delta {
	var out []hq.Delta
	for _, d := range ds {
		if n := len(out); n > 0 && out[n-1].MemberID == d.MemberID {
			out[n-1].CouponsIssued = append(out[n-1].CouponsIssued, d.CouponsIssued...)
			continue
		}
		out = append(out, d)
	}
	return out
}

var _ hq.MessageDayStore = (*Store)(nil)
