package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log. A group commit is made durable by one frame appended
// to <ledger>.wal and one fdatasync; bbolt receives the same writes in a
// write transaction the committer keeps open, committed as a checkpoint
// every so many groups. The file is written full of zeros once and then
// overwritten from the start after every checkpoint, so an append changes
// no file metadata and fdatasync flushes only the data blocks.
//
// Frame: payload length (4) | CRC-32C of the rest (4) | generation (8) |
// frame number in the generation (8) | payload. The payload is the group's
// bbolt writes in order (put, delete, bucket sequence). A frame is the unit
// of replay, so a group is applied whole or not at all.
//
// The generation is meta/walgen in bbolt. A checkpoint commits the
// applied state together with walgen+1, so the frames of the old
// generation still in the file are dead the moment the commit is durable;
// frames of the new generation start again at offset 0. Recovery applies
// the frames of the current generation from offset 0 while each one has
// the expected number and a good CRC; the first one that does not is the
// tail (torn, never acknowledged, or left from an older generation).

const (
	walSegment   = 2 << 20 // zero-filled size of the file
	walCkptBytes = 1 << 20 // checkpoint when the current generation reaches this
	walCkptGroup = 256     // … or this many groups
	walHeader    = 24
	walMaxFrame  = 1 << 30
)

const (
	walPut byte = 1 + iota
	walDel
	walSeq
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

type wal struct {
	f    *os.File
	path string
	gen  uint64 // generation being written (= meta/walgen)
	off  int64  // where the next frame goes
	n    uint64 // number of the next frame
	size int64  // file size
	buf  []byte
}

func walPath(dbPath string) string { return dbPath + ".wal" }

// openWAL opens (creating, zero-filled and synced) the log next to the
// ledger.
func openWAL(dbPath string) (*wal, error) {
	p := walPath(dbPath)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, storageErr(dbPath, fmt.Errorf("ledger: open write-ahead log %s: %w", p, err))
	}
	w := &wal{f: f, path: p}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ledger: %w", err)
	}
	w.size = st.Size()
	if w.size < walSegment {
		// Real zeros, not a sparse or fallocated range: overwriting
		// allocated, written blocks needs no journal entry at fdatasync.
		zeros := make([]byte, 64<<10)
		for off := w.size; off < walSegment; off += int64(len(zeros)) {
			if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), walSegment-off)], off); err != nil {
				f.Close()
				return nil, storageErr(dbPath, fmt.Errorf("ledger: prepare write-ahead log %s: %w", p, err))
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, storageErr(dbPath, fmt.Errorf("ledger: prepare write-ahead log %s: %w", p, err))
		}
		if err := syncName(p); err != nil {
			f.Close()
			return nil, err
		}
		w.size = walSegment
	}
	return w, nil
}

func (w *wal) close() error { return w.f.Close() }

// reset starts generation gen at the start of the file.
func (w *wal) reset(gen uint64) { w.gen, w.off, w.n = gen, 0, 0 }

// append writes payload as the next frame and makes it durable. On error
// the position is not advanced; the caller must checkpoint (new
// generation) before appending again, so whatever reached the disk of the
// failed frame can never be replayed.
func (w *wal) append(payload []byte) error {
	if len(payload) > walMaxFrame {
		return fmt.Errorf("ledger: group of %d bytes too large for the write-ahead log", len(payload))
	}
	need := walHeader + len(payload)
	if cap(w.buf) < need {
		w.buf = make([]byte, need)
	}
	b := w.buf[:need]
	binary.LittleEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(b[8:], w.gen)
	binary.LittleEndian.PutUint64(b[16:], w.n)
	copy(b[walHeader:], payload)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], crc32c))
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return err
	}
	if err := fdatasync(w.f); err != nil {
		return err
	}
	w.off += int64(need)
	w.n++
	w.size = max(w.size, w.off)
	return nil
}

// frames reads the frames of generation gen from the start of the file, up
// to the first that is missing, torn, corrupt or of another generation.
func (w *wal) frames(gen uint64) ([][]byte, error) {
	var out [][]byte
	hdr := make([]byte, walHeader)
	var off int64
	for n := uint64(0); ; n++ {
		if _, err := w.f.ReadAt(hdr, off); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("ledger: read write-ahead log %s: %w", w.path, err)
		}
		ln := int64(binary.LittleEndian.Uint32(hdr[0:]))
		if binary.LittleEndian.Uint64(hdr[8:]) != gen || binary.LittleEndian.Uint64(hdr[16:]) != n ||
			ln > walMaxFrame || off+walHeader+ln > w.size {
			return out, nil
		}
		b := make([]byte, walHeader+ln)
		if _, err := w.f.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("ledger: read write-ahead log %s: %w", w.path, err)
		}
		if crc32.Checksum(b[8:], crc32c) != binary.LittleEndian.Uint32(hdr[4:]) {
			// A torn last frame is expected. A bad frame followed by a good
			// next one is not (frames are written one at a time, each
			// after the previous one is durable): the medium damaged an
			// acknowledged group.
			if w.goodFrameAt(off+walHeader+ln, gen, n+1) {
				return nil, fmt.Errorf("%w: %s: frame %d is damaged but later ones are intact; acknowledged commits would be lost. Keep both files for inspection (cp %s %s.bad), restore the latest backup", ErrCorrupt, w.path, n, w.path, w.path)
			}
			return out, nil
		}
		out = append(out, b[walHeader:])
		off += walHeader + ln
	}
}

func (w *wal) goodFrameAt(off int64, gen, n uint64) bool {
	hdr := make([]byte, walHeader)
	if _, err := w.f.ReadAt(hdr, off); err != nil {
		return false
	}
	ln := int64(binary.LittleEndian.Uint32(hdr[0:]))
	if binary.LittleEndian.Uint64(hdr[8:]) != gen || binary.LittleEndian.Uint64(hdr[16:]) != n ||
		ln > walMaxFrame || off+walHeader+ln > w.size {
		return false
	}
	b := make([]byte, walHeader+ln)
	if _, err := w.f.ReadAt(b, off); err != nil {
		return false
	}
	return crc32.Checksum(b[8:], crc32c) == binary.LittleEndian.Uint32(hdr[4:])
}

// ---- payload: the bbolt writes of a group ----

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func encPut(b []byte, bucket, k, v []byte) []byte {
	b = append(b, walPut)
	return appendBytes(appendBytes(appendBytes(b, bucket), k), v)
}

func encDel(b []byte, bucket, k []byte) []byte {
	b = append(b, walDel)
	return appendBytes(appendBytes(b, bucket), k)
}

func encSeq(b []byte, bucket []byte, seq uint64) []byte {
	b = append(b, walSeq)
	return binary.AppendUvarint(appendBytes(b, bucket), seq)
}

var errBadFrame = errors.New("malformed write-ahead log frame")

func readBytes(p []byte) (v, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || uint64(len(p)-k) < n {
		return nil, nil, errBadFrame
	}
	return p[k : k+int(n)], p[k+int(n):], nil
}

// applyFrame redoes a group's writes in tx. Writes are whole values, so
// applying a frame again gives the same state.
func applyFrame(tx *bolt.Tx, p []byte) error {
	for len(p) > 0 {
		kind := p[0]
		bucket, rest, err := readBytes(p[1:])
		if err != nil {
			return err
		}
		b := tx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("%w: bucket %q missing", errBadFrame, bucket)
		}
		switch kind {
		case walPut, walDel:
			var k, v []byte
			if k, rest, err = readBytes(rest); err != nil {
				return err
			}
			if kind == walDel {
				err = b.Delete(k)
				break
			}
			if v, rest, err = readBytes(rest); err != nil {
				return err
			}
			if string(bucket) == string(bLog) {
				b.FillPercent = 1.0
			}
			// Copies: bbolt keeps the slices until commit, and the frame
			// buffer may be reused.
			err = b.Put(append([]byte(nil), k...), append([]byte(nil), v...))
		case walSeq:
			s, k := binary.Uvarint(rest)
			if k <= 0 {
				return errBadFrame
			}
			rest = rest[k:]
			err = b.SetSequence(s)
		default:
			return errBadFrame
		}
		if err != nil {
			return err
		}
		p = rest
	}
	return nil
}

var walGenKey = []byte("walgen")

// recoverWAL applies the acknowledged groups that the last checkpoint did
// not include, then checkpoints them (a new generation). It returns the log
// positioned for the next frame.
func recoverWAL(db *bolt.DB, dbPath string) (*wal, error) {
	w, err := openWAL(dbPath)
	if err != nil {
		return nil, err
	}
	var gen uint64
	if err := db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		if m == nil {
			return corruptErr(dbPath, "not a posagent ledger")
		}
		gen = getU64(m.Get(walGenKey))
		return nil
	}); err != nil {
		w.close()
		return nil, err
	}
	fs, err := w.frames(gen)
	if err != nil {
		w.close()
		return nil, err
	}
	if len(fs) > 0 {
		err = db.Update(func(tx *bolt.Tx) error {
			for i, f := range fs {
				if err := applyFrame(tx, f); err != nil {
					return fmt.Errorf("%w: %s frame %d: %v", ErrCorrupt, w.path, i, err)
				}
			}
			return tx.Bucket(bMeta).Put(walGenKey, u64(gen+1))
		})
		if err != nil {
			w.close()
			if errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			return nil, storageErr(dbPath, fmt.Errorf("ledger: replay write-ahead log: %w", err))
		}
		gen++
	}
	w.reset(gen)
	return w, nil
}
