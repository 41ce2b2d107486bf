package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// Enrolment facts for the fraud signals (migration 9): ingest queues two
// upserts into its last pipeline, so they cost no round trip of their own.
// Member rows are upserted in member order, the same in every transaction,
// so concurrent uploads never deadlock on them; cashier counts are per till,
// which uploads one batch at a time, so uploads never wait on them.

var _ hq.FraudStore = (*Store)(nil)

// fraudRow is a member's change as jsonb_to_recordset reads it (a missing
// time is NULL).
type fraudRow struct {
	Member     string     `json:"member"`
	Enrolled   bool       `json:"enrolled"`
	Store      string     `json:"store"`
	Till       string     `json:"till"`
	Seq        int64      `json:"seq"`
	Cashier    string     `json:"cashier"`
	Month      string     `json:"month"`
	At         *time.Time `json:"at,omitempty"`
	Mobile     string     `json:"mobile"`
	CardTokens []string   `json:"card_tokens"`
	FirstSale  *time.Time `json:"first_sale,omitempty"`
	Sales      int64      `json:"sales"`
	FirstVoid  *time.Time `json:"first_void,omitempty"`
	Voids      int64      `json:"voids"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// The enrolment's fields are taken when the row has none yet or this one
// is earlier (by time, then store, till, seq: whichever arrives first).
const fraudUpsertStmt = `INSERT INTO fraud_enrolments AS f (member_id, store, till, seq, cashier, month, at, mobile, card_tokens, first_sale, sales, first_void, voids)
SELECT x.member, x.store, x.till, x.seq, x.cashier, x.month, x.at, x.mobile,
    coalesce(ARRAY(SELECT jsonb_array_elements_text(x.card_tokens)), '{}'), x.first_sale, x.sales, x.first_void, x.voids
FROM jsonb_to_recordset($1::jsonb) AS x(member text, enrolled boolean, store text, till text, seq bigint, cashier text, month text,
    at timestamptz, mobile text, card_tokens jsonb, first_sale timestamptz, sales bigint, first_void timestamptz, voids bigint)
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
SELECT x.month, x.store, x.cashier, $3, x.sales, x.voids
FROM jsonb_to_recordset($2::jsonb) AS x(month text, store text, cashier text, sales bigint, voids bigint)
ORDER BY x.month COLLATE "C", x.store COLLATE "C", x.cashier COLLATE "C"
ON CONFLICT (month, store, cashier, till) DO UPDATE SET sales = c.sales + excluded.sales, voids = c.voids + excluded.voids`

// fraudSQL applies the members' changes ($1, NULL for none) and the
// cashier counts of till $3 ($2, NULL for none) in one call.
var fraudSQL = plBlock("fraud", []string{"jsonb", "jsonb", "text"}, "", `BEGIN
IF $1 IS NOT NULL THEN
`+fraudUpsertStmt+`;
END IF;
IF $2 IS NOT NULL THEN
`+fraudCountStmt+`;
END IF;
END`)

// queueFraud queues the fact changes of the entries of till into out.
func queueFraud(out *pgx.Batch, till string, es []entry.Entry) error {
	if len(es) == 0 {
		return nil
	}
	chs, counts := hq.FraudChanges(es)
	var members, cashiers *string
	if len(chs) > 0 {
		rows := make([]fraudRow, len(chs))
		for i, c := range chs {
			r := fraudRow{Member: c.Member, FirstSale: timePtr(c.FirstSale), Sales: c.Sales, FirstVoid: timePtr(c.FirstVoid), Voids: c.Voids}
			if e := c.Enrol; e != nil {
				r.Enrolled, r.Store, r.Till, r.Seq, r.Cashier, r.Month, r.At, r.Mobile, r.CardTokens =
					true, e.Store, e.Till, int64(e.Seq), e.Cashier, e.Month, timePtr(e.At), e.Mobile, e.CardTokens
			}
			rows[i] = r
		}
		b, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		members = new(string)
		*members = string(b)
	}
	if len(counts) > 0 {
		b, err := json.Marshal(counts)
		if err != nil {
			return err
		}
		cashiers = new(string)
		*cashiers = string(b)
	}
	if members != nil || cashiers != nil {
		out.Queue(fraudSQL, members, cashiers, till)
	}
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
	rows, err := s.pool.Query(ctx, `SELECT `+fraudCols+` FROM fraud_enrolments
		WHERE mobile = ANY($1::text[]) OR card_tokens && $2::text[]`, mobiles, tokens)
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
