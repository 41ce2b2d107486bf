package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
)

// KPI aggregates (hq.Fold), written in the transaction that stores the
// entries. Row keys start with the day, so a month's rows are one range.
var (
	bAggDays    = []byte("agg_days")    // day | scope | store \0 cashier → counters
	bAggMonths  = []byte("agg_months")  // the same, per month (its first day)
	bAggSales   = []byte("agg_sales")   // sale entry id → hq.SaleFact
	bAggMembers = []byte("agg_members") // member id → head (hq.MemberFact without visits), enrolled members only
	bAggVisits  = []byte("agg_visits")  // member id \0 store \0 month → hq.EncodeVisits (store "": the chain's)
	bAggTotals  = []byte("agg_totals")  // store → entry totals, hq.TotCounters × 16 bytes
	aggBuckets  = [][]byte{bAggDays, bAggMonths, bAggSales, bAggMembers, bAggVisits, bAggTotals}
	kAggConfig  = []byte("agg_config") // in meta: the hq.AggConfig the rows were built with
)

// aggDay encodes a day so keys sort as days do (sign bit flipped).
func aggDay(d hq.Day) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(d)^1<<31)
	return b[:]
}

func aggKey(k hq.AggKey) []byte {
	b := append(aggDay(k.Day), k.Scope...)
	b = append(b, k.Store...)
	b = append(b, 0)
	return append(b, k.Cashier...)
}

func parseAggKey(b []byte) (hq.AggKey, error) {
	if len(b) < 5 {
		return hq.AggKey{}, fmt.Errorf("hq store: aggregate key %x too short", b)
	}
	k := hq.AggKey{Day: hq.Day(binary.BigEndian.Uint32(b) ^ 1<<31), Scope: string(b[4:5])}
	st, c, ok := bytes.Cut(b[5:], []byte{0})
	if !ok {
		return hq.AggKey{}, fmt.Errorf("hq store: aggregate key %x has no cashier part", b)
	}
	k.Store, k.Cashier = string(st), string(c)
	return k, nil
}

func getCounts(v []byte) (c hq.Counts) {
	for i := range c {
		if len(v) >= 8*(i+1) {
			c[i] = int64(binary.BigEndian.Uint64(v[8*i:]))
		}
	}
	return c
}

func putCounts(c *hq.Counts) []byte {
	b := make([]byte, 8*len(c))
	for i, v := range c {
		binary.BigEndian.PutUint64(b[8*i:], uint64(v))
	}
	return b
}

func aggConfigTx(tx *bbolt.Tx) (hq.AggConfig, error) {
	v := tx.Bucket(bMeta).Get(kAggConfig)
	if v == nil {
		return hq.DefaultAggConfig, nil
	}
	var c hq.AggConfig
	err := json.Unmarshal(v, &c)
	return c, err
}

// fold folds es (just stored) into the aggregates within tx.
func fold(tx *bbolt.Tx, es []entry.Entry, shard string) error {
	if len(es) == 0 {
		return nil
	}
	cfg, err := aggConfigTx(tx)
	if err != nil {
		return err
	}
	return foldWith(tx, cfg, es, shard)
}

func foldWith(tx *bbolt.Tx, cfg hq.AggConfig, es []entry.Entry, shard string) error {
	f := hq.NewAggFacts()
	sb, mb, vb := tx.Bucket(bAggSales), tx.Bucket(bAggMembers), tx.Bucket(bAggVisits)
	for _, id := range hq.AggSaleIDs(es) {
		if v := sb.Get([]byte(id)); v != nil {
			var s hq.SaleFact
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			f.Sales[id] = &s
		}
	}
	wins := cfg.VisitWindows(es, f.Sales)
	for _, id := range hq.AggMemberIDs(es, f.Sales) {
		m := &hq.MemberFact{}
		if v := mb.Get([]byte(id)); v != nil {
			if err := json.Unmarshal(v, m); err != nil {
				return err
			}
		}
		if w, ok := wins[id]; ok {
			if err := readVisits(vb, id, w, m); err != nil {
				return err
			}
		}
		if hq.KeepMember(m) {
			f.Members[id] = m
		}
	}
	r := cfg.Fold(es, shard, f)
	for _, id := range r.Sales {
		var err error
		if s := f.Sales[id]; s.Keep() {
			err = boltjs.Put(sb, []byte(id), s)
		} else {
			err = sb.Delete([]byte(id))
		}
		if err != nil {
			return err
		}
	}
	for _, id := range r.Members {
		var err error
		if m := f.Members[id]; m.Enrolled {
			err = boltjs.Put(mb, []byte(id), m.Head())
		} else {
			err = mb.Delete([]byte(id))
		}
		if err != nil {
			return err
		}
	}
	keys, visits := r.ChangedRecords(f)
	for i, k := range keys {
		var err error
		if len(visits[i]) > 0 {
			err = vb.Put(visitKey(k.Member, k.Store, k.Month), hq.EncodeVisits(visits[i]))
		} else {
			err = vb.Delete(visitKey(k.Member, k.Store, k.Month))
		}
		if err != nil {
			return err
		}
	}
	if err := addTotals(tx.Bucket(bAggTotals), hq.EntryTotals(es)); err != nil {
		return err
	}
	days, months := r.Delta.Rows()
	if err := addRows(tx.Bucket(bAggDays), days); err != nil {
		return err
	}
	return addRows(tx.Bucket(bAggMonths), months)
}

func visitKey(member, store string, month hq.Day) []byte {
	return append(visitPrefix(member, store), aggDay(month)...)
}

func visitPrefix(member, store string) []byte {
	b := append([]byte(member), 0)
	return append(append(b, store...), 0)
}

// readVisits adds to m the visit records that w names: of the stores in
// w, the months in [w.From, w.To]; of the chain, those and the nearest
// one on either side (every one if w.Whole).
func readVisits(b *bbolt.Bucket, member string, w hq.VisitWindow, m *hq.MemberFact) error {
	c := b.Cursor()
	add := func(store string, v []byte) error {
		vs, err := hq.DecodeVisits(v)
		m.AddRecord(store, vs)
		return err
	}
	span := func(store string, edges bool) error {
		prefix := visitPrefix(member, store)
		start, end := visitKey(member, store, w.From), visitKey(member, store, w.To)
		if edges {
			k, _ := c.Seek(start)
			var pk, pv []byte
			if k == nil {
				pk, pv = c.Last()
			} else {
				pk, pv = c.Prev()
			}
			if pk != nil && bytes.HasPrefix(pk, prefix) {
				if err := add(store, pv); err != nil {
					return err
				}
			}
		}
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if bytes.Compare(k, end) > 0 && !edges {
				break
			}
			if err := add(store, v); err != nil {
				return err
			}
			if bytes.Compare(k, end) > 0 {
				break // the first month after the window
			}
		}
		return nil
	}
	if w.Whole {
		prefix := visitPrefix(member, "")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := add("", v); err != nil {
				return err
			}
		}
	} else if len(w.Stores) > 0 {
		if err := span("", true); err != nil {
			return err
		}
	}
	for _, st := range w.Stores {
		if err := span(st, false); err != nil {
			return err
		}
	}
	return nil
}

// getTotals reads a totals record.
func getTotals(v []byte) (t hq.TotalSums) {
	for i := range t {
		if len(v) >= 16*(i+1) {
			t[i] = hq.Sum{Hi: int64(binary.BigEndian.Uint64(v[16*i:])), Lo: binary.BigEndian.Uint64(v[16*i+8:])}
		}
	}
	return t
}

func putTotals(t *hq.TotalSums) []byte {
	b := make([]byte, 16*len(t))
	for i, s := range t {
		binary.BigEndian.PutUint64(b[16*i:], uint64(s.Hi))
		binary.BigEndian.PutUint64(b[16*i+8:], s.Lo)
	}
	return b
}

func addTotals(b *bbolt.Bucket, d map[string]*hq.TotalSums) error {
	for st, add := range d {
		t := getTotals(b.Get([]byte(st)))
		t.AddAll(add)
		if err := b.Put([]byte(st), putTotals(&t)); err != nil {
			return err
		}
	}
	return nil
}

// upgradeAggregates brings the aggregates of a file of schema n (1..4) to
// this one: schema 4 dropped the reversals of walk-in sales that arrived
// with or before their sale and took back whatever points a refund named;
// schema 3 kept each member's visits in its fact and had no entry totals;
// older ones had no aggregates. They are rebuilt from the entries (with the
// configuration the file's rows were built with).
func upgradeAggregates(tx *bbolt.Tx, n uint64) error {
	if n < 1 || n >= 5 {
		return nil
	}
	cfg, err := aggConfigTx(tx)
	if err != nil {
		return err
	}
	return rebuildAggregates(tx, cfg)
}

func (s *Store) AggTotals(ctx context.Context) (map[string]*hq.TotalSums, error) {
	out := map[string]*hq.TotalSums{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bAggTotals).ForEach(func(k, v []byte) error {
			t := getTotals(v)
			out[string(k)] = &t
			return ctx.Err()
		})
	})
	return out, err
}

func addRows(b *bbolt.Bucket, rs []hq.AggRow) error {
	for _, r := range rs {
		k := aggKey(r.AggKey)
		c := getCounts(b.Get(k))
		for i, v := range r.N {
			c[i] += v
		}
		var err error
		if c.Zero() {
			err = b.Delete(k)
		} else {
			err = b.Put(k, putCounts(&c))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rebuildAggregates drops every row and fact and folds all stored entries
// again with cfg, in tx.
func rebuildAggregates(tx *bbolt.Tx, cfg hq.AggConfig) error {
	for _, b := range aggBuckets {
		if tx.Bucket(b) != nil {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	var chunk []entry.Entry
	err := boltjs.Each(tx.Bucket(bEntries), func(_ []byte, se storedEntry) error {
		chunk = append(chunk, se.Entry)
		if len(chunk) < 4096 {
			return nil
		}
		err := foldWith(tx, cfg, chunk, "")
		chunk = chunk[:0]
		return err
	})
	if err == nil {
		err = foldWith(tx, cfg, chunk, "")
	}
	if err != nil {
		return err
	}
	return boltjs.Put(tx.Bucket(bMeta), kAggConfig, cfg)
}

func (s *Store) AggConfig(context.Context) (c hq.AggConfig, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		c, err = aggConfigTx(tx)
		return err
	})
	return c, err
}

// RebuildAggregates runs in one write transaction: bbolt has one writer,
// so no upload is stored meanwhile.
func (s *Store) RebuildAggregates(_ context.Context, c hq.AggConfig) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return rebuildAggregates(tx, c) })
}

func (s *Store) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	bk := bAggDays
	if months {
		bk = bAggMonths
	}
	var out []hq.AggRow
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bk).Cursor()
		end := aggDay(to)
		for k, v := c.Seek(aggDay(from)); k != nil && bytes.Compare(k[:4], end) <= 0; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(scopes) > 0 && (len(k) < 5 || !bytes.Contains([]byte(joinScopes(scopes)), k[4:5])) {
				continue
			}
			key, err := parseAggKey(k)
			if err != nil {
				return err
			}
			out = append(out, hq.AggRow{AggKey: key, N: getCounts(v)})
		}
		return nil
	})
	return out, err
}

func (s *Store) AggSpan(ctx context.Context) (first, last hq.Day, ok bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bAggMonths).Cursor()
		k, _ := c.First()
		if k == nil || len(k) < 4 || bytes.Compare(k[:4], aggDay(hq.LifetimeDay)) >= 0 {
			return nil
		}
		first = hq.Day(binary.BigEndian.Uint32(k) ^ 1<<31)
		c.Seek(aggDay(hq.LifetimeDay))
		if k, _ = c.Prev(); k == nil || len(k) < 4 { // Seek found the lifetime rows or the end
			k, _ = c.Last()
		}
		last, ok = hq.Day(binary.BigEndian.Uint32(k)^1<<31), true
		return nil
	})
	return first, last, ok, err
}

// fillLifetime writes the LifetimeDay rows of a file of schema 5 or 6,
// whose month rows are otherwise right: each store's life-cycle counters
// summed over its month rows.
func fillLifetime(tx *bbolt.Tx) error {
	b := tx.Bucket(bAggMonths)
	sum := hq.AggDelta{}
	end := aggDay(hq.LifetimeDay)
	c := b.Cursor()
	for k, v := c.First(); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
		key, err := parseAggKey(k)
		if err != nil {
			return err
		}
		if key.Scope != hq.ScopeStore {
			continue
		}
		n := getCounts(v)
		sum[key] = &n
	}
	_, months := sum.Rows()
	var life []hq.AggRow
	for _, r := range months {
		if r.Day == hq.LifetimeDay {
			life = append(life, r)
		}
	}
	return addRows(b, life)
}

func joinScopes(s []string) string {
	var b bytes.Buffer
	for _, x := range s {
		b.WriteString(x)
	}
	return b.String()
}

func (s *Store) AggDump(ctx context.Context) (*hq.AggDump, error) {
	d := &hq.AggDump{Sales: map[string]*hq.SaleFact{}, Members: map[string]*hq.MemberFact{}}
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		if d.Config, err = aggConfigTx(tx); err != nil {
			return err
		}
		rows := func(b []byte) ([]hq.AggRow, error) {
			var out []hq.AggRow
			err := tx.Bucket(b).ForEach(func(k, v []byte) error {
				key, err := parseAggKey(k)
				out = append(out, hq.AggRow{AggKey: key, N: getCounts(v)})
				return err
			})
			return out, err
		}
		if d.Days, err = rows(bAggDays); err != nil {
			return err
		}
		if d.Months, err = rows(bAggMonths); err != nil {
			return err
		}
		if err := boltjs.Each(tx.Bucket(bAggSales), func(k []byte, f hq.SaleFact) error {
			d.Sales[string(k)] = &f
			return ctx.Err()
		}); err != nil {
			return err
		}
		if err := boltjs.Each(tx.Bucket(bAggMembers), func(k []byte, f hq.MemberFact) error {
			d.Members[string(k)] = &f
			return ctx.Err()
		}); err != nil {
			return err
		}
		// Records in key order: each member's months in order.
		if err := tx.Bucket(bAggVisits).ForEach(func(k, v []byte) error {
			id, rest, ok := bytes.Cut(k, []byte{0})
			st, _, ok2 := bytes.Cut(rest, []byte{0})
			if !ok || !ok2 {
				return fmt.Errorf("hq store: visit key %x has no store or month", k)
			}
			m := d.Members[string(id)]
			if m == nil {
				m = &hq.MemberFact{}
				d.Members[string(id)] = m
			}
			vs, err := hq.DecodeVisits(v)
			m.AddRecord(string(st), vs)
			return err
		}); err != nil {
			return err
		}
		d.Totals = map[string]*hq.TotalSums{}
		return tx.Bucket(bAggTotals).ForEach(func(k, v []byte) error {
			t := getTotals(v)
			d.Totals[string(k)] = &t
			return nil
		})
	})
	return d, err
}
