package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
	"posagent/sync/wire"
)

// Group commit. Uploads queue for one committer goroutine, which takes
// every upload waiting and stores them all in one write transaction: one
// fsync and one copy of each touched B+tree page for the lot. Every upload
// gets its own answer: a gap is found before the upload writes anything and
// fails only that upload; any other error rolls the transaction back and
// the uploads of the group are then committed one by one, so one bad upload
// never fails the others. Nothing is answered before its commit (fsync)
// returned.

// ErrClosed is returned by Ingest once the store is closed.
var ErrClosed = errors.New("hq store is closed")

type ingestReq struct {
	b      hq.Batch
	enc    [][]byte   // per item: the stored entry or the dead letter, encoded
	deltas []hq.Delta // of all the batch's entries (right unless it overlaps acked)
	over   bool       // the batch's deltas for a member sum beyond int64
	ack    wire.Ack
	err    error
	done   chan struct{}
}

// prepare does the work that needs no lock: encoding and folding deltas
// run in the uploader's goroutine, concurrently, not in the committer.
func prepare(b hq.Batch) (*ingestReq, error) {
	r := &ingestReq{b: b, enc: make([][]byte, len(b.Items)), done: make(chan struct{})}
	es, dead := hq.Fresh(b, 0)
	ei, di := 0, 0
	for i, it := range b.Items {
		var err error
		if it.Entry != nil {
			r.enc[i], err = json.Marshal(storedEntry{Entry: es[ei], ReceivedAt: b.ReceivedAt})
			ei++
		} else {
			r.enc[i], err = json.Marshal(dead[di])
			di++
		}
		if err != nil {
			return nil, err
		}
	}
	var err error
	r.deltas, err = hq.Deltas(es)
	if errors.Is(err, hq.ErrOverflow) {
		r.over, err = true, nil // apply settles the batch entry by entry
	}
	return r, err
}

func (s *Store) Ingest(ctx context.Context, b hq.Batch) (wire.Ack, error) {
	if err := ctx.Err(); err != nil {
		return wire.Ack{}, err
	}
	r, err := prepare(b)
	if err != nil {
		return wire.Ack{}, err
	}
	select {
	case s.reqs <- r:
	case <-s.closing:
		return wire.Ack{}, ErrClosed
	case <-ctx.Done():
		return wire.Ack{}, ctx.Err()
	}
	// Once queued the upload is committed or not whatever ctx does; a
	// caller that gives up retries and is answered as a duplicate.
	select {
	case <-r.done:
		return r.ack, r.err
	case <-ctx.Done():
		return wire.Ack{}, ctx.Err()
	}
}

// maxGroupItems bounds one transaction's size (memory, commit time).
const maxGroupItems = 50000

func (s *Store) committer() {
	defer close(s.stopped)
	var group []*ingestReq
	for {
		select {
		case r := <-s.reqs:
			group = append(group[:0], r)
		case <-s.closing:
			return
		}
		items := len(group[0].b.Items)
		if s.delay > 0 {
			t := time.NewTimer(s.delay)
		wait:
			for items < maxGroupItems {
				select {
				case r := <-s.reqs:
					group = append(group, r)
					items += len(r.b.Items)
				case <-t.C:
					break wait
				}
			}
			t.Stop()
		}
	drain:
		for items < maxGroupItems {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				items += len(r.b.Items)
			default:
				break drain
			}
		}
		s.commit(group)
		clear(group)
	}
}

func (s *Store) commit(group []*ingestReq) {
	err := s.db.Update(func(tx *bbolt.Tx) (err error) {
		// A panic (a bug, or input nothing foresaw) fails the upload, as
		// db.Batch did, and not the whole HQ.
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("hq store: ingest panicked: %v", p)
			}
		}()
		ms := newMemberSet(tx)
		ms.identity = s.identity
		for _, r := range group {
			r.ack, r.err = apply(tx, ms, r)
			var gap *hq.GapError
			if r.err != nil && !errors.As(r.err, &gap) {
				return r.err
			}
		}
		return ms.flush()
	})
	if err == nil {
		s.commits.Add(1)
		s.uploads.Add(int64(len(group)))
	}
	if err != nil && len(group) > 1 {
		for _, r := range group {
			s.commit([]*ingestReq{r})
		}
		return
	}
	for _, r := range group {
		if err != nil {
			r.ack, r.err = wire.Ack{}, err
		}
		close(r.done)
	}
}

// apply stores one upload inside the group's transaction. A gap returns
// before anything is written.
func apply(tx *bbolt.Tx, ms *memberSet, r *ingestReq) (wire.Ack, error) {
	b := &r.b
	tills := tx.Bucket(bTills)
	tk := key(b.Store, b.Till)
	acked := boltjs.Uint64(tills.Get(tk))
	if b.First > acked+1 {
		return wire.Ack{}, &hq.GapError{Expected: acked + 1}
	}
	dup := b.Last <= acked
	if !dup {
		deltas, over := r.deltas, r.over
		if acked >= b.First { // overlaps what is held: only the rest counts
			es, _ := hq.Fresh(*b, acked)
			var err error
			deltas, err = hq.Deltas(es)
			over = errors.Is(err, hq.ErrOverflow)
		}
		fits, err := ms.fits(deltas)
		if err != nil {
			return wire.Ack{}, err
		}
		if over || !fits {
			// Entries that would take a balance beyond int64 become dead
			// letters; nothing is written yet.
			if r, deltas, err = settle(ms, r, acked); err != nil {
				return wire.Ack{}, err
			}
			b = &r.b
		}
		eb, db := tx.Bucket(bEntries), tx.Bucket(bDead)
		eb.FillPercent = 1 // export sequence only grows: pack the leaves full
		var stored []entry.Entry
		for i, it := range b.Items {
			if it.Seq <= acked {
				continue
			}
			if it.Entry != nil {
				stored = append(stored, *it.Entry)
			}
			if it.Entry == nil {
				if err := db.Put(deadKey(b.Store, b.Till, it.Seq), r.enc[i]); err != nil {
					return wire.Ack{}, err
				}
				continue
			}
			seq, err := eb.NextSequence()
			if err != nil {
				return wire.Ack{}, err
			}
			if err := eb.Put(boltjs.U64(seq), r.enc[i]); err != nil {
				return wire.Ack{}, err
			}
		}
		for _, d := range deltas {
			if err := ms.apply(d); err != nil {
				return wire.Ack{}, err
			}
		}
		// The KPI aggregates change with the entries, in this transaction.
		if err := fold(tx, stored, b.Store); err != nil {
			return wire.Ack{}, err
		}
		if err := fraudFold(tx, stored); err != nil {
			return wire.Ack{}, err
		}
		// Reminder indexes and messages, in this transaction (triggers.go).
		if err := trigIngest(tx, ms, stored); err != nil {
			return wire.Ack{}, err
		}
		if err := tills.Put(tk, boltjs.U64(b.Last)); err != nil {
			return wire.Ack{}, err
		}
	}
	var dls []hq.DeadLetter
	c := tx.Bucket(bDead).Cursor()
	end := deadKey(b.Store, b.Till, b.Last)
	for k, v := c.Seek(deadKey(b.Store, b.Till, b.First)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
		var d hq.DeadLetter
		if err := json.Unmarshal(v, &d); err != nil {
			return wire.Ack{}, err
		}
		dls = append(dls, d)
	}
	return hq.AckFor(*b, dls, dup), nil
}

// settle turns the entries of r beyond acked that would take a member's
// balance (as the group's transaction holds it) beyond int64 into dead
// letters, and returns the upload re-encoded with the deltas of the rest.
func settle(ms *memberSet, r *ingestReq, acked uint64) (*ingestReq, []hq.Delta, error) {
	bal := map[string]hq.Balance{}
	for _, id := range hq.BalanceMembers(r.b, acked) {
		sm, err := ms.get(id)
		if err != nil {
			return nil, nil, err
		}
		bal[id] = hq.Balance{Points: sm.rec.Points, StoredValue: sm.rec.StoredValue}
	}
	b, _ := hq.Settle(r.b, acked, bal)
	nr, err := prepare(b)
	if err != nil {
		return nil, nil, err
	}
	es, _ := hq.Fresh(b, acked)
	ds, err := hq.Deltas(es)
	return nr, ds, err
}
