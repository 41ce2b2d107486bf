package pg

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/jackc/pgx/v5"

	"posagent/ledger/entry"
	"posagent/sync/hq"
)

// KPI aggregates (hq.AggConfig.Fold), written in the ingest transaction.
//
// Locks: every writer of aggregates holds aggLock shared for its
// transaction and a rebuild holds it exclusively, so a rebuild never sees
// half an upload. Facts are read and written under transaction-level
// advisory locks on their ids (class aggFactLock), taken in one statement
// in hash order: two uploads touching the same member or sale take turns,
// others do not wait for each other. Transaction-level locks work through
// PgBouncer in transaction pooling mode (session locks do not).
const (
	aggLock     = 0x706b6167 // "pkag", the class of the aggregate lock
	aggFactLock = 0x6b706966 // "kpif", the class of fact locks
)

// aggLockSQL takes the shared aggregate lock and reads the configuration.
// Locks are keyed by the schema too: HQs in other schemas of the database
// never wait for each other.
const aggLockSQL = `SELECT config FROM agg_config, pg_advisory_xact_lock_shared($1::int4, hashtext(current_schema()))`

var aggCols = strings.Join(hq.AggCounterNames[:], ", ")

// wrapSQL adds two bigints with wrap-around, as Go adds int64s. The sum
// is taken in bigint when it fits (always, but for a counter at the edge)
// and in numeric only when it does not: numeric arithmetic on every
// counter of every row was a good part of an upload's aggregate writes.
func wrapSQL(a, b string) string {
	return fmt.Sprintf("CASE WHEN %[2]s = 0 THEN %[1]s WHEN (%[2]s > 0 AND %[1]s <= 9223372036854775807 - %[2]s) OR (%[2]s < 0 AND %[1]s >= '-9223372036854775808'::int8 - %[2]s) THEN %[1]s + %[2]s "+
		"ELSE ((%[1]s::numeric + %[2]s + 27670116110564327424) %% 18446744073709551616 - 9223372036854775808)::int8 END", a, b)
}

// aggWriteSQL is every write of a fold in one call (foldAgg's
// aggWrite): each statement is a round of parse, plan and executor start
// on the server, and a fold wrote up to nine. Each part runs only when it
// has rows.
var aggWriteSQL = func() string {
	var types []string
	param := func(typ string) string {
		types = append(types, typ)
		return fmt.Sprintf("$%d::%s", len(types), typ)
	}
	params := func(types ...string) []string {
		out := make([]string, len(types))
		for i, t := range types {
			out[i] = param(t)
		}
		return out
	}
	sales := params("text[]", "jsonb[]")
	heads := params("text[]", "jsonb[]")
	delHeads := param("text[]")
	ins := params("text[]", "text[]", "int4[]", "bytea[]")
	upd := params("text[]", "text[]", "int4[]", "bytea[]")
	del := params("text[]", "text[]", "int4[]")
	writer := param("text")
	totTypes := []string{"text[]"}
	for range hq.TotalNames {
		totTypes = append(totTypes, "text[]")
	}
	tot := params(totTypes...)
	aggTypes := []string{"int4[]", "text[]", "text[]", "text[]"}
	for range hq.AggCounterNames {
		aggTypes = append(aggTypes, "int8[]")
	}
	days := params(aggTypes...)
	months := params(aggTypes...)
	list := func(ps []string) string { return strings.Join(ps, ", ") }
	when := func(first, stmt string) string {
		return fmt.Sprintf("IF cardinality(%s) > 0 THEN\n%s;\nEND IF;\n", first, stmt)
	}
	var totNames, totSel, totSets []string
	for i, c := range hq.TotalNames {
		totNames = append(totNames, fmt.Sprintf("c%d", i))
		totSel = append(totSel, fmt.Sprintf("u.c%d::numeric", i))
		totSets = append(totSets, fmt.Sprintf("%s = a.%s + excluded.%s", c, c, c))
	}
	var aggSets []string
	for _, c := range hq.AggCounterNames {
		aggSets = append(aggSets, fmt.Sprintf("%s = %s", c, wrapSQL("a."+c, "excluded."+c)))
	}
	aggUpsert := func(table string, ps []string) string {
		return fmt.Sprintf(`INSERT INTO %s AS a (day, scope, store, cashier, %s, writer)
SELECT u.*, %s FROM unnest(%s) AS u
ON CONFLICT (day, scope, store, cashier, writer) DO UPDATE SET %s`, table, aggCols, writer, list(ps), strings.Join(aggSets, ", "))
	}
	body := "BEGIN\n" +
		when(sales[0], fmt.Sprintf(`INSERT INTO agg_sales (id, fact) SELECT * FROM unnest(%s)
	ON CONFLICT (id) DO UPDATE SET fact = excluded.fact`, list(sales))) +
		when(heads[0], fmt.Sprintf(`INSERT INTO agg_members (id, fact) SELECT * FROM unnest(%s)
	ON CONFLICT (id) DO UPDATE SET fact = excluded.fact`, list(heads))) +
		when(delHeads, fmt.Sprintf(`DELETE FROM agg_members WHERE id = ANY(%s)`, delHeads)) +
		when(ins[0], fmt.Sprintf(`INSERT INTO agg_visits (member, store, month, visits) SELECT * FROM unnest(%s)`, list(ins))) +
		when(upd[0], fmt.Sprintf(`UPDATE agg_visits a SET visits = u.visits FROM unnest(%s) AS u(member, store, month, visits)
	WHERE a.member = u.member AND a.store = u.store AND a.month = u.month`, list(upd))) +
		when(del[0], fmt.Sprintf(`DELETE FROM agg_visits a USING unnest(%s) AS u(member, store, month)
	WHERE a.member = u.member AND a.store = u.store AND a.month = u.month`, list(del))) +
		when(tot[0], fmt.Sprintf(`INSERT INTO agg_totals AS a (store, writer, %s)
SELECT u.store, %s, %s FROM unnest(%s) AS u(store, %s)
ON CONFLICT (store, writer) DO UPDATE SET %s`, totCols, writer, strings.Join(totSel, ", "), list(tot), strings.Join(totNames, ", "), strings.Join(totSets, ", "))) +
		when(days[0], aggUpsert("agg_days", days)) +
		when(months[0], aggUpsert("agg_months", months)) +
		"END"
	return plBlock("agg_write", types, "", body)
}()

// aggWrite collects a fold's writes as aggWriteSQL's arguments.
type aggWrite struct {
	saleIDs, headIDs, delHeads []string
	sales, heads               [][]byte
	ins, upd, del              visitRows
	totals                     map[string]*hq.TotalSums
	days, months               []hq.AggRow
}

func (w *aggWrite) empty() bool {
	return len(w.saleIDs)+len(w.headIDs)+len(w.delHeads)+len(w.ins.member)+len(w.upd.member)+len(w.del.member)+
		len(w.totals)+len(w.days)+len(w.months) == 0
}

// args are aggWriteSQL's arguments (empty arrays where a part has no rows).
func (w *aggWrite) args(writer string) []any {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	args := []any{nz(w.saleIDs), w.sales, nz(w.headIDs), w.heads, nz(w.delHeads),
		nz(w.ins.member), nz(w.ins.store), w.ins.month, w.ins.visits,
		nz(w.upd.member), nz(w.upd.store), w.upd.month, w.upd.visits,
		nz(w.del.member), nz(w.del.store), w.del.month,
		writer}
	stores := make([]string, 0, len(w.totals))
	cols := make([][]string, hq.TotCounters)
	for st, t := range w.totals {
		stores = append(stores, st)
		for i, v := range t {
			cols[i] = append(cols[i], v.String())
		}
	}
	args = append(args, stores)
	for _, c := range cols {
		args = append(args, nz(c))
	}
	return append(append(args, aggRowArgs(w.days)...), aggRowArgs(w.months)...)
}

// aggRowArgs are rows as column arrays: day, scope, store, cashier and the
// counters.
func aggRowArgs(rs []hq.AggRow) []any {
	days := make([]int32, len(rs))
	scopes, stores, cashiers := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs))
	cols := make([][]int64, hq.AggCounters)
	for i := range cols {
		cols[i] = make([]int64, len(rs))
	}
	for i, r := range rs {
		days[i], scopes[i], stores[i], cashiers[i] = int32(r.Day), r.Scope, r.Store, r.Cashier
		for j, v := range r.N {
			cols[j][i] = v
		}
	}
	args := []any{days, scopes, stores, cashiers}
	for _, c := range cols {
		args = append(args, c)
	}
	return args
}

// loadFactsSQL takes the fact locks of keys $2 ("s:" sale id, "m:"
// member id; class $1) in one statement in hash order, then returns the
// kept reversals of sales $3 (k 0: id, fact), the heads of members $4
// (k 1: id, fact) and the visit records the windows $5-$9 name (k 2:
// member, store, visits): per member and store, those in [lo, hi] and,
// with edges, the nearest one on either side. One call where there were
// four.
var loadFactsSQL = plBlock("load_facts", []string{"int4", "text[]", "text[]", "text[]", "text[]", "text[]", "int4[]", "int4[]", "bool[]"},
	"k int4, id text, store text, fact jsonb, visits bytea", `#variable_conflict use_column
BEGIN
IF cardinality($2) > 0 THEN
	PERFORM count(pg_advisory_xact_lock($1, h)) FROM
		(SELECT DISTINCT hashtext(current_schema() || ':' || u) AS h FROM unnest($2::text[]) AS u ORDER BY h) AS x;
END IF;
IF cardinality($3) > 0 THEN
	RETURN QUERY SELECT 0, s.id, ''::text, s.fact, NULL::bytea FROM agg_sales s WHERE s.id = ANY($3);
END IF;
IF cardinality($4) > 0 THEN
	RETURN QUERY SELECT 1, m.id, ''::text, m.fact, NULL::bytea FROM agg_members m WHERE m.id = ANY($4);
END IF;
IF cardinality($5) > 0 THEN
	RETURN QUERY SELECT 2, w.member, w.store, NULL::jsonb, v.visits
	FROM unnest($5::text[], $6::text[], $7::int4[], $8::int4[], $9::bool[]) AS w(member, store, lo, hi, edges)
	CROSS JOIN LATERAL (
		(SELECT a.visits FROM agg_visits a WHERE a.member = w.member AND a.store = w.store AND a.month BETWEEN w.lo AND w.hi)
		UNION ALL (SELECT a.visits FROM agg_visits a WHERE w.edges AND a.member = w.member AND a.store = w.store AND a.month < w.lo
			ORDER BY a.month DESC LIMIT 1)
		UNION ALL (SELECT a.visits FROM agg_visits a WHERE w.edges AND a.member = w.member AND a.store = w.store AND a.month > w.hi
			ORDER BY a.month LIMIT 1)
	) AS v;
END IF;
END`)

// factReads are loadFactsSQL's arguments.
type factReads struct {
	locks, sales, heads []string
	vMember, vStore     []string
	vLo, vHi            []int32
	vEdges              []bool
}

func (r *factReads) empty() bool {
	return len(r.locks)+len(r.sales)+len(r.heads)+len(r.vMember) == 0
}

func (r *factReads) args() []any {
	nz := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return []any{int32(aggFactLock), nz(r.locks), nz(r.sales), nz(r.heads), nz(r.vMember), nz(r.vStore), r.vLo, r.vHi, r.vEdges}
}

// loaded is what loadFacts read: the facts, and the members' heads as
// stored (to write only those that change).
type loaded struct {
	f     *hq.AggFacts
	heads map[string]hq.MemberFact
	// have holds the visit records read: those a fold changes are updated,
	// the others inserted (cheaper than an upsert's conflict path; the
	// fact locks make what was read the truth until commit).
	have map[hq.VisitRecord]bool
}

// loadFacts reads what folding es needs, under the fact locks (unless
// locked: a rebuild holds everything): the reversals kept of the sales es
// names, the sale entries its refunds and voids reverse, the heads of the
// members involved and the month records of their visits that the fold
// looks at (hq.VisitWindows). One round trip; a second when a reversed
// sale names a member or a day the batch itself does not. first, if not
// nil, holds statements of the caller's to send in the same round trip,
// ahead of these.
func loadFacts(ctx context.Context, q querier, cfg hq.AggConfig, es []entry.Entry, locked bool, first *pgx.Batch) (*loaded, error) {
	f := hq.NewAggFacts()
	ld := &loaded{f: f, heads: map[string]hq.MemberFact{}, have: map[hq.VisitRecord]bool{}}
	saleIDs := hq.AggSaleIDs(es)
	inBatch := map[string]bool{}
	for i := range es {
		if es[i].Sale != nil {
			inBatch[es[i].ID()] = true
		}
	}
	var stores, tills []string
	var seqs []int64
	for _, id := range saleIDs {
		if inBatch[id] {
			continue
		}
		st, tl, seq, err := entry.ParseID(id)
		if err != nil {
			continue // never stored: validation refuses such a reference
		}
		stores, tills, seqs = append(stores, st), append(tills, tl), append(seqs, int64(seq))
	}
	member := func(id string) *hq.MemberFact {
		m := f.Members[id]
		if m == nil {
			m = &hq.MemberFact{}
			f.Members[id] = m
		}
		return m
	}
	headRead := map[string]bool{}
	readHeads := func(r *factReads, ids []string) {
		for _, id := range ids {
			headRead[id] = true
		}
		r.heads = append(r.heads, ids...)
	}
	visitsRead := map[string]hq.VisitWindow{}
	readVisits := func(r *factReads, wins map[string]hq.VisitWindow) {
		row := func(id, st string, lo, hi int32, edge bool) {
			r.vMember, r.vStore, r.vLo, r.vHi, r.vEdges = append(r.vMember, id), append(r.vStore, st), append(r.vLo, lo), append(r.vHi, hi), append(r.vEdges, edge)
		}
		for id, w := range wins {
			visitsRead[id] = w
			switch {
			case w.Whole:
				row(id, "", math.MinInt32, math.MaxInt32, false)
			case len(w.Stores) > 0:
				row(id, "", int32(w.From), int32(w.To), true)
			}
			for _, st := range w.Stores {
				row(id, st, int32(w.From), int32(w.To), false)
			}
		}
	}
	// One statement takes every lock, in hash order.
	lock := func(r *factReads, sales, members []string) {
		if locked {
			return
		}
		for _, id := range sales {
			r.locks = append(r.locks, "s:"+id)
		}
		for _, id := range members {
			r.locks = append(r.locks, "m:"+id)
		}
	}
	// queue queues r's call on b, its rows going into the facts.
	queue := func(b *pgx.Batch, r *factReads) {
		if r.empty() {
			return
		}
		b.Queue(loadFactsSQL, r.args()...).Query(func(rows pgx.Rows) error {
			var k int32
			var id, st string
			var fact, visits []byte
			_, err := pgx.ForEachRow(rows, []any{&k, &id, &st, &fact, &visits}, func() error {
				switch k {
				case 0:
					var s hq.SaleFact
					if err := json.Unmarshal(fact, &s); err != nil {
						return err
					}
					if o := f.Sales[id]; o != nil { // the entry came first
						s.Seen, s.Store, s.Cashier, s.Member, s.Day, s.Due, s.Earned, s.Redeem = o.Seen, o.Store, o.Cashier, o.Member, o.Day, o.Due, o.Earned, o.Redeem
					}
					f.Sales[id] = &s
				case 1:
					var h hq.MemberFact
					if err := json.Unmarshal(fact, &h); err != nil {
						return err
					}
					m := member(id)
					m.Enrolled, m.EnrolDay, m.Home = h.Enrolled, h.EnrolDay, h.Home
					ld.heads[id] = m.Head()
				default:
					vs, err := hq.DecodeVisits(visits)
					if len(vs) > 0 {
						ld.have[hq.VisitRecord{Member: id, VisitKey: hq.VisitKey{Store: st, Month: vs[0].Day.Month()}}] = true
					}
					member(id).AddRecord(st, vs)
					return err
				}
				return nil
			})
			return err
		})
	}
	members := hq.AggMemberIDs(es, nil)
	b := first
	if b == nil {
		b = &pgx.Batch{}
	}
	r := &factReads{sales: saleIDs}
	lock(r, saleIDs, members)
	readHeads(r, members)
	// What the batch alone tells; a refund of an earlier sale may widen it.
	readVisits(r, cfg.VisitWindows(es, nil))
	queue(b, r)
	seeSales := func(rows pgx.Rows) error {
		var raw []byte
		_, err := pgx.ForEachRow(rows, []any{&raw}, func() error {
			var e entry.Entry
			if err := json.Unmarshal(raw, &e); err != nil || e.Sale == nil {
				return err
			}
			s := f.Sales[e.ID()]
			if s == nil {
				s = &hq.SaleFact{}
				f.Sales[e.ID()] = s
			}
			cfg.See(s, &e)
			return nil
		})
		return err
	}
	if len(seqs) > 0 {
		// Recent months and archived sales first (partition.go).
		b.Queue(recentSalesSQL, stores, tills, seqs, recentFrom()).Query(seeSales)
	}
	if b.Len() > 0 {
		if err := q.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	if st, tl, sq := unseen(f.Sales, stores, tills, seqs); len(sq) > 0 {
		b := &pgx.Batch{}
		b.Queue(allSalesSQL, st, tl, sq).Query(seeSales)
		if err := q.SendBatch(ctx, b).Close(); err != nil {
			return nil, err
		}
	}
	var more []string
	for _, id := range hq.AggMemberIDs(es, f.Sales) {
		if !headRead[id] {
			more = append(more, id)
		}
	}
	again := map[string]hq.VisitWindow{}
	for id, w := range cfg.VisitWindows(es, f.Sales) {
		if r, ok := visitsRead[id]; !ok || !r.Equal(w) {
			again[id] = w
			if m := f.Members[id]; m != nil {
				m.Visits, m.Days = nil, nil // read again
			}
		}
	}
	if len(more)+len(again) > 0 {
		b := &pgx.Batch{}
		r := &factReads{}
		lock(r, nil, more)
		readHeads(r, more)
		readVisits(r, again)
		queue(b, r)
		if b.Len() > 0 {
			if err := q.SendBatch(ctx, b).Close(); err != nil {
				return nil, err
			}
		}
	}
	for id, m := range f.Members {
		if !hq.KeepMember(m) {
			delete(f.Members, id)
		}
	}
	return ld, nil
}

// foldAgg folds es (stored in this transaction by writer, the uploading
// store/till) into the aggregates and queues the writes on out, which the
// caller sends. Of a sale only what refunds and voids wrote is kept; the
// rest is read from its entry when needed. Of a member, the head when it
// changed and the month records whose visits changed. first: the
// caller's statements to send with the fold's reads (sent even when es is
// empty).
func foldAgg(ctx context.Context, q querier, cfg hq.AggConfig, es []entry.Entry, writer string, locked bool, first, out *pgx.Batch) error {
	if len(es) == 0 {
		if first != nil && first.Len() > 0 {
			return q.SendBatch(ctx, first).Close()
		}
		return nil
	}
	ld, err := loadFacts(ctx, q, cfg, es, locked, first)
	if err != nil {
		return err
	}
	f := ld.f
	r := cfg.Fold(es, "", f)
	var w aggWrite
	for _, id := range r.Sales {
		if s := f.Sales[id]; s.HasReversal() {
			b, err := json.Marshal(s.Reversal())
			if err != nil {
				return err
			}
			w.saleIDs, w.sales = append(w.saleIDs, id), append(w.sales, b)
		}
	}
	for _, id := range r.Members {
		h := f.Members[id].Head()
		was, ok := ld.heads[id]
		switch {
		case h.Enrolled && (!ok || was.EnrolDay != h.EnrolDay || was.Home != h.Home || !was.Enrolled):
			b, err := json.Marshal(h)
			if err != nil {
				return err
			}
			w.headIDs, w.heads = append(w.headIDs, id), append(w.heads, b)
		case !h.Enrolled && ok:
			w.delHeads = append(w.delHeads, id)
		}
	}
	keys, visits := r.ChangedRecords(f)
	for i, k := range keys {
		switch {
		case len(visits[i]) > 0 && ld.have[k]:
			w.upd.add(k, hq.EncodeVisits(visits[i]))
		case len(visits[i]) > 0:
			w.ins.add(k, hq.EncodeVisits(visits[i]))
		case ld.have[k]:
			w.del.add(k, nil)
		}
	}
	w.totals = hq.EntryTotals(es)
	w.days, w.months = r.Delta.Rows()
	if !w.empty() {
		out.Queue(aggWriteSQL, w.args(writer)...)
	}
	return nil
}

// visitRows are visit records as statement arguments.
type visitRows struct {
	member, store []string
	month         []int32
	visits        [][]byte
}

func (r *visitRows) add(k hq.VisitRecord, b []byte) {
	r.member, r.store, r.month, r.visits = append(r.member, k.Member), append(r.store, k.Store), append(r.month, int32(k.Month)), append(r.visits, b)
}

var totCols = strings.Join(hq.TotalNames[:], ", ")

// totalsSQL adds to the totals records; sums travel as decimal text.
var totalsSQL = func() string {
	var args, names, sel, sets []string
	for i, n := range hq.TotalNames {
		args = append(args, fmt.Sprintf("$%d::text[]", i+3))
		names = append(names, fmt.Sprintf("c%d", i))
		sel = append(sel, fmt.Sprintf("u.c%d::numeric", i))
		sets = append(sets, fmt.Sprintf("%s = a.%s + excluded.%s", n, n, n))
	}
	types := []string{"text[]", "text"}
	for range hq.TotalNames {
		types = append(types, "text[]")
	}
	return plFn("totals", types, "", fmt.Sprintf(`INSERT INTO agg_totals AS a (store, writer, %s)
SELECT u.store, $2, %s FROM unnest($1::text[], %s) AS u(store, %s)
ON CONFLICT (store, writer) DO UPDATE SET %s`, totCols, strings.Join(sel, ", "), strings.Join(args, ", "), strings.Join(names, ", "), strings.Join(sets, ", ")))
}()

func queueTotals(out *pgx.Batch, d map[string]*hq.TotalSums, writer string) {
	if len(d) == 0 {
		return
	}
	stores := make([]string, 0, len(d))
	cols := make([][]string, hq.TotCounters)
	for st, t := range d {
		stores = append(stores, st)
		for i, v := range t {
			cols[i] = append(cols[i], v.String())
		}
	}
	args := []any{stores, writer}
	for _, c := range cols {
		args = append(args, c)
	}
	out.Queue(totalsSQL, args...)
}

// foldNow folds es and sends the writes at once (outside ingest's pipeline).
func foldNow(ctx context.Context, q querier, es []entry.Entry, writer string) error {
	var cfg hq.AggConfig
	b := &pgx.Batch{}
	b.Queue(aggLockSQL, int64(aggLock)).QueryRow(func(r pgx.Row) error { return r.Scan(&cfg) })
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	out := &pgx.Batch{}
	if err := foldAgg(ctx, q, cfg, es, writer, false, nil, out); err != nil {
		return err
	}
	if out.Len() == 0 {
		return nil
	}
	return q.SendBatch(ctx, out).Close()
}

func (s *Store) AggConfig(ctx context.Context) (hq.AggConfig, error) {
	var c hq.AggConfig
	err := s.pool.QueryRow(ctx, `SELECT config FROM agg_config`).Scan(&c)
	return c, err
}

// RebuildAggregates recomputes the aggregates from the entries in one
// transaction holding the aggregate lock exclusively (uploads wait).
func (s *Store) RebuildAggregates(ctx context.Context, c hq.AggConfig) error {
	return s.rebuild(ctx, c, false)
}

// buildAggregates builds the aggregates once if no hq has yet (the
// backfill after migration 5).
func (s *Store) buildAggregates(ctx context.Context) error {
	c, err := s.AggConfig(ctx)
	if err != nil {
		return err
	}
	return s.rebuild(ctx, c, true)
}

func (s *Store) rebuild(ctx context.Context, c hq.AggConfig, onlyUnbuilt bool) error {
	return s.retry(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext(current_schema()))`, int32(aggLock)); err != nil {
			return err
		}
		if onlyUnbuilt {
			var built bool
			if err := tx.QueryRow(ctx, `SELECT built FROM agg_config`).Scan(&built); err != nil || built {
				return err
			}
		}
		if err := archivedRebuildError(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `TRUNCATE agg_days, agg_months, agg_sales, agg_members, agg_visits, agg_totals`); err != nil {
			return err
		}
		var after int64
		for {
			rows, err := tx.Query(ctx, `SELECT id, body FROM entries WHERE id > $1 ORDER BY id LIMIT 5000`, after)
			if err != nil {
				return err
			}
			var es []entry.Entry
			var id int64
			var body []byte
			if _, err := pgx.ForEachRow(rows, []any{&id, &body}, func() error {
				after = id
				var e entry.Entry
				es = append(es, e)
				return json.Unmarshal(body, &es[len(es)-1])
			}); err != nil {
				return err
			}
			if len(es) == 0 {
				break
			}
			out := &pgx.Batch{}
			if err := foldAgg(ctx, tx, c, es, "", true, nil, out); err != nil {
				return err
			}
			if err := tx.SendBatch(ctx, out).Close(); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE agg_config SET config = $1, built = true`, c)
		return err
	})
}

func (s *Store) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	table := "agg_days"
	if months {
		table = "agg_months"
	}
	if scopes == nil {
		scopes = []string{} // NULL would match nothing
	}
	rows, err := s.pool.Query(ctx, `SELECT day, scope, store, cashier, `+aggCols+` FROM `+table+`
		WHERE day BETWEEN $1 AND $2 AND (cardinality($3::text[]) = 0 OR scope = ANY($3))`, int32(from), int32(to), scopes)
	if err != nil {
		return nil, err
	}
	return collectAggRows(rows)
}

func (s *Store) AggSpan(ctx context.Context) (first, last hq.Day, ok bool, err error) {
	// Two ends of the primary key's index.
	var lo, hi *int32
	err = s.pool.QueryRow(ctx, `SELECT min(day), max(day) FROM agg_months WHERE day < $1`, int32(hq.LifetimeDay)).Scan(&lo, &hi)
	if err != nil || lo == nil {
		return 0, 0, false, err
	}
	return hq.Day(*lo), hq.Day(*hi), true, nil
}

func collectAggRows(rows pgx.Rows) ([]hq.AggRow, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hq.AggRow, error) {
		var a hq.AggRow
		var day int32
		dst := []any{&day, &a.Scope, &a.Store, &a.Cashier}
		for i := range a.N {
			dst = append(dst, &a.N[i])
		}
		err := r.Scan(dst...)
		a.Day = hq.Day(day)
		return a, err
	})
}

func (s *Store) AggDump(ctx context.Context) (*hq.AggDump, error) {
	d := &hq.AggDump{Sales: map[string]*hq.SaleFact{}, Members: map[string]*hq.MemberFact{}}
	// One snapshot for all of it.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT config FROM agg_config`).Scan(&d.Config); err != nil {
			return err
		}
		for _, t := range []struct {
			table string
			dst   *[]hq.AggRow
		}{{"agg_days", &d.Days}, {"agg_months", &d.Months}} {
			rows, err := tx.Query(ctx, `SELECT day, scope, store, cashier, `+aggCols+` FROM `+t.table)
			if err != nil {
				return err
			}
			if *t.dst, err = collectAggRows(rows); err != nil {
				return err
			}
		}
		var id string
		var b []byte
		rows, err := tx.Query(ctx, `SELECT id, fact FROM agg_sales`)
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error {
			var f hq.SaleFact
			d.Sales[id] = &f
			return json.Unmarshal(b, &f)
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, fact FROM agg_members`)
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&id, &b}, func() error {
			var f hq.MemberFact
			d.Members[id] = &f
			return json.Unmarshal(b, &f)
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT member, store, visits FROM agg_visits ORDER BY member, store, month`)
		if err != nil {
			return err
		}
		var st string
		if _, err := pgx.ForEachRow(rows, []any{&id, &st, &b}, func() error {
			m := d.Members[id]
			if m == nil {
				m = &hq.MemberFact{}
				d.Members[id] = m
			}
			vs, err := hq.DecodeVisits(b)
			m.AddRecord(st, vs)
			return err
		}); err != nil {
			return err
		}
		d.Totals, err = readTotals(ctx, tx)
		return err
	})
	return d, err
}

func (s *Store) AggTotals(ctx context.Context) (map[string]*hq.TotalSums, error) {
	return readTotals(ctx, s.pool)
}

// readTotals sums the totals records per store.
func readTotals(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) (map[string]*hq.TotalSums, error) {
	var sums []string
	for _, n := range hq.TotalNames {
		sums = append(sums, "sum("+n+")::text")
	}
	rows, err := q.Query(ctx, `SELECT store, `+strings.Join(sums, ", ")+` FROM agg_totals GROUP BY store`)
	if err != nil {
		return nil, err
	}
	out := map[string]*hq.TotalSums{}
	var st string
	vs := make([]string, hq.TotCounters)
	dst := []any{&st}
	for i := range vs {
		dst = append(dst, &vs[i])
	}
	_, err = pgx.ForEachRow(rows, dst, func() error {
		t := &hq.TotalSums{}
		for i, v := range vs {
			n, err := hq.ParseSum(v)
			if err != nil {
				return fmt.Errorf("hq: totals of store %s: %w", st, err)
			}
			t[i] = n
		}
		out[st] = t
		return nil
	})
	return out, err
}
