package hqcli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

// TestArchiveBoltRefuses: the embedded store says why it cannot archive.
func TestArchiveBoltRefuses(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	_, _, err = run(t, "archive", "--before", "2026-01", "--dir", t.TempDir(), "--db", db)
	require.ErrorContains(t, err, "never shrinks")
	require.ErrorContains(t, err, "PostgreSQL")
	_, _, err = run(t, "archive", "--before", "2026-13", "--dir", t.TempDir(), "--db", db)
	require.ErrorContains(t, err, "YYYY-MM")
}

// TestArchivePG: hq archive writes the month and its manifest and drops it;
// verify then wants the files, and with them agrees; a second run has
// nothing to do.
func TestArchivePG(t *testing.T) {
	base := hqtest.PostgresURL(t)
	ctx := context.Background()
	u, drop, err := pg.FreshSchema(ctx, base, "hqcli_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	st, err := pg.Open(ctx, u, pg.Options{})
	require.NoError(t, err)
	a := &hqtest.Till{Store: "S1", Till: "T1"}
	jan := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i, at := range []time.Time{jan, jan.AddDate(0, 1, 0), time.Now()} {
		en := a.Enrol("M"+string(rune('1'+i)), at)
		b := hqtest.Batch(en, a.Sale(en.MemberID, at, 1000, 10, 0, 0, ""))
		b.ReceivedAt = at
		_, err := st.Ingest(ctx, b)
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	dir := t.TempDir()
	out, _, err := run(t, "archive", "--pg", u, "--before", "2026-03", "--dir", dir)
	require.NoError(t, err)
	require.Contains(t, out, "2026-01: 2 entries to entries-2026-01.ndjson.gz")
	require.Contains(t, out, "2026-02: 2 entries to entries-2026-02.ndjson.gz")
	for _, f := range []string{"entries-2026-01.ndjson.gz", "entries-2026-01.manifest.json", "entries-2026-02.manifest.json"} {
		_, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
	}
	_, _, err = run(t, "verify", "--pg", u)
	require.ErrorContains(t, err, "--archive")
	out, _, err = run(t, "verify", "--pg", u, "--archive", dir)
	require.NoError(t, err)
	require.Contains(t, out, "agree exactly")
	out, _, err = run(t, "archive", "--pg", u, "--before", "2026-03", "--dir", dir)
	require.NoError(t, err)
	require.Contains(t, out, "nothing received before 2026-03")
}
