// Package ledger is the till's offline ledger on bbolt: every sale, refund,
// void, top-up and enrolment is an append-only entry with a per-till gapless
// sequence number (the outbox the sync client uploads). Member balances,
// points lots and coupons are caches derived from the entries; Verify
// recomputes them from the entries and compares.
//
// Writes are group-committed: concurrent requests (several tills) share one
// group — one write-ahead log frame and one fdatasync (wal.go) — while each
// request keeps its own result or error. A lone request commits in its
// caller's goroutine, with no hand-off. bbolt holds the materialised state
// and is committed as a checkpoint every few hundred groups.
package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"posagent/ledger/loyalty"
)

// SchemaVersion is the layout version this code writes. A file with a higher
// version was written by a newer posagent and is refused; schema 1 was a
// development layout and is refused too (ErrOlderSchema). Schema 3 is the
// B-tree layout of schema 2 whose acknowledged commits may be in the
// write-ahead log: a posagent that knows no log must refuse it. Schema 2 is
// upgraded in place at Open. Schema 4 adds the lot-expiry index and the
// binary member record (a JSON record of schema 3 is still read); schemas 2
// and 3 are upgraded to it at Open, which walks the members' lots once to
// build the index. Schema 5 lets a member state from HQ that nothing local
// has touched since stay out of the hq log, its points lot implicit in the
// balance record (format 2); a schema 4 file is marked 5 at Open, nothing
// in it is rewritten, and a posagent that knows only schema 4 refuses it.
// Schema 6 finds members by card and mobile through the packed member index
// (memberix, members_index.go); a schema 4 or 5 file gets the empty bucket
// at Open, its card and mobile keys are still read and are moved to the new
// index member by member as each next changes.
const SchemaVersion = 6

// schemaMemberIndex is the first layout with the packed member index.
const schemaMemberIndex = 6

// schemaLotIndex is the first layout with the lot-expiry index.
const schemaLotIndex = 4

// schemaNoWAL is the layout without the log; upgraded at Open.
const schemaNoWAL = 2

// schemaNoLotIndex is the layout without the lot-expiry index; upgraded at
// Open, after the write-ahead log (written without index) is replayed.
const schemaNoLotIndex = 3

// Bucket names. See codec.go for the keys.
var (
	bMeta     = []byte("meta")     // schema, store, sync cursor
	bLog      = []byte("log")      // (till, seq) → global order + entry JSON; Sequence() is the global counter
	bHQLog    = []byte("hqlog")    // global order → member state applied from HQ
	bAcked    = []byte("acked")    // till → highest seq HQ acknowledged
	bKeys     = []byte("keys")     // hash of (kind, till, key) → idempotency record
	bMembers  = []byte("members")  // member id + tag → record, balance, lots, coupons
	bByToken  = []byte("bytoken")  // card-token hash → member id
	bByMobile = []byte("bymobile") // mobile → member id
	bSales    = []byte("sales")    // (till, seq) of a sale → refund/void state
	bPrograms = []byte("programs") // version → program source from HQ
	bLotExp   = []byte("lotexp")   // expiry(8) + member id → nothing: who holds a lot expiring then
	bIndex    = []byte("memberix") // kind + card or mobile hash[0:2] → packed entries (members_index.go)

	allBuckets = [][]byte{bMeta, bLog, bHQLog, bAcked, bKeys, bMembers, bByToken, bByMobile, bSales, bPrograms, bLotExp, bIndex}
)

// Options configures a ledger.
type Options struct {
	Store string // store id, written into every entry; required
	Till  string // default till for requests that name none, and for expiry entries
	// Programs are the loyalty program versions known locally (nil: the
	// embedded default). Versions applied from HQ are stored in the file and
	// added to these at Open.
	Programs loyalty.Programs
	// TimeZone is the store's IANA time zone. When set it overrides the zone
	// every program version was published with, so local dates (birthdays,
	// member day, expiry) are the store's own. "": the program's zone.
	TimeZone string
	Now      func() time.Time // clock; nil: time.Now
	// ClockSkew is how far a request's time may be ahead of Now (a POS
	// clock running fast), and the clock difference tolerated against a
	// member's enrolment time. 0: DefaultClockSkew.
	ClockSkew time.Duration
	// MaxBackdate is how far before Now a request's time may be (a receipt
	// the POS queued and sends late keeps its own time). 0:
	// DefaultMaxBackdate.
	MaxBackdate time.Duration
	// MaxSize caps the file size in bytes (0: none); reaching it gives
	// ErrDiskFull, as a full disk does.
	MaxSize int
	// MaxBatch caps how many requests one group commit takes (default 256).
	MaxBatch int
	// Linger is how long a group commit waits for more requests when
	// recent groups were bigger than what is queued (several tills busy);
	// an idle single till never waits. Default 300µs; negative disables.
	Linger time.Duration
	// LockTimeout is how long Open waits for another process to release the
	// file (default 1s).
	LockTimeout time.Duration
}

// Defaults of the accepted window for request times.
const (
	DefaultClockSkew   = 5 * time.Minute
	DefaultMaxBackdate = 7 * 24 * time.Hour
)

// Ledger is an open ledger file.
type Ledger struct {
	path  string
	db    *bolt.DB
	o     Options
	store string
	now   func() time.Time
	progs atomic.Pointer[loyalty.Programs]

	// Group commit: requests wait in queue; whoever holds token (the
	// leader) commits everything queued in one transaction. A lone till
	// takes the token at once and commits in its own goroutine.
	mu        sync.Mutex
	queue     []*request
	closing   bool // under mu: no new requests
	token     chan struct{}
	arrived   chan struct{} // a request was queued (for a lingering leader)
	closeOnce sync.Once
	closed    atomic.Bool
	// Leader state (guarded by token). target is the group size recently
	// seen (how many tills are busy); the leader lingers briefly for that
	// many requests. It decays so a burst does not make later commits wait.
	target, sinceMax int
	timer            *time.Timer
	groups           atomic.Int64 // groups made durable
	grouped          atomic.Int64 // requests they carried
	ckpts            atomic.Int64 // bbolt commits (checkpoints and direct commits)
	walBytes         atomic.Int64 // bytes appended to the write-ahead log

	// The write-ahead log and the bbolt write transaction that holds every
	// acknowledged group not yet checkpointed. Everything below is guarded
	// by txmu; reads use wtx under txmu while it is open (see read).
	txmu     sync.Mutex
	wal      *wal
	wtx      *bolt.Tx
	pending  [][]byte // frames since the last checkpoint, to rebuild wtx
	pendSize int      // their bytes
	pendPg   int      // bound on the pages a checkpoint of them allocates
	mustCkpt error    // set after a failed append or checkpoint: checkpoint before the next append
	shut     bool     // file closed
	idle     *time.Timer
	idleFor  time.Duration
	pageSize int
}

// CommitStats tells how well group commit coalesces: transactions committed
// and the requests they carried.
func (l *Ledger) CommitStats() (groups, requests int64) { return l.groups.Load(), l.grouped.Load() }

func boltOptions(o Options, readOnly bool) *bolt.Options {
	t := o.LockTimeout
	if t <= 0 {
		t = time.Second
	}
	bo := &bolt.Options{
		Timeout: t,
		// The freelist is written with every bbolt commit (NoFreelistSync
		// off): without it every Open walks every page of the file to
		// rebuild it, which grows with the members held. Commits are
		// checkpoints of the write-ahead log (every 256 groups), so the
		// extra freelist page is not on a sale's path. A file written
		// without it gets its freelist at the first Open (one walk).
		FreelistType: bolt.FreelistMapType,
		MaxSize:      o.MaxSize,
		ReadOnly:     readOnly,
	}
	if !readOnly && o.MaxSize == 0 {
		// A mapping bigger than bbolt's 16 MiB growth step: no remap
		// (which stalls readers) while the file is small, and the file
		// grows in 16 MiB steps from the start instead of doubling from
		// 32 KiB, each step a truncate plus fsync inside some commit.
		// With MaxSize set this is left out: growth steps would overshoot
		// the cap.
		bo.InitialMmapSize = initialMmap
	}
	return bo
}

// initialMmap is the address space mapped at open (not memory used).
const initialMmap = 64 << 20

// Open opens the ledger at path, creating it safely on first start (built in
// a temporary file, fsynced, linked into place, directory fsynced). Errors wrap ErrLocked, ErrCorrupt,
// ErrNewerSchema or ErrDiskFull and say what to do.
func Open(path string, o Options) (l *Ledger, err error) {
	if o.Store == "" {
		return nil, wrapErr(ErrInvalid, "ledger: Options.Store is required (the store id written into every entry)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClockSkew < 0 || o.MaxBackdate < 0 {
		return nil, wrapErr(ErrInvalid, "ledger: ClockSkew and MaxBackdate must not be negative")
	}
	if o.ClockSkew == 0 {
		o.ClockSkew = DefaultClockSkew
	}
	if o.MaxBackdate == 0 {
		o.MaxBackdate = DefaultMaxBackdate
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Linger == 0 {
		o.Linger = 300 * time.Microsecond
	}
	if len(o.Programs) == 0 {
		o.Programs = loyalty.Programs{loyalty.DefaultProgram()}
	}
	if o.TimeZone != "" {
		if _, err := time.LoadLocation(o.TimeZone); err != nil {
			return nil, wrapErr(ErrInvalid, "store time zone %q: %v (use an IANA name such as Asia/Shanghai)", o.TimeZone, err)
		}
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := create(path, o); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("ledger: %w", err)
	case st.IsDir():
		return nil, corruptErr(path, "is a directory")
	case st.Size() == 0:
		return nil, corruptErr(path, "is an empty file, not a ledger")
	}
	db, err := openBolt(path, boltOptions(o, false))
	if err != nil {
		return nil, err
	}
	l = &Ledger{path: path, db: db, o: o, store: o.Store, now: o.Now,
		token: make(chan struct{}, 1), arrived: make(chan struct{}, 1), target: 1}
	l.token <- struct{}{}
	from, err := l.checkFile()
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := l.ensureCashierBucket(); err != nil {
		db.Close()
		return nil, err
	}
	if err := l.ensureMemberCodeBucket(); err != nil {
		db.Close()
		return nil, err
	}
	if l.wal, err = recoverWAL(db, path); err != nil {
		db.Close()
		return nil, err
	}
	if from < SchemaVersion {
		if err := l.upgrade(from); err != nil {
			l.wal.close()
			db.Close()
			return nil, err
		}
	}
	if err := l.loadPrograms(); err != nil {
		l.wal.close()
		db.Close()
		return nil, err
	}
	l.pageSize = db.Info().PageSize
	l.idleFor = walIdle
	l.idle = time.AfterFunc(time.Hour, l.idleCheckpoint)
	l.idle.Stop()
	return l, nil
}

// openBolt opens with bbolt and turns its errors, and any panic it raises on
// a damaged file, into ledger errors.
func openBolt(path string, bo *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, corruptErr(path, fmt.Sprintf("bbolt could not read it (%v)", r))
		}
	}()
	db, err = bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, openErr(path, err)
	}
	return db, nil
}

// create builds a fresh ledger next to path and links it into place, so a
// crash leaves either no ledger or a complete one, and an existing file is
// never overwritten.
func create(path string, o Options) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("ledger: create directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".creating-*")
	if err != nil {
		return storageErr(path, fmt.Errorf("ledger: create %s: %w", path, err))
	}
	tmp := f.Name()
	f.Close()
	os.Remove(tmp) // bbolt initialises a file it creates itself
	defer os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, boltOptions(o, false))
	if err != nil {
		return storageErr(path, fmt.Errorf("ledger: create %s: %w", path, err))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bMeta)
		if err := m.Put([]byte("schema"), u64(SchemaVersion)); err != nil {
			return err
		}
		if err := m.Put([]byte("store"), []byte(o.Store)); err != nil {
			return err
		}
		return m.Put([]byte("created"), []byte(o.Now().UTC().Format(time.RFC3339Nano)))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storageErr(path, fmt.Errorf("ledger: initialise %s: %w", path, err))
	}
	if err := syncFile(tmp); err != nil {
		return storageErr(path, err)
	}
	// Link, not rename: if another process created the ledger meanwhile,
	// theirs stays and ours is dropped.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return storageErr(path, fmt.Errorf("ledger: put %s in place: %w", path, err))
	}
	return syncName(path)
}

func syncFile(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// checkFile makes sure the file is a ledger of a schema this code knows and
// of this store, and returns its schema. Schema 2 is marked 3 at once (its
// file may get a write-ahead log from here on); both are brought to
// SchemaVersion by upgrade after the log is replayed.
func (l *Ledger) checkFile() (schema uint64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corruptErr(l.path, fmt.Sprintf("damaged page (%v)", r))
		}
	}()
	upgrade := false
	err = l.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return corruptErr(l.path, "a bbolt file but not a posagent ledger (no meta bucket)")
		}
		v := m.Get([]byte("schema"))
		if len(v) != 8 {
			return corruptErr(l.path, "no schema version")
		}
		schema = binary.BigEndian.Uint64(v)
		switch s := schema; {
		case s > SchemaVersion:
			return fmt.Errorf("%w: %s has schema %d, this posagent reads up to %d; upgrade posagent (the file is left untouched)", ErrNewerSchema, l.path, s, SchemaVersion)
		case s == schemaNoWAL:
			upgrade = true
		case s < schemaNoWAL:
			return fmt.Errorf("%w: %s has schema %d, written by a development build; this posagent reads schemas %d to %d. Export its entries with the build that wrote it if you need them, then move it aside (mv %s %s.old) and start a new ledger; HQ resends member data (the file is left untouched)", ErrOlderSchema, l.path, s, schemaNoWAL, SchemaVersion, l.path, l.path)
		}
		for _, b := range allBuckets {
			if bytes.Equal(b, bLotExp) && schema < schemaLotIndex || bytes.Equal(b, bIndex) && schema < schemaMemberIndex {
				continue // made by upgrade
			}
			if tx.Bucket(b) == nil {
				return corruptErr(l.path, fmt.Sprintf("bucket %q missing", b))
			}
		}
		if s := string(m.Get([]byte("store"))); s != l.store {
			return wrapErr(ErrInvalid, "ledger %s belongs to store %q, but this agent is configured as store %q; fix the store id in the configuration or use that store's ledger path", l.path, s, l.store)
		}
		return nil
	})
	if err != nil || !upgrade {
		return schema, err
	}
	if err := l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bMeta).Put([]byte("schema"), u64(schemaNoLotIndex))
	}); err != nil {
		return 0, storageErr(l.path, fmt.Errorf("ledger: upgrade %s to schema %d: %w", l.path, schemaNoLotIndex, err))
	}
	return schemaNoLotIndex, nil
}

// upgrade brings a schema 3 or 4 file to SchemaVersion in one transaction:
// for schema 3 the lot-expiry index is built from every member's lots. This is the one time
// the ledger reads all members at Open; later Opens read no member.
func (l *Ledger) upgrade(from uint64) error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bIndex); err != nil {
			return err
		}
		if from >= schemaLotIndex {
			return tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion))
		}
		ix, err := tx.CreateBucketIfNotExists(bLotExp)
		if err != nil {
			return err
		}
		c := tx.Bucket(bMembers).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id, tag, ok := splitMemberKey(k)
			if !ok || tag != tagLot || len(k) != len(id)+2+16 {
				continue
			}
			if exp := int64(getU64(k[len(id)+2 : len(id)+10])); exp != 0 {
				if err := ix.Put(lotExpKey(exp, id), lotExpMark); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bMeta).Put([]byte("schema"), u64(SchemaVersion))
	})
	if err != nil {
		return storageErr(l.path, fmt.Errorf("ledger: upgrade %s to schema %d: %w", l.path, SchemaVersion, err))
	}
	return nil
}

// Path is the file the ledger lives in.
func (l *Ledger) Path() string { return l.path }

// Close refuses new requests, commits those already queued, and closes the
// file.
func (l *Ledger) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		l.closed.Store(true)
		<-l.token // wait for the leader; the token is never given back
		for b := l.take(nil); len(b) > 0; b = l.take(nil) {
			l.runGroup(b)
		}
		l.idle.Stop()
		l.txmu.Lock()
		err = l.checkpoint()
		if l.wtx != nil {
			// The checkpoint failed; the groups stay in the log and are
			// replayed at the next Open.
			l.wtx.Rollback()
			l.wtx = nil
		}
		l.shut = true
		l.txmu.Unlock()
		if cerr := l.wal.close(); err == nil {
			err = cerr
		}
		if cerr := l.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// ---- group commit ----

// op is one write request. It must do every read and check before its first
// write through w; an error after a write breaks the whole group, which is
// then retried one request per transaction.
type op func(tx *bolt.Tx, w *writer) (any, error)

type request struct {
	fn   op
	res  any
	err  error
	done chan struct{}
	// direct: commit the group straight to bbolt instead of appending it
	// to the write-ahead log (large bulk writes such as a page of members
	// from HQ: one bbolt commit costs less than a frame of that size).
	direct bool
}

// writer counts writes so the leader knows whether a failed request left
// anything behind in the shared transaction, and records them for the
// write-ahead log (rec) with a bound on the pages they dirty (pages).
type writer struct {
	tx    *bolt.Tx
	n     int
	rec   []byte
	pages int
	psz   int
	norec bool // committed straight to bbolt: nothing to record for the log
}

// note bounds the pages a write can make a checkpoint allocate: its leaf
// and branches (split included) plus overflow pages for a large value.
func (w *writer) note(size int) {
	w.pages += 8 + 2*size/max(w.psz, 512)
}

func (w *writer) put(bucket []byte, k, v []byte) error {
	w.n++
	if !w.norec {
		w.rec = encPut(w.rec, bucket, k, v)
	}
	w.note(len(k) + len(v))
	b := w.tx.Bucket(bucket)
	if bytes.Equal(bucket, bLog) {
		// Appends only (per till): full pages, no half-empty splits.
		b.FillPercent = 1.0
	}
	return b.Put(k, v)
}

func (w *writer) del(bucket []byte, k []byte) error {
	w.n++
	if !w.norec {
		w.rec = encDel(w.rec, bucket, k)
	}
	w.note(len(k))
	return w.tx.Bucket(bucket).Delete(k)
}

func (w *writer) setSeq(bucket []byte, seq uint64) error {
	w.n++
	if !w.norec {
		w.rec = encSeq(w.rec, bucket, seq)
	}
	w.note(0)
	return w.tx.Bucket(bucket).SetSequence(seq)
}

func (w *writer) putJSON(bucket []byte, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.put(bucket, k, b)
}

// submit queues fn and waits for its result. If no commit is running the
// caller becomes the leader and commits the queue itself (no hand-off to
// another goroutine); otherwise its request joins the next group.
func (l *Ledger) submit(ctx context.Context, fn op) (any, error) {
	return l.submitReq(ctx, &request{fn: fn, done: make(chan struct{})})
}

func (l *Ledger) submitReq(ctx context.Context, r *request) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	l.queue = append(l.queue, r)
	l.mu.Unlock()
	select {
	case l.arrived <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
	case <-l.token:
		l.lead(r)
	case <-ctx.Done():
		if l.unqueue(r) {
			return nil, ctx.Err() // never written
		}
		<-r.done // being committed right now
	}
	return r.res, r.err
}

// unqueue removes r if no leader has taken it yet.
func (l *Ledger) unqueue(r *request) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, q := range l.queue {
		if q == r {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			return true
		}
	}
	return false
}

// take moves up to MaxBatch queued requests onto batch.
func (l *Ledger) take(batch []*request) []*request {
	l.mu.Lock()
	n := min(len(l.queue), l.o.MaxBatch-len(batch))
	batch = append(batch, l.queue[:n]...)
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	l.mu.Unlock()
	return batch
}

func finished(r *request) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// lead commits groups until mine is done, then hands the token on (to a
// waiting request, if any). Holding the token, every unfinished request is
// in the queue: a leader closes done before it gives the token back.
func (l *Ledger) lead(mine *request) {
	defer func() { l.token <- struct{}{} }()
	for !finished(mine) {
		batch := l.fill(l.take(nil))
		if len(batch) >= l.target {
			l.target, l.sinceMax = len(batch), 0
		} else if l.sinceMax++; l.sinceMax >= 32 {
			l.target, l.sinceMax = max(l.target-1, 1), 0
		}
		l.runGroup(batch)
	}
}

// fill lingers briefly for more requests when recent groups were bigger
// than batch (several tills committing); a lone till never waits.
func (l *Ledger) fill(batch []*request) []*request {
	if l.o.Linger < 0 || len(batch) >= l.target || l.target <= 1 {
		return batch
	}
	if l.timer == nil {
		l.timer = time.NewTimer(l.o.Linger)
	} else {
		l.timer.Reset(l.o.Linger)
	}
	defer l.timer.Stop()
	for len(batch) < l.target && len(batch) < l.o.MaxBatch {
		select {
		case <-l.arrived:
			batch = l.take(batch)
		case <-l.timer.C:
			return batch
		}
	}
	return batch
}

// runGroup makes a group durable and answers its requests; then, off their
// latency, checkpoints if one is due.
func (l *Ledger) runGroup(batch []*request) {
	l.txmu.Lock()
	if l.shut {
		for _, r := range batch {
			r.res, r.err = nil, ErrClosed
		}
	} else {
		l.group(batch)
	}
	due := l.wtx != nil && (len(l.pending) >= walCkptGroup || l.pendSize >= walCkptBytes)
	if due {
		l.checkpoint() // a failure is kept in mustCkpt and retried
	} else if l.wtx != nil {
		l.idle.Reset(l.idleFor)
	}
	l.txmu.Unlock()
	for _, r := range batch {
		close(r.done)
	}
}

// walIdle: an open transaction is checkpointed after this long without
// groups, so a quiet till leaves nothing to replay.
const walIdle = 200 * time.Millisecond

func (l *Ledger) idleCheckpoint() {
	l.txmu.Lock()
	defer l.txmu.Unlock()
	if !l.shut && l.wtx != nil {
		l.checkpoint()
	}
}

// group runs the requests in the open transaction, then appends their writes
// to the log as one frame (one fdatasync) before anyone is answered. Caller
// holds txmu.
func (l *Ledger) group(batch []*request) {
	fail := func(err error) {
		for _, r := range batch {
			r.res, r.err = nil, err
		}
	}
	if l.mustCkpt != nil {
		if err := l.checkpoint(); err != nil {
			fail(err)
			return
		}
	}
	if l.wtx == nil {
		tx, err := l.db.Begin(true)
		if err != nil {
			fail(storageErr(l.path, err))
			return
		}
		l.wtx = tx
	}
	var rec []byte
	writes, pages := 0, 0
	direct := false
	for _, r := range batch {
		direct = direct || r.direct
		w := &writer{tx: l.wtx, rec: rec, psz: l.pageSize, norec: r.direct}
		res, err := runOp(r.fn, l.wtx, w)
		if err != nil && w.n > 0 {
			// A request failed halfway: undo the group, then run its
			// requests one at a time so only the failing one fails.
			if rerr := l.rebuild(); rerr != nil {
				fail(rerr)
				return
			}
			if len(batch) > 1 {
				for _, r := range batch {
					l.group([]*request{r})
				}
				return
			}
			fail(storageErr(l.path, err))
			return
		}
		r.res, r.err = res, err
		writes += w.n
		pages += w.pages
		rec = w.rec
	}
	if writes == 0 {
		return // only resends and refusals: nothing to make durable
	}
	if direct || l.o.MaxSize > 0 && (l.wtx.Size()+int64((l.pendPg+pages+16)*l.pageSize))*2 > int64(l.o.MaxSize) {
		// Near the size cap a checkpoint might not fit, and an
		// acknowledged group must always fit: commit to bbolt directly,
		// which either succeeds durably or fails this group only.
		if err := l.commit(); err != nil {
			if rerr := l.rebuild(); rerr != nil {
				err = rerr
			}
			fail(err)
			return
		}
		l.groups.Add(1)
		l.grouped.Add(int64(len(batch)))
		return
	}
	if err := l.wal.append(rec); err != nil {
		err = storageErr(l.path, fmt.Errorf("ledger: write-ahead log: %w", err))
		l.mustCkpt = err
		if rerr := l.rebuild(); rerr != nil {
			err = rerr
		}
		fail(err)
		return
	}
	l.pending = append(l.pending, rec)
	l.pendSize += len(rec)
	l.pendPg += pages
	l.walBytes.Add(int64(walHeader + len(rec)))
	l.groups.Add(1)
	l.grouped.Add(int64(len(batch)))
}

// rebuild drops the open transaction and redoes the acknowledged groups in
// a new one: the state is again exactly what was acknowledged.
func (l *Ledger) rebuild() error {
	if l.wtx != nil {
		l.wtx.Rollback()
		l.wtx = nil
	}
	if len(l.pending) == 0 {
		return nil
	}
	tx, err := l.db.Begin(true)
	if err != nil {
		return storageErr(l.path, err)
	}
	for _, f := range l.pending {
		if err := applyFrame(tx, f); err != nil {
			tx.Rollback()
			return fmt.Errorf("ledger: redo acknowledged groups: %w; close and reopen the ledger (the write-ahead log holds them)", err)
		}
	}
	l.wtx = tx
	return nil
}

// checkpoint commits the open transaction to bbolt with the next log
// generation, which retires every frame in the log. On failure the
// acknowledged groups stay in the log and in a rebuilt transaction, and no
// frame is appended until a checkpoint succeeds. Caller holds txmu.
func (l *Ledger) checkpoint() error {
	if l.wtx == nil && l.mustCkpt == nil {
		return nil
	}
	err := l.commit()
	if err != nil {
		l.mustCkpt = err
		if rerr := l.rebuild(); rerr != nil {
			return rerr
		}
		return err
	}
	return nil
}

// commit commits wtx (beginning one if needed) with walgen+1.
func (l *Ledger) commit() error {
	if l.wtx == nil {
		tx, err := l.db.Begin(true)
		if err != nil {
			return storageErr(l.path, err)
		}
		l.wtx = tx
	}
	tx := l.wtx
	l.wtx = nil
	if err := tx.Bucket(bMeta).Put(walGenKey, u64(l.wal.gen+1)); err != nil {
		tx.Rollback()
		return storageErr(l.path, err)
	}
	if err := tx.Commit(); err != nil {
		// Even a failed commit may have reached the disk: no frame of
		// the current generation may follow until a commit succeeds.
		l.mustCkpt = storageErr(l.path, err)
		return l.mustCkpt
	}
	l.ckpts.Add(1)
	l.wal.reset(l.wal.gen + 1)
	l.pending, l.pendSize, l.pendPg, l.mustCkpt = nil, 0, 0, nil
	return nil
}

// read runs fn on the acknowledged state: the committer's open transaction
// if there is one (acknowledged groups not yet checkpointed live only
// there), else a bbolt read transaction. fn must not write.
func (l *Ledger) read(fn func(tx *bolt.Tx) error) error {
	l.txmu.Lock()
	if l.wtx != nil {
		defer l.txmu.Unlock()
		return fn(l.wtx)
	}
	l.txmu.Unlock()
	// Nothing uncheckpointed: every acknowledged group is committed.
	return l.db.View(fn)
}

// snapshot checkpoints, then runs fn in a read transaction (long reads:
// verify, export), which does not hold up commits.
func (l *Ledger) snapshot(fn func(tx *bolt.Tx) error) error {
	l.txmu.Lock()
	err := l.checkpoint()
	l.txmu.Unlock()
	if err != nil {
		return err
	}
	return l.db.View(fn)
}

func runOp(fn op, tx *bolt.Tx, w *writer) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ledger: internal error (%v); the request was not written", r)
			w.n++ // force a rollback of the group
		}
	}()
	return fn(tx, w)
}

// ---- small codecs ----

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func getU64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: record %q unreadable: %v; run posagent ledger verify", ErrCorrupt, k, err)
	}
	return true, nil
}
