// Package bolt is the embedded HQ store (one file, bbolt): the default for
// a one-box HQ. bbolt has one writer at a time, so a counter assigned inside
// the write transaction is in commit order; the export and changes cursors
// are such counters and can never skip a row.
package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/internal/boltjs"
	"posagent/sync/wire"
)

var (
	bCreds     = []byte("credentials") // role\x00id → Credential
	bTokens    = []byte("tokens")      // token hash → role\x00id
	bTills     = []byte("tills")       // store\x00till → acked (be64)
	bEntries   = []byte("entries")     // export seq (be64) → stored
	bDead      = []byte("dead")        // store\x00till\x00seq(be64) → DeadLetter
	bMembers   = []byte("members")     // id → hot part (see member.go)
	bMemData   = []byte("member_data") // id → cold part
	bMemLog    = []byte("member_log")  // change version (be64) → member id
	bPrograms  = []byte("programs")    // version (be64) → ProgramVersion
	bMeta      = []byte("meta")
	allBuckets = append([][]byte{bCreds, bTokens, bTills, bEntries, bDead, bMembers, bMemData, bMemLog, bPrograms, bMeta}, aggBuckets...)
)

// schemaVersion 7: KPI lifetime rows (hq.LifetimeDay) with the month rows,
// summed from them when an older file is opened; 6: member-code repeats indexed by received time (the
// index built when an older file is opened; older hq builds, which would
// not keep it, refuse the file); 5: KPI reversal facts of walk-in sales kept, and refunds
// taking back at most the points their sale moved (aggregates rebuilt from
// the entries when an older file is opened); 4: KPI member facts as visit
// records per member, store and month (and the chain's per member and month), and entry totals (rebuilt
// from the entries when an older file is opened); 3: KPI aggregates, built from the stored entries once
// when an older file is opened; 2: members split into hot and cold parts
// (1: one JSON record), a version-1 file is migrated on open.
const schemaVersion = 7

// Options tune the store.
type Options struct {
	// Timeout waits this long for the file lock held by another process [5s].
	Timeout time.Duration
	// BatchDelay is how long the first upload of a commit waits for others
	// to share it [0: none; uploads that arrive while a commit is being
	// written share the next one anyway].
	BatchDelay time.Duration
	// NoSync skips fsync (tests and load runs only: a crash may lose data).
	NoSync bool
	// IdentityFeed: the member feed carries what uploads change of who a
	// member is (enrolments, tier changes, a new flag), not their balance
	// changes, which tills take from the member look-up (hq serve
	// --member-feed identity). Changes made at HQ always go out.
	IdentityFeed bool
}

// Store is the bbolt HQ store.
type Store struct {
	db        *bbolt.DB
	delay     time.Duration
	identity  bool // Options.IdentityFeed
	reqs      chan *ingestReq
	closing   chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	// commits and uploads count group commits and the uploads they held.
	commits, uploads atomic.Int64
}

var _ hq.Store = (*Store)(nil)

// Open opens or creates the store file.
func Open(path string, o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	// The freelist is not written at each commit (less to write; it is
	// rebuilt from the file on open), and kept as a map (fast with many
	// free pages).
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.Timeout, NoSync: o.NoSync,
		NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("hq store %s is locked by another process (is an hq already running on it?): %w", path, err)
		}
		return nil, fmt.Errorf("hq store %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		n := boltjs.Uint64(meta.Get([]byte("schema")))
		if n > schemaVersion {
			return fmt.Errorf("hq store %s has schema %d, newer than this hq (%d); upgrade hq", path, n, schemaVersion)
		}
		if n == 1 {
			if err := migrateMembers(tx); err != nil {
				return fmt.Errorf("hq store %s: upgrading members to schema %d: %w", path, schemaVersion, err)
			}
		}
		if n >= 1 && n < 5 {
			if err := upgradeAggregates(tx, n); err != nil {
				return fmt.Errorf("hq store %s: building KPI aggregates: %w", path, err)
			}
		} else if n == 5 || n == 6 {
			if err := fillLifetime(tx); err != nil {
				return fmt.Errorf("hq store %s: summing KPI lifetime rows: %w", path, err)
			}
		}
		if err := indexMCRepeats(tx); err != nil {
			return fmt.Errorf("hq store %s: indexing member-code repeats by time: %w", path, err)
		}
		if n == 0 { // a new file keeps the fraud facts from its first upload
			if err := fraudBuild(tx); err != nil {
				return err
			}
		}
		return meta.Put([]byte("schema"), boltjs.U64(schemaVersion))
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, delay: o.BatchDelay, identity: o.IdentityFeed, reqs: make(chan *ingestReq), closing: make(chan struct{}), stopped: make(chan struct{})}
	go s.committer()
	return s, nil
}

func key(parts ...string) []byte { return []byte(joinNUL(parts)) }

func joinNUL(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(s)
	}
	return b.String()
}

func deadKey(store, till string, seq uint64) []byte {
	return append(key(store, till, ""), boltjs.U64(seq)...)
}

// Close stops the committer (uploads not yet taken get ErrClosed) and
// closes the file.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.stopped
	s.SetMessageSettings(nil)
	return s.db.Close()
}

// Ping checks the file is open.
func (s *Store) Ping(context.Context) error {
	return s.db.View(func(*bbolt.Tx) error { return nil })
}

func (s *Store) AddCredential(_ context.Context, c hq.Credential) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		k := key(c.Role, c.ID)
		if tx.Bucket(bCreds).Get(k) != nil {
			return fmt.Errorf("%w: %s %q", hq.ErrConflict, c.Role, c.ID)
		}
		if tx.Bucket(bTokens).Get([]byte(c.TokenHash)) != nil {
			return fmt.Errorf("%w: token hash", hq.ErrConflict)
		}
		if err := boltjs.Put(tx.Bucket(bCreds), k, c); err != nil {
			return err
		}
		return tx.Bucket(bTokens).Put([]byte(c.TokenHash), k)
	})
}

func (s *Store) RevokeCredential(_ context.Context, role, id string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		k := key(role, id)
		v := tx.Bucket(bCreds).Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s %q", hq.ErrNotFound, role, id)
		}
		var c hq.Credential
		if err := json.Unmarshal(v, &c); err != nil {
			return err
		}
		if c.Revoked() {
			return nil
		}
		c.RevokedAt = time.Now().UTC()
		return boltjs.Put(tx.Bucket(bCreds), k, c)
	})
}

func (s *Store) CredentialByHash(_ context.Context, hash string) (hq.Credential, error) {
	var c hq.Credential
	err := s.db.View(func(tx *bbolt.Tx) error {
		k := tx.Bucket(bTokens).Get([]byte(hash))
		if k == nil {
			return hq.ErrNotFound
		}
		return json.Unmarshal(tx.Bucket(bCreds).Get(k), &c)
	})
	return c, err
}

func (s *Store) Credentials(context.Context) ([]hq.Credential, error) {
	var out []hq.Credential
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = boltjs.All[hq.Credential](tx.Bucket(bCreds))
		return err
	})
	return out, err
}

func (s *Store) TillAcked(_ context.Context, store, till string) (uint64, error) {
	var n uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		n = boltjs.Uint64(tx.Bucket(bTills).Get(key(store, till)))
		return nil
	})
	return n, err
}

type storedEntry struct {
	Entry      entry.Entry `json:"entry"`
	ReceivedAt time.Time   `json:"received_at"`
}

type memberRec struct {
	hq.Member
	Version uint64 `json:"version"`
}

func putEntries(tx *bbolt.Tx, es []entry.Entry, at time.Time) error {
	eb := tx.Bucket(bEntries)
	eb.FillPercent = 1
	for i := range es {
		seq, err := eb.NextSequence()
		if err != nil {
			return err
		}
		if err := boltjs.Put(eb, boltjs.U64(seq), storedEntry{Entry: es[i], ReceivedAt: at}); err != nil {
			return err
		}
	}
	return nil
}

func applyDeltas(tx *bbolt.Tx, ds []hq.Delta) error {
	ms := newMemberSet(tx)
	for _, d := range ds {
		if err := ms.apply(d); err != nil {
			return err
		}
	}
	return ms.flush()
}

func (s *Store) DeadLetters(_ context.Context, all bool) ([]hq.DeadLetter, error) {
	var out []hq.DeadLetter
	err := s.db.View(func(tx *bbolt.Tx) error {
		return boltjs.Each(tx.Bucket(bDead), func(_ []byte, d hq.DeadLetter) error {
			if all || d.ResolvedAt.IsZero() {
				out = append(out, d)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt.Before(out[j].ReceivedAt) })
	return out, err
}

func (s *Store) ResolveDeadLetter(_ context.Context, store, till string, seq uint64, e entry.Entry, at time.Time) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		k := deadKey(store, till, seq)
		v := tx.Bucket(bDead).Get(k)
		var d hq.DeadLetter
		if v != nil {
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
		}
		if v == nil || !d.ResolvedAt.IsZero() {
			return fmt.Errorf("%w: open dead letter %s/%s/%d", hq.ErrNotFound, store, till, seq)
		}
		d.ResolvedAt = at
		if err := boltjs.Put(tx.Bucket(bDead), k, d); err != nil {
			return err
		}
		if err := putEntries(tx, []entry.Entry{e}, at); err != nil {
			return err
		}
		ds, err := hq.Deltas([]entry.Entry{e})
		if err != nil {
			return err
		}
		if err := fold(tx, []entry.Entry{e}, store); err != nil {
			return err
		}
		if err := fraudFold(tx, []entry.Entry{e}); err != nil {
			return err
		}
		if err := applyDeltas(tx, ds); err != nil {
			return err // ErrOverflow rolls back: it stays a dead letter
		}
		// Reminder indexes and messages, as at ingest (triggers.go).
		return trigIngest(tx, newMemberSet(tx), []entry.Entry{e})
	})
}

type changesCursor struct {
	M uint64 `json:"m"`
	P uint64 `json:"p"`
}

func (s *Store) Changes(_ context.Context, cursor string, limit int) (wire.Changes, error) {
	var cur changesCursor
	if err := hq.DecodeCursor(cursor, &cur); err != nil {
		return wire.Changes{}, err
	}
	var ch wire.Changes
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bMemLog).Cursor()
		k, v := c.Seek(boltjs.U64(cur.M + 1))
		for ; k != nil && len(ch.Members) < limit; k, v = c.Next() {
			cur.M = boltjs.Uint64(k)
			r, _, err := getMember(tx, string(v))
			if err != nil {
				return err
			}
			if r.Version != cur.M {
				continue // stale: the member changed again and comes at its newer version
			}
			ch.Members = append(ch.Members, r.State())
		}
		ch.More = k != nil
		pc := tx.Bucket(bPrograms).Cursor()
		for k, v := pc.Seek(boltjs.U64(cur.P + 1)); k != nil; k, v = pc.Next() {
			var p wire.ProgramVersion
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			ch.Programs = append(ch.Programs, p)
			cur.P = boltjs.Uint64(k)
		}
		return nil
	})
	ch.Cursor = hq.EncodeCursor(cur)
	return ch, err
}

type exportCursor struct {
	S uint64 `json:"s"`
}

func (s *Store) Export(_ context.Context, cursor string, limit int) (wire.ExportPage, error) {
	var cur exportCursor
	if err := hq.DecodeCursor(cursor, &cur); err != nil {
		return wire.ExportPage{}, err
	}
	var p wire.ExportPage
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bEntries).Cursor()
		k, v := c.Seek(boltjs.U64(cur.S + 1))
		for ; k != nil && len(p.Entries) < limit; k, v = c.Next() {
			var se storedEntry
			if err := json.Unmarshal(v, &se); err != nil {
				return err
			}
			p.Entries = append(p.Entries, wire.ExportedEntry{Entry: se.Entry, ReceivedAt: se.ReceivedAt.UTC().Format(time.RFC3339Nano)})
			cur.S = boltjs.Uint64(k)
		}
		p.More = k != nil
		return nil
	})
	p.Cursor = hq.EncodeCursor(cur)
	return p, err
}

func (s *Store) Scan(ctx context.Context, fn func(hq.Stored) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		return boltjs.Each(tx.Bucket(bEntries), func(_ []byte, se storedEntry) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(hq.Stored{Entry: se.Entry, ReceivedAt: se.ReceivedAt})
		})
	})
}

// findMember is getMember with an unknown member as hq.ErrNotFound.
func findMember(tx *bbolt.Tx, id string) (memberRec, error) {
	r, found, err := getMember(tx, id)
	if err == nil && !found {
		err = fmt.Errorf("%w: member %q", hq.ErrNotFound, id)
	}
	return r, err
}

func (s *Store) Member(_ context.Context, id string) (hq.Member, error) {
	var m hq.Member
	err := s.db.View(func(tx *bbolt.Tx) error {
		r, err := findMember(tx, id)
		m = r.Member
		return err
	})
	return m, err
}

func (s *Store) MemberLookup(_ context.Context, store, id string) (wire.MemberLookup, error) {
	var l wire.MemberLookup
	err := s.db.View(func(tx *bbolt.Tx) error {
		r, err := findMember(tx, id)
		if err != nil {
			return err
		}
		l.Member, l.Acked = r.Member.State(), map[string]uint64{}
		prefix := key(store, "")
		c := tx.Bucket(bTills).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			l.Acked[string(k[len(prefix):])] = boltjs.Uint64(v)
		}
		return nil
	})
	return l, err
}

func (s *Store) Members(ctx context.Context, fn func(hq.Member) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bMembers).ForEach(func(k, _ []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, _, err := getMember(tx, string(k))
			if err != nil {
				return err
			}
			return fn(r.Member)
		})
	})
}

func (s *Store) FlaggedMembers(ctx context.Context) ([]hq.Member, error) {
	var out []hq.Member
	err := s.Members(ctx, func(m hq.Member) error {
		if m.Flagged {
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

func (s *Store) ReviewMember(_ context.Context, id string, rv hq.Review) (hq.Member, error) {
	var m hq.Member
	err := s.db.Update(func(tx *bbolt.Tx) error {
		_, found, err := getMember(tx, id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: member %q", hq.ErrNotFound, id)
		}
		ms := newMemberSet(tx)
		sm, err := ms.get(id)
		if err != nil {
			return err
		}
		if err := sm.rec.Review(rv); err != nil {
			return err
		}
		sm.cold, sm.feed = true, true
		if err := ms.flush(); err != nil {
			return err
		}
		m = sm.rec.Member
		return nil
	})
	return m, err
}

func (s *Store) ApplyDeltas(_ context.Context, ds []hq.Delta) error {
	return s.db.Update(func(tx *bbolt.Tx) error { return applyDeltas(tx, ds) })
}

func (s *Store) PublishProgram(_ context.Context, p wire.ProgramVersion) error {
	if p.Version <= 0 {
		return fmt.Errorf("hq: program version %d must be ≥ 1", p.Version)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bPrograms)
		if v := b.Get(boltjs.U64(uint64(p.Version))); v != nil {
			var old wire.ProgramVersion
			if err := json.Unmarshal(v, &old); err != nil {
				return err
			}
			if old == p {
				return nil
			}
			return fmt.Errorf("%w: program version %d was published with other content; publish a new version", hq.ErrConflict, p.Version)
		}
		if last := boltjs.Last(b); last > uint64(p.Version) {
			return fmt.Errorf("%w: program version %d is older than the newest published (%d)", hq.ErrConflict, p.Version, last)
		}
		return boltjs.Put(b, boltjs.U64(uint64(p.Version)), p)
	})
}

func (s *Store) Programs(context.Context) ([]wire.ProgramVersion, error) {
	var out []wire.ProgramVersion
	err := s.db.View(func(tx *bbolt.Tx) (err error) {
		out, err = boltjs.All[wire.ProgramVersion](tx.Bucket(bPrograms))
		return err
	})
	return out, err
}
