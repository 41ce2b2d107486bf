package bolt

import (
	"bytes"
	"context"
	"encoding/json"

	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
)

// Enrolment facts for the fraud signals (hq.EnrolFact), kept at ingest.
// A new file has the buckets from the start; in a file from before them
// the first report (or RebuildFraudFacts) makes them from every stored
// entry, and until then ingest keeps nothing, so each entry is folded
// exactly once: both run in write transactions, one at a time.
var (
	bFraudMembers  = []byte("fraud_members")  // member id → EnrolFact
	bFraudMonths   = []byte("fraud_months")   // month\x00store\x00cashier\x00member → ""
	bFraudKeys     = []byte("fraud_keys")     // "m"\x00mobile\x00member, "c"\x00token\x00member → ""
	bFraudCashiers = []byte("fraud_cashiers") // month\x00store\x00cashier → CashierCount
	fraudBuckets   = [][]byte{bFraudMembers, bFraudMonths, bFraudKeys, bFraudCashiers}
)

var _ hq.FraudStore = (*Store)(nil)

// fraudFold adds the entries to the facts, inside the ingest transaction.
func fraudFold(tx *bbolt.Tx, es []entry.Entry) error {
	if len(es) == 0 || tx.Bucket(bFraudMembers) == nil {
		return nil
	}
	chs, counts := hq.FraudChanges(es)
	return fraudApply(tx, chs, counts)
}

func fraudApply(tx *bbolt.Tx, chs []hq.FraudChange, counts []hq.CashierCount) error {
	mb, mo, kb, cb := tx.Bucket(bFraudMembers), tx.Bucket(bFraudMonths), tx.Bucket(bFraudKeys), tx.Bucket(bFraudCashiers)
	for _, c := range chs {
		var f hq.EnrolFact
		if v := mb.Get([]byte(c.Member)); v != nil {
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
		}
		was := f
		f.Apply(c)
		// Only an enrolment changes what the indexes hold.
		if c.Enrol != nil && was.Enrolled() {
			if err := fraudIndex(mo, kb, &was, true); err != nil {
				return err
			}
		}
		if c.Enrol != nil && f.Enrolled() {
			if err := fraudIndex(mo, kb, &f, false); err != nil {
				return err
			}
		}
		v, err := json.Marshal(&f)
		if err != nil {
			return err
		}
		if err := mb.Put([]byte(c.Member), v); err != nil {
			return err
		}
	}
	for _, c := range counts {
		k := key(c.Month, c.Store, c.Cashier)
		var have hq.CashierCount
		if v := cb.Get(k); v != nil {
			if err := json.Unmarshal(v, &have); err != nil {
				return err
			}
		}
		have.Month, have.Store, have.Cashier = c.Month, c.Store, c.Cashier
		have.Sales += c.Sales
		have.Voids += c.Voids
		v, err := json.Marshal(have)
		if err != nil {
			return err
		}
		if err := cb.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// fraudIndex puts (or deletes) f's month and key index entries.
func fraudIndex(mo, kb *bbolt.Bucket, f *hq.EnrolFact, del bool) error {
	keys := [][]byte{key(f.Month, f.Store, f.Cashier, f.Member)}
	mks := [][]byte{}
	if f.Mobile != "" {
		mks = append(mks, key("m", f.Mobile, f.Member))
	}
	for _, t := range f.CardTokens {
		mks = append(mks, key("c", t, f.Member))
	}
	for i, set := range [][][]byte{keys, mks} {
		b := mo
		if i == 1 {
			b = kb
		}
		for _, k := range set {
			var err error
			if del {
				err = b.Delete(k)
			} else {
				err = b.Put(k, nil)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureFraud builds the facts from every stored entry once.
func (s *Store) ensureFraud() error {
	built := false
	_ = s.db.View(func(tx *bbolt.Tx) error { built = tx.Bucket(bFraudMembers) != nil; return nil })
	if built {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bFraudMembers) != nil {
			return nil
		}
		return fraudBuild(tx)
	})
}

func fraudBuild(tx *bbolt.Tx) error {
	for _, b := range fraudBuckets {
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
	flush := func() error {
		err := fraudFold(tx, chunk)
		chunk = chunk[:0]
		return err
	}
	err := boltjs.Each(tx.Bucket(bEntries), func(_ []byte, se storedEntry) error {
		if chunk = append(chunk, se.Entry); len(chunk) == 1000 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// RebuildFraudFacts folds every stored entry afresh.
func (s *Store) RebuildFraudFacts(ctx context.Context) error {
	return s.db.Update(fraudBuild)
}

// FraudMonth reads the month's index range and the facts it names: the
// month's enrolments only, however long the history.
func (s *Store) FraudMonth(ctx context.Context, month string) ([]hq.EnrolFact, []hq.CashierCount, error) {
	if err := s.ensureFraud(); err != nil {
		return nil, nil, err
	}
	var facts []hq.EnrolFact
	var counts []hq.CashierCount
	err := s.db.View(func(tx *bbolt.Tx) error {
		mb := tx.Bucket(bFraudMembers)
		pre := key(month, "")
		c := tx.Bucket(bFraudMonths).Cursor()
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			id := k[bytes.LastIndexByte(k, 0)+1:]
			var f hq.EnrolFact
			if err := json.Unmarshal(mb.Get(id), &f); err != nil {
				return err
			}
			facts = append(facts, f)
		}
		cc := tx.Bucket(bFraudCashiers).Cursor()
		for k, v := cc.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, v = cc.Next() {
			var n hq.CashierCount
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			counts = append(counts, n)
		}
		return nil
	})
	return facts, counts, err
}

// FraudRelated looks the mobiles and tokens up in the key index.
func (s *Store) FraudRelated(ctx context.Context, mobiles, tokens []string) ([]hq.EnrolFact, error) {
	if err := s.ensureFraud(); err != nil {
		return nil, err
	}
	var out []hq.EnrolFact
	err := s.db.View(func(tx *bbolt.Tx) error {
		mb := tx.Bucket(bFraudMembers)
		c := tx.Bucket(bFraudKeys).Cursor()
		seen := map[string]bool{}
		look := func(kind, v string) error {
			pre := key(kind, v, "")
			for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
				id := string(k[len(pre):])
				if seen[id] {
					continue
				}
				seen[id] = true
				var f hq.EnrolFact
				if err := json.Unmarshal(mb.Get([]byte(id)), &f); err != nil {
					return err
				}
				out = append(out, f)
			}
			return nil
		}
		for _, m := range mobiles {
			if err := look("m", m); err != nil {
				return err
			}
		}
		for _, t := range tokens {
			if err := look("c", t); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// FraudDump reads every fact and count.
func (s *Store) FraudDump(ctx context.Context) (*hq.FraudFacts, error) {
	if err := s.ensureFraud(); err != nil {
		return nil, err
	}
	d := &hq.FraudFacts{Members: map[string]*hq.EnrolFact{}, Cashiers: map[[3]string]hq.CashierCount{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bFraudMembers).ForEach(func(k, v []byte) error {
			f := &hq.EnrolFact{}
			d.Members[string(k)] = f
			return json.Unmarshal(v, f)
		}); err != nil {
			return err
		}
		return tx.Bucket(bFraudCashiers).ForEach(func(_, v []byte) error {
			var c hq.CashierCount
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			d.AddCounts([]hq.CashierCount{c})
			return nil
		})
	})
	return d, err
}
