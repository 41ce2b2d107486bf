package pg_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// received is a batch of es as HQ received it at at.
func received(at time.Time, es ...entry.Entry) hq.Batch {
	b := hqtest.Batch(es...)
	b.ReceivedAt = at
	return b
}

func ingest(t *testing.T, st hq.Store, b hq.Batch) {
	t.Helper()
	ack, err := st.Ingest(context.Background(), b)
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
}

// history stores three months of two tills (received in January, February
// and March 2026): enrolments, member and walk-in sales, a refund and a
// void, and returns the January member sales (refunded later).
func history(t *testing.T, st hq.Store, a, b *hqtest.Till) []entry.Entry {
	jan := time.Date(2026, 1, 10, 3, 0, 0, 0, time.UTC)
	feb := jan.AddDate(0, 1, 0)
	mar := feb.AddDate(0, 1, 0)
	var sales []entry.Entry
	for i, m := range []string{"M1", "M2", "M3"} {
		at := jan.Add(time.Duration(i) * time.Hour)
		en := a.Enrol(m, at)
		s := a.Sale(m, at, 1000*int64(i+1), 10*int64(i+1), 0, 0, "")
		sales = append(sales, s)
		ingest(t, st, received(at, en, s))
	}
	// A sale voided in the same upload.
	w := b.Sale("M4", jan, 500, 5, 0, 0, "")
	ingest(t, st, received(jan, w, b.Void(w, jan.Add(time.Minute))))
	ingest(t, st, received(jan.Add(48*time.Hour), a.Sale("M1", jan.Add(48*time.Hour), 700, 7, 5, 0, "")))
	for d := range 4 {
		at := feb.Add(time.Duration(d) * 24 * time.Hour)
		ingest(t, st, received(at, a.Sale("M2", at, 300, 3, 0, 0, "")))
		ingest(t, st, received(at, b.Sale("", at, 200, 0, 0, 0, "")))
	}
	ingest(t, st, received(feb.Add(time.Hour), a.Refund(sales[2], feb.Add(time.Hour), 1000, 10, 0, false)))
	ingest(t, st, received(mar, a.Sale("M3", mar, 900, 9, 0, 0, "")))
	ingest(t, st, received(mar, b.Sale("M1", mar, 100, 1, 0, 0, "")))
	return sales
}

// pageAll pages the export from cursor until it ends or stop says so,
// counting every entry id seen.
func pageAll(t *testing.T, st hq.Store, cursor string, limit int, seen map[string]int, stop func() bool) (string, error) {
	for range 10000 {
		p, err := st.Export(context.Background(), cursor, limit)
		if err != nil {
			return cursor, err
		}
		for _, e := range p.Entries {
			seen[e.ID()]++
		}
		cursor = p.Cursor
		if !p.More || stop() {
			return cursor, nil
		}
	}
	t.Fatal("export did not end")
	return "", nil
}

// visible waits until the export hands out n entries: it holds back rows
// while any older transaction on the server is open (other tests' too).
func visible(t *testing.T, st hq.Store, n int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := map[string]int{}
		cur, err := pageAll(t, st, "", 500, seen, func() bool { return false })
		require.NoError(t, err)
		if len(seen) >= n {
			return cur
		}
		require.True(t, time.Now().Before(deadline), "the export shows %d of %d entries after a minute", len(seen), n)
		time.Sleep(50 * time.Millisecond)
	}
}

func storedIDs(t *testing.T, st hq.Store) map[string]int {
	ids := map[string]int{}
	require.NoError(t, st.Scan(context.Background(), func(x hq.Stored) error {
		ids[x.Entry.ID()]++
		return nil
	}))
	return ids
}

func totals(t *testing.T, st hq.Store) hq.Totals {
	tot, err := hq.NewServer(st, hq.Options{}).Totals(context.Background())
	require.NoError(t, err)
	return tot
}

func aggRows(t *testing.T, st hq.Store) ([]hq.AggRow, []hq.AggRow) {
	ctx := context.Background()
	days, err := st.AggRows(ctx, false, 0, 1<<30)
	require.NoError(t, err)
	months, err := st.AggRows(ctx, true, 0, 1<<30)
	require.NoError(t, err)
	hq.SortAggRows(days)
	hq.SortAggRows(months)
	return days, months
}

// TestArchiveMidStream: January is archived while one export reader has
// passed it and another is still inside it. The first reads on as if
// nothing happened; the second is told which file holds what it has not
// read and where to go on; both end with every entry exactly once.
// Totals, KPI rows and verify (with the files) agree before and after; an
// archived batch uploaded again is a duplicate; a refund of an archived
// sale arriving later folds as if its sale were stored.
func TestArchiveMidStream(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
	sales := history(t, st, a, b)
	all := storedIDs(t, st)
	jan := map[string]bool{}
	var janBatch []entry.Entry
	require.NoError(t, st.Scan(ctx, func(x hq.Stored) error {
		if x.ReceivedAt.Month() == time.January {
			jan[x.Entry.ID()] = true
			if x.Entry.Till == "T1" && x.Entry.Store == "S1" && len(janBatch) < 2 {
				janBatch = append(janBatch, x.Entry)
			}
		}
		return nil
	}))
	require.NotEmpty(t, jan)
	visible(t, st, len(all))

	// Reader 1 pages past January; reader 2 stops inside it.
	seen1, seen2 := map[string]int{}, map[string]int{}
	cur1, err := pageAll(t, st, "", 2, seen1, func() bool { return len(seen1) > len(jan)+1 })
	require.NoError(t, err)
	cur2, err := pageAll(t, st, "", 2, seen2, func() bool { return len(seen2) >= 4 })
	require.NoError(t, err)
	require.Less(t, len(seen2), len(jan))

	tot0, verify0 := totals(t, st), verifyNone(t, st, "")
	days0, months0 := aggRows(t, st)
	require.Empty(t, verify0)

	dir := t.TempDir()
	as, err := hq.ArchiveBefore(ctx, st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
	require.NoError(t, err)
	require.Len(t, as, 1)
	require.Equal(t, "2026-01", as[0].Month)
	require.EqualValues(t, len(jan), as[0].Entries)
	for id := range storedIDs(t, st) {
		require.False(t, jan[id], "%s is archived and must be gone", id)
	}
	_, err = os.Stat(filepath.Join(dir, "entries-2026-01.manifest.json"))
	require.NoError(t, err)

	// Totals and KPI rows stand; verify reads the file, and without it
	// refuses rather than report the month as a mismatch.
	require.Equal(t, tot0, totals(t, st))
	days1, months1 := aggRows(t, st)
	require.Equal(t, days0, days1)
	require.Equal(t, months0, months1)
	require.Empty(t, verifyNone(t, st, dir))
	_, err = hq.VerifyAggregatesWith(ctx, st, "")
	require.ErrorContains(t, err, "--archive")

	// Reader 1 goes on untouched.
	_, err = pageAll(t, st, cur1, 2, seen1, func() bool { return false })
	require.NoError(t, err)
	require.Equal(t, all, seen1)

	// Reader 2 is told where January went.
	_, err = st.Export(ctx, cur2, 2)
	var ae *hq.ArchivedError
	require.ErrorAs(t, err, &ae)
	require.True(t, errors.Is(err, hq.ErrArchived))
	require.Equal(t, []string{"entries-2026-01.ndjson.gz"}, ae.Files)
	for _, f := range ae.Files {
		ar := as[0]
		require.Equal(t, f, ar.File)
		require.NoError(t, hq.ReadArchive(dir, ar, func(e hq.ArchivedEntry) error {
			if ae.After.Less(e.Pos) {
				seen2[e.ID()]++
			}
			return nil
		}))
	}
	_, err = pageAll(t, st, ae.Continue, 2, seen2, func() bool { return false })
	require.NoError(t, err)
	require.Equal(t, all, seen2)
	// A reader starting now hears of the archive too.
	_, err = st.Export(ctx, "", 10)
	require.ErrorIs(t, err, hq.ErrArchived)

	// Uploading archived entries again changes nothing.
	ack, err := st.Ingest(ctx, received(time.Now(), janBatch...))
	require.NoError(t, err)
	require.True(t, ack.Duplicate)
	require.Len(t, storedIDs(t, st), len(all)-len(jan))

	// Refunds and a void of archived sales, arriving now.
	now := time.Now().UTC()
	ingest(t, st, received(now, a.Refund(sales[0], now, 1000, 10, 0, true), a.Refund(sales[1], now, 500, 5, 0, false), a.Void(sales[2], now)))
	require.Empty(t, verifyNone(t, st, dir))
	_, months2 := aggRows(t, st)
	require.NotEqual(t, months1, months2, "the refunds changed January's figures")

	// Archiving again finds nothing left before February.
	as, err = hq.ArchiveBefore(ctx, st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
	require.NoError(t, err)
	require.Empty(t, as)
	// A rebuild from the stored entries alone would lose January.
	cfg, err := st.AggConfig(ctx)
	require.NoError(t, err)
	require.ErrorContains(t, st.RebuildAggregates(ctx, cfg), "archived")
}

func verifyNone(t *testing.T, st hq.Store, dir string) []string {
	t.Helper()
	diffs, err := hq.VerifyAggregatesWith(context.Background(), st, dir)
	require.NoError(t, err)
	return diffs
}

// TestArchiveCrashThenRerun: the file is written and the process dies
// before the drop: nothing is lost, and a rerun writes the month again
// (the same bytes) and drops it. A month that gained a row while it was
// written is not dropped.
func TestArchiveCrashThenRerun(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
	history(t, st, a, b)
	all := storedIDs(t, st)
	dir := t.TempDir()
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	crash := errors.New("killed")
	var first hq.Archive
	_, err := st.ArchiveMonth(ctx, jan, func(src hq.ArchiveSource) (hq.Archive, error) {
		ar, err := hq.WriteArchive(dir, "entries-2026-01", "2026-01", src)
		require.NoError(t, err)
		first = ar
		return ar, crash // dies after the file is durable, before the drop
	})
	require.ErrorIs(t, err, crash)
	require.Equal(t, all, storedIDs(t, st))
	as, err := st.Archives(ctx)
	require.NoError(t, err)
	require.Empty(t, as)

	// Rows written do not match the month (as if one arrived meanwhile):
	// nothing is dropped.
	_, err = st.ArchiveMonth(ctx, jan, func(src hq.ArchiveSource) (hq.Archive, error) {
		ar, err := hq.WriteArchive(dir, "entries-2026-01", "2026-01", src)
		ar.Entries--
		return ar, err
	})
	require.ErrorContains(t, err, "run hq archive again")
	require.Equal(t, all, storedIDs(t, st))

	out, err := hq.ArchiveBefore(ctx, st, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, first.SHA256, out[0].SHA256, "the rerun writes the same file")
	require.Empty(t, verifyNone(t, st, dir))
	got := map[string]int{}
	for _, ar := range out {
		require.NoError(t, hq.ReadArchive(dir, ar, func(e hq.ArchivedEntry) error {
			got[e.ID()]++
			return nil
		}))
	}
	for id, n := range storedIDs(t, st) {
		got[id] += n
	}
	require.Equal(t, all, got, "every entry once: in a file or stored")

	// A damaged file is refused by verify.
	p := filepath.Join(dir, out[0].File)
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(p, raw, 0o600))
	_, err = hq.VerifyAggregatesWith(ctx, st, dir)
	require.ErrorContains(t, err, "SHA-256")

	// The current month is never archived.
	_, err = hq.ArchiveBefore(ctx, st, time.Now().AddDate(0, 2, 0), dir, time.Now())
	require.ErrorContains(t, err, "current month")
}

// TestPartitionsOnDemand: an upload received in a month with no partition
// yet (a clock far off, an import) makes the partition and is stored.
func TestPartitionsOnDemand(t *testing.T) {
	ctx, u := freshSchema(t)
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st.Close()
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	old := time.Date(2019, 5, 17, 0, 0, 0, 0, time.UTC)
	ingest(t, st, received(old, a.Sale("M1", old, 100, 1, 0, 0, "")))
	ingest(t, st, received(time.Now(), a.Sale("M1", time.Now(), 100, 1, 0, 0, "")))
	months, err := st.ArchiveMonths(ctx, time.Now().AddDate(1, 0, 0))
	require.NoError(t, err)
	require.Contains(t, months, time.Date(2019, 5, 1, 0, 0, 0, 0, time.UTC))
	require.Len(t, storedIDs(t, st), 2)
	// A second store on the database finds them made.
	st2, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	defer st2.Close()
	ingest(t, st2, received(old.Add(time.Hour), a.Sale("M1", old, 100, 1, 0, 0, "")))
}

// TestArchiveUnderLoad: uploads (refunds of January's sales among them)
// and export readers run while January is archived: none fails, every
// entry is once in the file or stored, and verify with the file agrees.
func TestArchiveUnderLoad(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
	sales := history(t, st, a, b)
	cur := visible(t, st, len(storedIDs(t, st)))
	done := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	// Four tills upload now; T9's refunds reverse January's sales.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := &hqtest.Till{Store: "S3", Till: fmt.Sprintf("T%d", w)}
			for i := 0; i < 200; i++ {
				select {
				case <-done:
					return
				default:
				}
				now := time.Now().UTC()
				es := []entry.Entry{tl.Sale("M1", now, 100, 1, 0, 0, "")}
				if w == 0 && i%15 == 0 && i/15 < len(sales) {
					es = append(es, tl.Refund(sales[i/15], now, 10, 0, 0, false))
				}
				if _, err := st.Ingest(ctx, received(now, es...)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// An export reader that passed January already keeps paging.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			select {
			case <-done:
				return
			default:
			}
			p, err := st.Export(ctx, cur, 50)
			if err != nil {
				errs <- err
				return
			}
			cur = p.Cursor
		}
	}()
	time.Sleep(100 * time.Millisecond)
	dir := t.TempDir()
	as, err := hq.ArchiveBefore(ctx, st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
	time.Sleep(100 * time.Millisecond)
	close(done)
	wg.Wait()
	close(errs)
	require.NoError(t, err)
	require.Len(t, as, 1)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Empty(t, verifyNone(t, st, dir))
}

// TestArchivedExportOverHTTP: over the API a reader behind archived rows
// gets 410 "archived" with what to read and the cursor to go on with, and
// that cursor then pages.
func TestArchivedExportOverHTTP(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
	history(t, st, a, b)
	visible(t, st, len(storedIDs(t, st)))
	require.NoError(t, st.AddCredential(ctx, hq.Credential{Role: hq.RoleAdmin, ID: "erp", TokenHash: hq.HashToken("tok-erp"), CreatedAt: time.Now()}))
	_, err := hq.ArchiveBefore(ctx, st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), t.TempDir(), time.Now())
	require.NoError(t, err)
	srv := httptest.NewServer(hq.NewServer(st, hq.Options{}))
	defer srv.Close()
	get := func(cursor string) (int, []byte) {
		req, err := http.NewRequest("GET", srv.URL+wire.PathExport+"?limit=100&cursor="+url.QueryEscape(cursor), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer tok-erp")
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, body
	}
	code, body := get("")
	require.Equal(t, http.StatusGone, code, string(body))
	var we wire.Error
	require.NoError(t, json.Unmarshal(body, &we))
	require.Equal(t, "archived", we.Code)
	require.Contains(t, we.Message, "entries-2026-01.ndjson.gz")
	var ae *hq.ArchivedError
	_, err = st.Export(ctx, "", 100)
	require.ErrorAs(t, err, &ae)
	require.Contains(t, we.Message, ae.Continue)
	code, body = get(ae.Continue)
	require.Equal(t, http.StatusOK, code, string(body))
	var p wire.ExportPage
	require.NoError(t, json.Unmarshal(body, &p))
	require.NotEmpty(t, p.Entries)
	for _, e := range p.Entries {
		require.NotEqual(t, time.January, e.At.Month(), "January is in the file, not the feed")
	}
}

// TestArchiveTwiceAtOnce: two hq archive runs at the same time record each
// month once; the other is told it was archived meanwhile.
func TestArchiveTwiceAtOnce(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	history(t, st, &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"})
	dir := t.TempDir()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = hq.ArchiveBefore(ctx, st, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), dir, time.Now())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			require.Regexp(t, "archived meanwhile|no entries partition", err.Error())
		}
	}
	as, err := st.Archives(ctx)
	require.NoError(t, err)
	var months []string
	for _, a := range as {
		months = append(months, a.Month)
	}
	require.Equal(t, []string{"2026-01", "2026-02"}, months)
	require.Empty(t, verifyNone(t, st, dir))
}
