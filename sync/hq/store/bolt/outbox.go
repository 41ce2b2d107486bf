package bolt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"posagent/sync/hq"
	"posagent/sync/hq/messages"
	"posagent/sync/internal/boltjs"
)

var (
	bOutbox     = []byte("outbox")        // message id → outboxRec
	bOutSeq     = []byte("outbox_seq")    // enqueue seq (be64) → id: listing order
	bOutDue     = []byte("outbox_due")    // due (be64 unix ns) + seq (be64) → id: pending only
	bOutMember  = []byte("outbox_member") // member \x00 seq (be64) → id
	bConsent    = []byte("consent")       // member → hq.Consent as it stands
	bConsentLog = []byte("consent_log")   // member \x00 seq (be64) → hq.ConsentEvent
)

func init() {
	allBuckets = append(allBuckets, bOutbox, bOutSeq, bOutDue, bOutMember, bConsent, bConsentLog)
}

var _ hq.Outbox = (*Store)(nil)

// outboxRec is a message as kept: the message, its place in the listing
// and its delivery state. Lease is the token of the claim holding it.
type outboxRec struct {
	hq.OutboxMessage
	Seq   uint64 `json:"seq"`
	Lease string `json:"lease,omitempty"`
}

// dueKey orders pending messages by due time, then enqueue order. Times
// before 1970 sort first.
func dueKey(t time.Time, seq uint64) []byte {
	var ns uint64
	if n := t.UnixNano(); n > 0 && !t.IsZero() {
		ns = uint64(n)
	}
	return append(boltjs.U64(ns), boltjs.U64(seq)...)
}

func memberKey(member string, seq uint64) []byte {
	return append(append([]byte(member), 0), boltjs.U64(seq)...)
}

// EnqueueTx stores ms in tx, the transaction of the change that caused
// them: messages of members without consent (or opted out) are dropped,
// and a message whose id is stored already is kept as it was.
func EnqueueTx(tx *bbolt.Tx, ms []messages.Message) error {
	if err := hq.CheckMessages(ms); err != nil {
		return err
	}
	ob, seqs, due, byMember, cons := tx.Bucket(bOutbox), tx.Bucket(bOutSeq), tx.Bucket(bOutDue), tx.Bucket(bOutMember), tx.Bucket(bConsent)
	for _, m := range ms {
		if ob.Get([]byte(m.ID)) != nil {
			continue
		}
		c, err := consentIn(cons, m.Member)
		if err != nil {
			return err
		}
		if !c.Allows() {
			continue
		}
		seq, err := seqs.NextSequence()
		if err != nil {
			return err
		}
		r := outboxRec{OutboxMessage: hq.OutboxMessage{Message: m, Status: hq.MsgPending, DueAt: hq.MessageDue(m)}, Seq: seq}
		if err := putRec(tx, r); err != nil {
			return err
		}
		if err := seqs.Put(boltjs.U64(seq), []byte(m.ID)); err != nil {
			return err
		}
		if err := due.Put(dueKey(r.DueAt, seq), []byte(m.ID)); err != nil {
			return err
		}
		if err := byMember.Put(memberKey(m.Member, seq), []byte(m.ID)); err != nil {
			return err
		}
	}
	return nil
}

func putRec(tx *bbolt.Tx, r outboxRec) error {
	return boltjs.Put(tx.Bucket(bOutbox), []byte(r.ID), r)
}

func getRec(tx *bbolt.Tx, id string) (outboxRec, bool, error) {
	var r outboxRec
	v := tx.Bucket(bOutbox).Get([]byte(id))
	if v == nil {
		return r, false, nil
	}
	return r, true, json.Unmarshal(v, &r)
}

func consentIn(b *bbolt.Bucket, member string) (hq.Consent, error) {
	c := hq.Consent{Member: member}
	v := b.Get([]byte(member))
	if v == nil {
		return c, nil
	}
	return c, json.Unmarshal(v, &c)
}

func (s *Store) Enqueue(_ context.Context, ms []messages.Message) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return EnqueueTx(tx, ms) })
}

// setDue moves a pending record's due entry from its old time to t.
func setDue(tx *bbolt.Tx, r *outboxRec, t time.Time) error {
	due := tx.Bucket(bOutDue)
	if err := due.Delete(dueKey(r.DueAt, r.Seq)); err != nil {
		return err
	}
	r.DueAt = t
	return due.Put(dueKey(t, r.Seq), []byte(r.ID))
}

func (s *Store) ClaimMessages(_ context.Context, now time.Time, lease time.Duration, n int) ([]hq.Claimed, error) {
	if n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("hq: claim needs a batch size and a lease (got %d, %s)", n, lease)
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	token, until := hex.EncodeToString(b[:]), now.Add(lease)
	var out []hq.Claimed
	err := s.db.Update(func(tx *bbolt.Tx) error {
		out = out[:0]
		limit := dueKey(now, ^uint64(0))
		var ids []string
		c := tx.Bucket(bOutDue).Cursor()
		for k, v := c.First(); k != nil && len(ids) < n && string(k) <= string(limit); k, v = c.Next() {
			ids = append(ids, string(v))
		}
		for _, id := range ids {
			r, ok, err := getRec(tx, id)
			if err != nil {
				return err
			}
			if !ok || r.Status != hq.MsgPending {
				return fmt.Errorf("hq store: outbox index names %q, which is not pending; restore the file from a backup", id)
			}
			if err := setDue(tx, &r, until); err != nil {
				return err
			}
			r.Attempts++
			r.Lease = token
			if err := putRec(tx, r); err != nil {
				return err
			}
			out = append(out, hq.Claimed{Message: r.Message, Attempts: r.Attempts, Token: token, Until: until})
		}
		return nil
	})
	return out, err
}

// settle applies fn to the record c holds; lease gone → ErrLeaseLost.
func (s *Store) settle(c hq.Claimed, fn func(tx *bbolt.Tx, r *outboxRec) error) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		r, ok, err := getRec(tx, c.ID)
		if err != nil {
			return err
		}
		if !ok || r.Status != hq.MsgPending || r.Lease == "" || r.Lease != c.Token {
			return fmt.Errorf("%w: %s", hq.ErrLeaseLost, c.ID)
		}
		r.Lease = ""
		if err := fn(tx, &r); err != nil {
			return err
		}
		return putRec(tx, r)
	})
}

// finish ends a pending record in status st.
func finish(tx *bbolt.Tx, r *outboxRec, st string, at time.Time, reason string) error {
	if err := tx.Bucket(bOutDue).Delete(dueKey(r.DueAt, r.Seq)); err != nil {
		return err
	}
	r.Status, r.DoneAt, r.LastError = st, at, reason
	return nil
}

func (s *Store) AckMessage(_ context.Context, c hq.Claimed, at time.Time) error {
	return s.settle(c, func(tx *bbolt.Tx, r *outboxRec) error { return finish(tx, r, hq.MsgSent, at, "") })
}

func (s *Store) FailMessage(_ context.Context, c hq.Claimed, at time.Time, reason string, next time.Time) error {
	return s.settle(c, func(tx *bbolt.Tx, r *outboxRec) error {
		if next.IsZero() {
			return finish(tx, r, hq.MsgDead, at, reason)
		}
		r.LastError = reason
		return setDue(tx, r, next)
	})
}

func (s *Store) DeferMessage(_ context.Context, c hq.Claimed, until time.Time) error {
	return s.settle(c, func(tx *bbolt.Tx, r *outboxRec) error {
		r.Attempts = max(r.Attempts-1, 0)
		return setDue(tx, r, until)
	})
}

func (s *Store) SuppressMessage(_ context.Context, c hq.Claimed, at time.Time, reason string) error {
	return s.settle(c, func(tx *bbolt.Tx, r *outboxRec) error { return finish(tx, r, hq.MsgSuppressed, at, reason) })
}

func (s *Store) Messages(_ context.Context, f hq.OutboxFilter) ([]hq.OutboxMessage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []hq.OutboxMessage
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bOutSeq).Cursor()
		var prefix []byte
		if f.Member != "" {
			c = tx.Bucket(bOutMember).Cursor()
			prefix = append([]byte(f.Member), 0)
		}
		// Walk back from the newest: seek past the prefix's last key.
		var k, v []byte
		if prefix == nil {
			k, v = c.Last()
		} else {
			k, v = c.Seek(append(slices.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(out) < f.Limit; k, v = c.Prev() {
			if prefix != nil && (len(k) != len(prefix)+8 || string(k[:len(prefix)]) != string(prefix)) {
				break
			}
			r, ok, err := getRec(tx, string(v))
			if err != nil {
				return err
			}
			if !ok || (f.Status != "" && r.Status != f.Status) {
				continue
			}
			out = append(out, r.OutboxMessage)
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

func (s *Store) RetryMessage(_ context.Context, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		r, ok, err := getRec(tx, id)
		if err != nil {
			return err
		}
		if !ok || r.Status != hq.MsgDead {
			return fmt.Errorf("%w: no dead message %s", hq.ErrNotFound, id)
		}
		r.Status, r.Attempts, r.DoneAt, r.Lease, r.DueAt = hq.MsgPending, 0, time.Time{}, "", time.Unix(0, 0).UTC()
		if err := tx.Bucket(bOutDue).Put(dueKey(r.DueAt, r.Seq), []byte(r.ID)); err != nil {
			return err
		}
		return putRec(tx, r)
	})
}

func (s *Store) setConsent(member, status string, at time.Time, source string) error {
	if err := hq.CheckConsent(member, at); err != nil {
		return err
	}
	ev := hq.ConsentEvent{Member: member, Status: status, At: at, Source: source}
	return s.db.Update(func(tx *bbolt.Tx) error {
		lg := tx.Bucket(bConsentLog)
		seq, err := lg.NextSequence()
		if err != nil {
			return err
		}
		if err := boltjs.Put(lg, memberKey(member, seq), ev); err != nil {
			return err
		}
		b := tx.Bucket(bConsent)
		cur, err := consentIn(b, member)
		if err != nil {
			return err
		}
		if cur.Status != "" && cur.At.After(at) { // a later change stands
			return nil
		}
		return boltjs.Put(b, []byte(member), ev)
	})
}

func (s *Store) SetConsent(_ context.Context, member string, granted bool, at time.Time, source string) error {
	st := hq.ConsentWithdrawn
	if granted {
		st = hq.ConsentGranted
	}
	return s.setConsent(member, st, at, source)
}

func (s *Store) OptOut(_ context.Context, member string, at time.Time, source string) error {
	return s.setConsent(member, hq.ConsentOptedOut, at, source)
}

func (s *Store) Consent(_ context.Context, member string) (c hq.Consent, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		c, err = consentIn(tx.Bucket(bConsent), member)
		return err
	})
	return c, err
}

func (s *Store) ConsentLog(_ context.Context, member string) ([]hq.ConsentEvent, error) {
	var out []hq.ConsentEvent
	prefix := append([]byte(member), 0)
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bConsentLog).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var e hq.ConsentEvent
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
