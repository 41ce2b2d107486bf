package ledger

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// walLedger opens a ledger that checkpoints only when told (no idle timer).
func walLedger(t *testing.T, p string) *Ledger {
	t.Helper()
	l, err := Open(p, Options{Store: "S1", Till: "T1", Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	l.idleFor = time.Hour
	t.Cleanup(func() { l.Close() })
	return l
}

// crash stops l as a kill would: the open transaction and everything not
// checkpointed vanish from memory; the files stay as they are.
func crash(t *testing.T, l *Ledger) {
	t.Helper()
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closing = true
		l.mu.Unlock()
		<-l.token
		l.idle.Stop()
		l.txmu.Lock()
		if l.wtx != nil {
			l.wtx.Rollback()
			l.wtx = nil
		}
		l.shut = true
		l.txmu.Unlock()
		require.NoError(t, l.wal.close())
		require.NoError(t, l.db.Close())
	})
}

func saleKeys(t *testing.T, l *Ledger) map[string]uint64 {
	t.Helper()
	es, err := l.Pending("T1", 0, 100000)
	require.NoError(t, err)
	out := map[string]uint64{}
	for _, e := range es {
		if e.Kind == entry.KindSale {
			_, dup := out[e.Key]
			require.False(t, dup, "sale %s twice", e.Key)
			out[e.Key] = e.Seq
		}
	}
	return out
}

func lastSeq(t *testing.T, l *Ledger) uint64 {
	t.Helper()
	es, err := l.Pending("T1", 0, 100000)
	require.NoError(t, err)
	require.NotEmpty(t, es)
	return es[len(es)-1].Seq
}

func walSale(id string) SaleRequest {
	return SaleRequest{ReceiptID: id, MemberID: "M1", Lines: []loyalty.Line{line(1, 2, 1999), line(2, 1, 450)}}
}

// commitUnckpt commits n sales that stay in the log only (no checkpoint).
func commitUnckpt(t *testing.T, l *Ledger, n int) map[string]uint64 {
	t.Helper()
	want := map[string]uint64{}
	for i := 0; i < n; i++ {
		id := "R" + string(rune('a'+i))
		want[id] = sale(t, l, walSale(id)).Seq
	}
	l.txmu.Lock()
	frames := len(l.pending)
	l.txmu.Unlock()
	require.Equal(t, n, frames, "the sales must be in the log, not checkpointed")
	return want
}

func walFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(walPath(p))
	require.NoError(t, err)
	return b
}

// frameOffsets lists where each frame of the current generation starts.
func frameOffsets(t *testing.T, p string, n int) []int64 {
	t.Helper()
	b := walFile(t, p)
	var offs []int64
	var off int64
	for i := 0; i < n; i++ {
		offs = append(offs, off)
		off += walHeader + int64(uint32(b[off])|uint32(b[off+1])<<8|uint32(b[off+2])<<16|uint32(b[off+3])<<24)
	}
	return append(offs, off)
}

func TestWALReplayAfterCrashBeforeCheckpoint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	verifyOK(t, l) // checkpoints the enrolment
	pts := points(t, l, "M1")
	want := commitUnckpt(t, l, 5)
	require.Equal(t, want, saleKeys(t, l), "reads see acknowledged groups before any checkpoint")
	after := points(t, l, "M1")
	require.Greater(t, after, pts)
	crash(t, l)

	// bbolt alone does not have them: they live in the log.
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		for id := range want {
			require.Nil(t, tx.Bucket(bKeys).Get(idemKey("sale", "T1", id)))
		}
		return nil
	}))
	require.NoError(t, db.Close())

	l = walLedger(t, p)
	require.Equal(t, want, saleKeys(t, l))
	require.Equal(t, after, points(t, l, "M1"))
	verifyOK(t, l)
	// Idempotency holds across the crash: a resend returns the first entry.
	for id, seq := range want {
		e := sale(t, l, walSale(id))
		require.Equal(t, seq, e.Seq)
	}
	require.Equal(t, want, saleKeys(t, l))
	_, err = l.CommitSale(ctx, SaleRequest{ReceiptID: "Ra", MemberID: "M1", Lines: []loyalty.Line{line(1, 1, 1)}})
	require.ErrorIs(t, err, ErrKeyConflict)
}

func TestWALTornAndCorruptTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, offs []int64) []byte
	}{
		{"torn last frame", func(b []byte, offs []int64) []byte {
			last := offs[len(offs)-2]
			for i := last + walHeader + 5; i < offs[len(offs)-1]; i++ {
				b[i] = 0 // the end of the frame never reached the disk
			}
			return b
		}},
		{"bad CRC in last frame", func(b []byte, offs []int64) []byte {
			b[offs[len(offs)-2]+walHeader+3] ^= 0x40
			return b
		}},
		{"header only", func(b []byte, offs []int64) []byte {
			last := offs[len(offs)-2]
			clear(b[last+walHeader : offs[len(offs)-1]])
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "l.db")
			l := walLedger(t, p)
			enrol(t, l, "M1")
			verifyOK(t, l)
			want := commitUnckpt(t, l, 4)
			crash(t, l)
			b := walFile(t, p)
			b = tc.damage(b, frameOffsets(t, p, 4))
			require.NoError(t, os.WriteFile(walPath(p), b, 0o600))

			l = walLedger(t, p)
			got := saleKeys(t, l)
			// The damaged last group was never acknowledged (its fdatasync
			// did not return): it is dropped, the others are all there.
			delete(want, "Rd")
			require.Equal(t, want, got)
			verifyOK(t, l)
			last := lastSeq(t, l)
			e := sale(t, l, walSale("Rd"))
			require.Equal(t, last+1, e.Seq, "sequence continues without a gap")
			crash(t, l)
			l = walLedger(t, p)
			want["Rd"] = e.Seq
			require.Equal(t, want, saleKeys(t, l))
			verifyOK(t, l)
		})
	}
}

func TestWALDamagedMiddleFrameIsCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	commitUnckpt2 := func() { // enrolment frame + 3 sales
		for _, id := range []string{"Ra", "Rb", "Rc"} {
			sale(t, l, walSale(id))
		}
	}
	commitUnckpt2()
	crash(t, l)
	b := walFile(t, p)
	offs := frameOffsets(t, p, 4)
	b[offs[1]+walHeader+2] ^= 1
	require.NoError(t, os.WriteFile(walPath(p), b, 0o600))
	_, err := Open(p, Options{Store: "S1", Till: "T1"})
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "restore the latest backup")
}

// A frame applied twice (recovery interrupted after bbolt already had it)
// gives the same state: frames carry whole values.
func TestWALReplayTwiceIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	verifyOK(t, l)
	var gen uint64
	require.NoError(t, l.read(func(tx *bolt.Tx) error { gen = getU64(tx.Bucket(bMeta).Get(walGenKey)); return nil }))
	want := commitUnckpt(t, l, 3)
	crash(t, l)
	oldWAL := walFile(t, p)

	l = walLedger(t, p) // replays and checkpoints
	pts := points(t, l, "M1")
	require.Equal(t, want, saleKeys(t, l))
	require.NoError(t, l.Close())

	// Pretend the generation was never advanced and the log still holds
	// the same frames: they are applied again on top of themselves.
	db, err := bolt.Open(p, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(walGenKey, u64(gen)) }))
	require.NoError(t, db.Close())
	require.NoError(t, os.WriteFile(walPath(p), oldWAL, 0o600))

	l = walLedger(t, p)
	require.Equal(t, want, saleKeys(t, l))
	require.Equal(t, pts, points(t, l, "M1"))
	verifyOK(t, l)
	last := lastSeq(t, l)
	e := sale(t, l, walSale("new"))
	require.Equal(t, last+1, e.Seq)
}

// A failed log append fails the group's requests, leaves nothing of them
// behind, and loses nothing acknowledged before.
func TestWALAppendFailure(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	verifyOK(t, l)
	want := commitUnckpt(t, l, 2)
	pts := points(t, l, "M1")

	good := l.wal.f
	ro, err := os.Open(walPath(p)) // writes to it fail
	require.NoError(t, err)
	l.txmu.Lock()
	l.wal.f = ro
	l.txmu.Unlock()
	_, err = l.CommitSale(ctx, walSale("lost"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "write-ahead log")
	require.Equal(t, want, saleKeys(t, l), "the failed sale is not visible")
	require.Equal(t, pts, points(t, l, "M1"))
	l.txmu.Lock()
	l.wal.f = good
	l.txmu.Unlock()
	require.NoError(t, ro.Close())

	// The next group first checkpoints (retiring whatever of the failed
	// frame reached the file), then commits normally.
	e := sale(t, l, walSale("next"))
	want["next"] = e.Seq
	crash(t, l)
	l = walLedger(t, p)
	require.Equal(t, want, saleKeys(t, l))
	verifyOK(t, l)
	e = sale(t, l, walSale("lost"))
	require.NotZero(t, e.Seq)
}

// Many groups: checkpoints happen on their own (count and size), and the
// log file stays at its pre-allocated size.
func TestWALCheckpointsAndRecycles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	n := walCkptGroup + 20
	for i := 0; i < n; i++ {
		sale(t, l, walSale("S"+string(rune('A'+i/26))+string(rune('a'+i%26))))
	}
	require.GreaterOrEqual(t, l.ckpts.Load(), int64(1))
	st, err := os.Stat(walPath(p))
	require.NoError(t, err)
	require.Equal(t, int64(walSegment), st.Size())
	crash(t, l)
	l = walLedger(t, p)
	require.Len(t, saleKeys(t, l), n)
	verifyOK(t, l)
}

// A schema 2 file (same layout, written before the log existed) is
// upgraded to 3 at open, so a posagent that knows no log refuses it.
func TestSchema2UpgradedAtOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.db")
	l := walLedger(t, p)
	enrol(t, l, "M1")
	require.NoError(t, l.Close())
	db, err := bolt.Open(p, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		require.NoError(t, m.Delete(walGenKey))
		return m.Put([]byte("schema"), u64(schemaNoWAL))
	}))
	require.NoError(t, db.Close())
	require.NoError(t, os.Remove(walPath(p)))

	l = walLedger(t, p)
	sale(t, l, walSale("R1"))
	var schema uint64
	require.NoError(t, l.read(func(tx *bolt.Tx) error { schema = getU64(tx.Bucket(bMeta).Get([]byte("schema"))); return nil }))
	require.Equal(t, uint64(SchemaVersion), schema)
	verifyOK(t, l)
}
