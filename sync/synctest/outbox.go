// Package synctest holds the store↔HQ fault tests: HQ and stores run as
// real processes on loopback, connected through sync/faultproxy, and every
// case ends with HQ's totals equal to the stores' totals exactly.
//
// Outbox is a small durable outbox on bbolt that stands in for the till
// ledger (which sync must not import): gapless per-till sequences, a
// durable acknowledged mark, and an inbox for what HQ sends back.
package synctest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/internal/boltjs"
	"posagent/sync/wire"
)

var (
	bktTills   = []byte("tills") // till → bucket of seq → entry JSON
	bktAcked   = []byte("acked") // till → uint64
	bktMeta    = []byte("meta")  // cursor
	bktMembers = []byte("members")
	bktProgs   = []byte("programs")
	bktDead    = []byte("dead")
)

// Outbox is a durable client.Outbox and client.Inbox on a bbolt file.
type Outbox struct {
	db    *bolt.DB
	store string
}

// OpenOutbox opens (creating) the outbox of store at path.
func OpenOutbox(path, store string) (*Outbox, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("synctest: open outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktTills, bktAcked, bktMeta, bktMembers, bktProgs, bktDead} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Outbox{db: db, store: store}, nil
}

// Close closes the file.
func (o *Outbox) Close() error { return o.db.Close() }

// Append writes entries to till in one transaction, numbering them after
// the till's last sequence; Store, Till and Seq are filled in.
func (o *Outbox) Append(till string, es []entry.Entry) ([]entry.Entry, error) {
	out := make([]entry.Entry, len(es))
	err := o.db.Update(func(tx *bolt.Tx) error {
		tb, err := tx.Bucket(bktTills).CreateBucketIfNotExists([]byte(till))
		if err != nil {
			return err
		}
		next := boltjs.Last(tb) + 1
		for i, e := range es {
			e.Store, e.Till, e.Seq = o.store, till, next+uint64(i)
			if err := e.Validate(); err != nil {
				return err
			}
			if err := boltjs.Put(tb, boltjs.U64(e.Seq), e); err != nil {
				return err
			}
			out[i] = e
		}
		return nil
	})
	return out, err
}

// Len is the number of entries of till.
func (o *Outbox) Len(till string) (uint64, error) {
	var n uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		n = boltjs.Last(tx.Bucket(bktTills).Bucket([]byte(till)))
		return nil
	})
	return n, err
}

// All returns every entry of every till.
func (o *Outbox) All() ([]entry.Entry, error) {
	var out []entry.Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTills).ForEachBucket(func(k []byte) error {
			es, err := boltjs.All[entry.Entry](tx.Bucket(bktTills).Bucket(k))
			out = append(out, es...)
			return err
		})
	})
	return out, err
}

// Tills implements client.Outbox.
func (o *Outbox) Tills() ([]string, error) {
	var out []string
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTills).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// Pending implements client.Outbox.
func (o *Outbox) Pending(till string, after uint64, limit int) ([]entry.Entry, error) {
	if limit <= 0 {
		return nil, errors.New("synctest: limit must be positive")
	}
	var out []entry.Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bktTills).Bucket([]byte(till))
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		for k, v := c.Seek(boltjs.U64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var e entry.Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %s/%d: %w", till, boltjs.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Acked implements client.Outbox.
func (o *Outbox) Acked(till string) (uint64, error) {
	var a uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		a = boltjs.Uint64(tx.Bucket(bktAcked).Get([]byte(till)))
		return nil
	})
	return a, err
}

// Ack implements client.Outbox: durable, forward only, never past the end.
func (o *Outbox) Ack(till string, upTo uint64) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		last := boltjs.Last(tx.Bucket(bktTills).Bucket([]byte(till)))
		if upTo > last {
			return fmt.Errorf("synctest: ack up to %d but till %s holds %d entries", upTo, till, last)
		}
		b := tx.Bucket(bktAcked)
		if v := b.Get([]byte(till)); v != nil && boltjs.Uint64(v) >= upTo {
			return nil
		}
		return b.Put([]byte(till), boltjs.U64(upTo))
	})
}

// Backlog implements client.Backlogger.
func (o *Outbox) Backlog() (int, time.Time, error) {
	n, oldest := 0, time.Time{}
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktTills).ForEachBucket(func(k []byte) error {
			tb := tx.Bucket(bktTills).Bucket(k)
			acked, last := boltjs.Uint64(tx.Bucket(bktAcked).Get(k)), boltjs.Last(tb)
			if last > acked {
				n += int(last - acked)
				var e entry.Entry
				if v := tb.Get(boltjs.U64(acked + 1)); v != nil && json.Unmarshal(v, &e) == nil {
					if oldest.IsZero() || e.At.Before(oldest) {
						oldest = e.At
					}
				}
			}
			return nil
		})
	})
	return n, oldest, err
}

// RecordDeadLetters implements client.DeadLetterRecorder.
func (o *Outbox) RecordDeadLetters(dl []wire.DeadLetter) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		for _, d := range dl {
			if err := boltjs.Put(tx.Bucket(bktDead), []byte(fmt.Sprintf("%s/%s/%020d", d.Store, d.Till, d.Seq)), d); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeadLetters returns the recorded dead letters.
func (o *Outbox) DeadLetters() ([]wire.DeadLetter, error) {
	var out []wire.DeadLetter
	err := o.db.View(func(tx *bolt.Tx) (err error) {
		out, err = boltjs.All[wire.DeadLetter](tx.Bucket(bktDead))
		return err
	})
	return out, err
}

// ApplyMemberStates implements client.Inbox.
func (o *Outbox) ApplyMemberStates(states []wire.MemberState) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		for _, m := range states {
			if m.Member.ID == "" {
				return errors.New("synctest: member state without id")
			}
			if err := boltjs.Put(tx.Bucket(bktMembers), []byte(m.Member.ID), m); err != nil {
				return err
			}
		}
		return nil
	})
}

// Members returns the member states HQ sent, by id.
func (o *Outbox) Members() (map[string]wire.MemberState, error) {
	out := map[string]wire.MemberState{}
	err := o.db.View(func(tx *bolt.Tx) error {
		return boltjs.Each(tx.Bucket(bktMembers), func(k []byte, m wire.MemberState) error {
			out[string(k)] = m
			return nil
		})
	})
	return out, err
}

// ApplyProgram implements client.Inbox; kept by content, so twice is once.
func (o *Outbox) ApplyProgram(src []byte) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktProgs).Put(src, []byte{1})
	})
}

// Programs returns the program sources applied, sorted.
func (o *Outbox) Programs() ([]string, error) {
	var out []string
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktProgs).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	sort.Strings(out)
	return out, err
}

// SyncCursor implements client.Inbox.
func (o *Outbox) SyncCursor() (string, error) {
	var c string
	err := o.db.View(func(tx *bolt.Tx) error {
		c = string(tx.Bucket(bktMeta).Get([]byte("cursor")))
		return nil
	})
	return c, err
}

// SetSyncCursor implements client.Inbox.
func (o *Outbox) SetSyncCursor(c string) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put([]byte("cursor"), []byte(c))
	})
}
