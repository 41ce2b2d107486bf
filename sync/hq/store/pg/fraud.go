package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// Enrolment facts for the fraud signals (migration 9): ingest queues one
// call doing two upserts into its last pipeline, so they cost no round trip
// of their own.
// Member rows are upserted in member order, the same in every transaction,
// so concurrent uploads never deadlock on them; cashier counts are per till,
// which uploads one batch at a time, so uploads never wait on them.

var _ hq.FraudStore = (*Store)(nil)

// The enrolment's fields are taken when the row has none yet or this one
// is earlier (by time, then store, till, seq: whichever arrives first).
const fraudUpsertStmt = `INSERT INTO fraud_enrolments AS f (member_id, store, till, seq, cashier, month, at, mobile, card_tokens, first_sale, sales, first_void, voids)
SELECT x.member, x.store, x.till, x.seq, x.cashier, x.month, x.at, x.mobile,
    CASE WHEN x.cards IS NULL THEN '{}' ELSE ARRAY(SELECT jsonb_array_elements_text(x.cards)) END, x.first_sale, x.sales, x.first_void, x.voids
FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::jsonb[],
    $10::timestamptz[], $11::int8[], $12::timestamptz[], $13::int8[])
    AS x(member, store, till, seq, cashier, month, at, mobile, cards, first_sale, sales, first_void, voids)
ORDER BY x.member COLLATE "C"
ON CONFLICT (member_id) DO UPDATE SET
    store       = CASE WHEN ` + fraudTake + ` THEN excluded.store ELSE f.store END,
    till        = CASE WHEN ` + fraudTake + ` THEN excluded.till ELSE f.till END,
    seq         = CASE WHEN ` + fraudTake + ` THEN excluded.seq ELSE f.seq END,
    cashier     = CASE WHEN ` + fraudTake + ` THEN excluded.cashier ELSE f.cashier END,
    mobile      = CASE WHEN ` + fraudTake + ` THEN excluded.mobile ELSE f.mobile END,
    card_tokens = CASE WHEN ` + fraudTake + ` THEN excluded.card_tokens ELSE f.card_tokens END,
    at          = CASE WHEN ` + fraudTake + ` THEN excluded.at ELSE f.at END,
    month       = CASE WHEN ` + fraudTake + ` THEN excluded.month ELSE f.month END,
    first_sale  = least(f.first_sale, excluded.first_sale),
    sales       = f.sales + excluded.sales,
    first_void  = least(f.first_void, excluded.first_void),
    voids       = f.voids + excluded.voids`

const fraudTake = `(excluded.month <> '' AND (f.month = '' OR excluded.at < f.at OR (excluded.at = f.at AND
    (excluded.store COLLATE "C", excluded.till COLLATE "C", excluded.seq) < (f.store COLLATE "C", f.till COLLATE "C", f.seq))))`

const fraudCountStmt = `INSERT INTO fraud_cashier_months AS c (month, store, cashier, till, sales, voids)
SELECT x.month, x.store, x.cashier, $19, x.sales, x.voids
FROM unnest($14::text[], $15::text[], $16::text[], $17::int8[], $18::int8[]) AS x(month, store, cashier, sales, voids)
ORDER BY x.month COLLATE "C", x.store COLLATE "C", x.cashier COLLATE "C"
ON CONFLICT (month, store, cashier, till) DO UPDATE SET sales = c.sales + excluded.sales, voids = c.voids + excluded.voids`

// fraudSQL applies the members' changes ($1-$13, column arrays) and the
// cashier counts of till $19 ($14-$18) in one call. Arrays, not JSON
// records: the server then parses no JSON and no times from text.
var fraudSQL = plBlock("fraud", []string{"text[]", "text[]", "text[]", "int8[]", "text[]", "text[]", "timestamptz[]", "text[]", "jsonb[]",
	"timestamptz[]", "int8[]", "timestamptz[]", "int8[]", "text[]", "text[]", "text[]", "int8[]", "int8[]", "text"}, "", `BEGIN
IF cardinality($1) > 0 THEN
`+fraudUpsertStmt+`;
END IF;
IF cardinality($14) > 0 THEN
`+fraudCountStmt+`;
END IF;
END`)

// optTime is t as a timestamptz, NULL when zero.
func optTime(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()} }

// queueFraud queues the fact changes of the entries of till into out.
func queueFraud(out *pgx.Batch, till string, es []entry.Entry) error {
	if len(es) == 0 {
		return nil
	}
	chs, counts := hq.FraudChanges(es)
	if len(chs)+len(counts) == 0 {
		return nil
	}
	n := len(chs)
	member, store, tl, cashier, month, mobile := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seq, sales, voids := make([]int64, n), make([]int64, n), make([]int64, n)
	at, firstSale, firstVoid := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	cards := make([][]byte, n) // nil: none (NULL)
	for i, c := range chs {
		member[i], sales[i], voids[i] = c.Member, c.Sales, c.Voids
		firstSale[i], firstVoid[i] = optTime(c.FirstSale), optTime(c.FirstVoid)
		if e := c.Enrol; e != nil {
			store[i], tl[i], seq[i], cashier[i], month[i], at[i], mobile[i] = e.Store, e.Till, int64(e.Seq), e.Cashier, e.Month, optTime(e.At), e.Mobile
			if e.CardTokens != nil {
				b, err := json.Marshal(e.CardTokens)
				if err != nil {
					return err
				}
				cards[i] = b
			}
		}
	}
	m := len(counts)
	cMonth, cStore, cCashier, cSales, cVoids := make([]string, m), make([]string, m), make([]string, m), make([]int64, m), make([]int64, m)
	for i, c := range counts {
		cMonth[i], cStore[i], cCashier[i], cSales[i], cVoids[i] = c.Month, c.Store, c.Cashier, c.Sales, c.Voids
	}
	out.Queue(fraudSQL, member, store, tl, seq, cashier, month, at, mobile, cards, firstSale, sales, firstVoid, voids,
		cMonth, cStore, cCashier, cSales, cVoids, till)
	return nil
}

// fraudNow applies the entries' fact changes through q at once.
func fraudNow(ctx context.Context, q querier, till string, es []entry.Entry) error {
	b := &pgx.Batch{}
	if err := queueFraud(b, till, es); err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	return q.SendBatch(ctx, b).Close()
}

const fraudCols = `member_id, store, till, seq, cashier, month, at, mobile, card_tokens, first_sale, sales, first_void, voids`

func scanFraud(r pgx.Row) (hq.EnrolFact, error) {
	var f hq.EnrolFact
	var seq int64
	var at, fs, fv *time.Time
	err := r.Scan(&f.Member, &f.Store, &f.Till, &seq, &f.Cashier, &f.Month, &at, &f.Mobile, &f.CardTokens, &fs, &f.Sales, &fv, &f.Voids)
	f.Seq = uint64(seq)
	for _, p := range []struct {
		dst *time.Time
		src *time.Time
	}{{&f.At, at}, {&f.FirstSale, fs}, {&f.FirstVoid, fv}} {
		if p.src != nil {
			*p.dst = p.src.UTC()
		}
	}
	if len(f.CardTokens) == 0 {
		f.CardTokens = nil
	}
	return f, err
}

// FraudMonth reads the month's rows by the month index.
func (s *Store) FraudMonth(ctx context.Context, month string) ([]hq.EnrolFact, []hq.CashierCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+fraudCols+` FROM fraud_enrolments WHERE month = $1 AND month <> ''`, month)
	if err != nil {
		return nil, nil, fmt.Errorf("hq: enrolment facts of %s: %w", month, err)
	}
	facts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.EnrolFact, error) { return scanFraud(r) })
	if err != nil {
		return nil, nil, err
	}
	rows, err = s.pool.Query(ctx, `SELECT month, store, cashier, sum(sales)::bigint, sum(voids)::bigint FROM fraud_cashier_months
		WHERE month = $1 GROUP BY month, store, cashier`, month)
	if err != nil {
		return nil, nil, err
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.CashierCount, error) {
		var c hq.CashierCount
		err := r.Scan(&c.Month, &c.Store, &c.Cashier, &c.Sales, &c.Voids)
		return c, err
	})
	return facts, counts, err
}

// fraudRelatedSQL reads the members with one of the mobiles $1 or card
// tokens $2 by the mobile and card token indexes, which hold only rows
// with a mobile and with tokens (migration 16): an empty mobile relates
// no one.
const fraudRelatedSQL = `SELECT ` + fraudCols + ` FROM fraud_enrolments
		WHERE (mobile = ANY($1::text[]) AND mobile <> '') OR (card_tokens && $2::text[] AND card_tokens <> '{}')`

// FraudRelated looks members up by the mobile and card token indexes.
func (s *Store) FraudRelated(ctx context.Context, mobiles, tokens []string) ([]hq.EnrolFact, error) {
	if mobiles == nil {
		mobiles = []string{}
	}
	if tokens == nil {
		tokens = []string{}
	}
	// Not enrolled yet (month '') is left out here, not in the query: a
	// condition on month would let the planner read the month index whole.
	rows, err := s.pool.Query(ctx, fraudRelatedSQL, mobiles, tokens)
	if err != nil {
		return nil, err
	}
	fs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.EnrolFact, error) { return scanFraud(r) })
	out := fs[:0]
	for _, f := range fs {
		if f.Enrolled() {
			out = append(out, f)
		}
	}
	return out, err
}

// FraudDump reads every fact and count.
func (s *Store) FraudDump(ctx context.Context) (*hq.FraudFacts, error) {
	d := &hq.FraudFacts{Members: map[string]*hq.EnrolFact{}, Cashiers: map[[3]string]hq.CashierCount{}}
	rows, err := s.pool.Query(ctx, `SELECT `+fraudCols+` FROM fraud_enrolments`)
	if err != nil {
		return nil, err
	}
	facts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.EnrolFact, error) { return scanFraud(r) })
	if err != nil {
		return nil, err
	}
	for i := range facts {
		d.Members[facts[i].Member] = &facts[i]
	}
	rows, err = s.pool.Query(ctx, `SELECT month, store, cashier, sales, voids FROM fraud_cashier_months`) // AddCounts sums the tills
	if err != nil {
		return nil, err
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.CashierCount, error) {
		var c hq.CashierCount
		err := r.Scan(&c.Month, &c.Store, &c.Cashier, &c.Sales, &c.Voids)
		return c, err
	})
	d.AddCounts(counts)
	return d, err
}

// RebuildFraudFacts empties the facts and runs migration 9's backfill
// again from the stored entries (what an upgraded database starts from).
func (s *Store) RebuildFraudFacts(ctx context.Context) error {
	src, err := migrationFS.ReadFile("migrations/0009_fraud_enrolments.sql")
	if err != nil {
		return err
	}
	_, backfill, ok := strings.Cut(string(src), "-- backfill")
	if !ok {
		return fmt.Errorf("hq: migration 9 has no backfill part")
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `TRUNCATE fraud_enrolments, fraud_cashier_months`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "--"+backfill)
		return err
	})
}
