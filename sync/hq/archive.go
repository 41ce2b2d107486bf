package hq

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"posagent/sync/wire"
)

// Retiring history: a store that implements Archiver writes each month of
// entries (by the month HQ received them, UTC) to a gzip NDJSON file with a
// manifest, makes both durable, and only then drops the month. What must
// outlive the entries stays in the database: each till's acked sequence
// (so an archived entry uploaded again is a duplicate), the KPI aggregates,
// the sale facts refunds and voids of archived sales need, and the
// archive's own record (counts, totals per store, SHA-256, export
// positions) that /admin/totals, the export feed and verify read.

// ExportPos is a position in the export feed, as a store orders it: rows
// compare by X, then N (PostgreSQL: the writing transaction's xid8, then
// the row id).
type ExportPos struct {
	X uint64 `json:"x,string"`
	N int64  `json:"n"`
}

// Less reports whether p comes before q in the feed.
func (p ExportPos) Less(q ExportPos) bool { return p.X < q.X || p.X == q.X && p.N < q.N }

// ArchivedEntry is one line of an archive file: the entry as an export
// page carries it, and where it stood in the export feed.
type ArchivedEntry struct {
	wire.ExportedEntry
	Pos ExportPos `json:"export_pos"`
}

// Archive is the manifest of one archived month, kept as a file next to
// the entries and as a record in the store.
type Archive struct {
	ID         int64                   `json:"id,omitempty"` // the store's record, in archiving order
	Month      string                  `json:"month"`        // YYYY-MM, received (UTC)
	File       string                  `json:"file"`         // base name in the archive directory
	Entries    int64                   `json:"entries"`
	SHA256     string                  `json:"sha256"` // hex, of the file's bytes (sha256sum checks it)
	IDXor      int64                   `json:"id_xor"` // the store's row ids xored: with Entries, the rows written are the rows dropped
	First      ExportPos               `json:"first_pos"`
	Last       ExportPos               `json:"last_pos"`
	Totals     map[string]*StoreTotals `json:"totals"` // per store, as /admin/totals sums them
	ArchivedAt time.Time               `json:"archived_at,omitzero"`
}

// ArchiveSource streams a month's entries to fn in export order; id is the
// store's row id (for Archive.IDXor).
type ArchiveSource func(fn func(e ArchivedEntry, id int64) error) error

// Archiver is a Store that can retire months of entries.
type Archiver interface {
	// ArchiveMonths lists the months (first instant, UTC) that hold
	// entries received before before, oldest first.
	ArchiveMonths(ctx context.Context, before time.Time) ([]time.Time, error)
	// ArchiveMonth hands month's entries to write, which makes the file
	// durable and returns its manifest; then, in one transaction, if the
	// month still holds exactly the rows written, the store keeps what
	// must outlive them, records the manifest and drops the month.
	// Anything failing before that commit leaves the month as it was.
	ArchiveMonth(ctx context.Context, month time.Time, write func(ArchiveSource) (Archive, error)) (Archive, error)
	// Archives lists the archived months, in archiving order.
	Archives(ctx context.Context) ([]Archive, error)
}

// ArchivedError is Export's answer to a cursor that has not yet passed
// entries that were archived: they are no longer in the feed. The reader
// takes the lines after After from Files (in order), then continues the
// feed with Continue; nothing is skipped or repeated.
type ArchivedError struct {
	Files    []string
	After    ExportPos
	Continue string
}

// ErrArchived: see ArchivedError.
var ErrArchived = errors.New("hq: entries after this export cursor were archived")

func (e *ArchivedError) Error() string {
	return fmt.Sprintf("%v: read the lines of %s whose export_pos is after {x:%d n:%d}, then continue the export with cursor %q",
		ErrArchived, strings.Join(e.Files, ", "), e.After.X, e.After.N, e.Continue)
}

func (e *ArchivedError) Unwrap() error { return ErrArchived }

// ErrNoArchive: the store cannot archive (the error says why).
var ErrNoArchive = errors.New("hq: this store cannot archive")

// ArchiveMonthOf parses YYYY-MM as the first instant of that month, UTC.
func ArchiveMonthOf(s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("month %q: give it as YYYY-MM, e.g. 2026-01", s)
	}
	return t, nil
}

// ArchiveBefore archives every month received before before (a month's
// first instant, UTC) into dir, oldest first, and returns the manifests
// written. The current month can never be archived: entries still arrive
// in it. Rerunning after a failure or crash is safe: a month dropped is
// done, a month not yet dropped is written again.
func ArchiveBefore(ctx context.Context, st Store, before time.Time, dir string, now time.Time) ([]Archive, error) {
	a, ok := st.(Archiver)
	if !ok {
		return nil, fmt.Errorf("%w: %T has no archive support", ErrNoArchive, st)
	}
	if cur := monthStart(now); before.After(cur) {
		return nil, fmt.Errorf("--before %s would archive the current month (%s), which still receives entries; give %s at most",
			before.Format("2006-01"), cur.Format("2006-01"), cur.Format("2006-01"))
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	months, err := a.ArchiveMonths(ctx, before)
	if err != nil {
		return nil, err
	}
	prior, err := a.Archives(ctx)
	if err != nil {
		return nil, err
	}
	var out []Archive
	for _, m := range months {
		month := m.UTC().Format("2006-01")
		// A month archived before and received into again (a clock set
		// back) gets a file of its own.
		name, n := "entries-"+month, 1
		for _, p := range prior {
			if p.Month == month {
				n++
			}
		}
		if n > 1 {
			name = fmt.Sprintf("%s.%d", name, n)
		}
		ar, err := a.ArchiveMonth(ctx, m, func(src ArchiveSource) (Archive, error) {
			return WriteArchive(dir, name, month, src)
		})
		if err != nil {
			return out, fmt.Errorf("archive %s: %w", month, err)
		}
		out = append(out, ar)
	}
	return out, nil
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// WriteArchive writes src to dir/name.ndjson.gz and its manifest to
// dir/name.manifest.json, each through a temporary file that is fsynced and
// renamed, and the directory fsynced: once it returns, both survive a
// crash. A file left by an earlier, interrupted run is replaced.
func WriteArchive(dir, name, month string, src ArchiveSource) (Archive, error) {
	ar := Archive{Month: month, File: name + ".ndjson.gz", Totals: map[string]*StoreTotals{}}
	h := sha256.New()
	err := writeDurable(dir, ar.File, func(f io.Writer) error {
		zw := gzip.NewWriter(io.MultiWriter(f, h))
		bw := bufio.NewWriterSize(zw, 1<<16)
		enc := json.NewEncoder(bw)
		first := true
		if err := src(func(e ArchivedEntry, id int64) error {
			if first {
				ar.First, first = e.Pos, false
			}
			ar.Last = e.Pos
			ar.Entries++
			ar.IDXor ^= id
			t := ar.Totals[e.Store]
			if t == nil {
				t = &StoreTotals{}
				ar.Totals[e.Store] = t
			}
			t.add(&e.Entry)
			return enc.Encode(e)
		}); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return ar, err
	}
	ar.SHA256 = hex.EncodeToString(h.Sum(nil))
	m, err := json.MarshalIndent(ar, "", "  ")
	if err != nil {
		return ar, err
	}
	err = writeDurable(dir, name+".manifest.json", func(f io.Writer) error {
		_, err := f.Write(append(m, '\n'))
		return err
	})
	return ar, err
}

// writeDurable writes dir/name through a temporary file: fsync, rename,
// fsync of the directory.
func writeDurable(dir, name string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; cleans up after a failure
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadArchive calls fn for every line of a's file in dir, after checking
// the file's SHA-256 and, at the end, its count against the manifest.
func ReadArchive(dir string, a Archive, fn func(ArchivedEntry) error) error {
	path := filepath.Join(dir, a.File)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive of %s: %w (give the directory hq archive wrote it to)", a.Month, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("archive %s: SHA-256 %s, the manifest says %s: the file is damaged or not this month's; restore it from backup", path, got, a.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	dec := json.NewDecoder(zr)
	var n int64
	for {
		var e ArchivedEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("archive %s, line %d: %w", path, n+1, err)
		}
		n++
		if err := fn(e); err != nil {
			return err
		}
	}
	if n != a.Entries {
		return fmt.Errorf("archive %s holds %d entries, the manifest says %d", path, n, a.Entries)
	}
	return nil
}

// ScanWithArchives is a scan of every entry HQ ever stored: those in the
// archive files in dir (checked against their manifests), then those the
// store holds.
func ScanWithArchives(st Store, dir string) func(context.Context, func(Stored) error) error {
	return func(ctx context.Context, fn func(Stored) error) error {
		if a, ok := st.(Archiver); ok {
			as, err := a.Archives(ctx)
			if err != nil {
				return err
			}
			for _, ar := range as {
				if err := ReadArchive(dir, ar, func(e ArchivedEntry) error {
					at, err := time.Parse(time.RFC3339Nano, e.ReceivedAt)
					if err != nil {
						return fmt.Errorf("archive %s: received_at %q: %w", ar.File, e.ReceivedAt, err)
					}
					return fn(Stored{Entry: e.Entry, ReceivedAt: at})
				}); err != nil {
					return err
				}
			}
		}
		return st.Scan(ctx, fn)
	}
}

// VerifyAggregatesWith is VerifyAggregates over every entry HQ stored,
// archived ones read from dir. With archived months and no dir it refuses:
// the stored entries alone would make every archived month a mismatch.
func VerifyAggregatesWith(ctx context.Context, st Store, dir string) ([]string, error) {
	if dir == "" {
		as, err := archivesOf(ctx, st)
		if err != nil {
			return nil, err
		}
		if len(as) > 0 {
			return nil, fmt.Errorf("entries of %d archived months (%s to %s) are no longer stored; give --archive with the directory hq archive wrote them to, so verify reads them too",
				len(as), as[0].Month, as[len(as)-1].Month)
		}
		return VerifyAggregates(ctx, st)
	}
	return VerifyAggregates(ctx, withArchives{st, dir})
}

// withArchives is a store whose Scan reads the archive files first.
type withArchives struct {
	Store
	dir string
}

func (w withArchives) Scan(ctx context.Context, fn func(Stored) error) error {
	return ScanWithArchives(w.Store, w.dir)(ctx, fn)
}

func archivesOf(ctx context.Context, st Store) ([]Archive, error) {
	if a, ok := st.(Archiver); ok {
		return a.Archives(ctx)
	}
	return nil, nil
}
