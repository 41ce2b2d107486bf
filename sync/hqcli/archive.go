package hqcli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

func archiveCmd(f *flags) *cobra.Command {
	var before, dir string
	c := &cobra.Command{
		Use:   "archive --before YYYY-MM --dir DIR",
		Short: "Move months of entries received before a month to files, and drop them from the storage",
		Long: `archive retires history: every month of entries HQ received (UTC) before
--before is written to DIR as entries-YYYY-MM.ndjson.gz (one exported entry
a line, as export pages carry it, with its export_pos) and
entries-YYYY-MM.manifest.json (month, entry count, per-store totals, the
file's SHA-256, first and last export position). Both are fsynced; only then
is the month dropped from the storage, in one transaction that also keeps
what must outlive it: each till's acked sequence (an archived entry uploaded
again is a duplicate), the KPI aggregates, what later refunds and voids of
archived sales need, and the manifest. The current month is never archived.

A crash or failure before the drop loses nothing: run it again, and months
not yet dropped are written again. /admin/totals and the KPI reports do not
change. hq verify then needs --archive DIR to read the files (posagent hq
verify --pg URL --archive DIR); sha256sum of
a file gives the manifest's sha256. An export
reader still behind archived rows is answered 410 with the files to read
and the cursor to go on with.

PostgreSQL only (--pg): a bbolt file never shrinks, so the embedded store
refuses.`,
		Example: `  posagent hq archive --pg postgres://hq@db/hq --before 2026-01 --dir /srv/hq-archive
  posagent hq archive --before 2025-07 --dir ./archive   # --pg from $HQ_PG`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.url != "" {
				return errors.New("archive works on the storage (--pg), not through --url")
			}
			if dir == "" {
				return errors.New("--dir: give the directory to write the month files to (kept, backed up: they are then the only copy)")
			}
			b, err := hq.ArchiveMonthOf(before)
			if err != nil {
				return fmt.Errorf("--before: %w", err)
			}
			ctx := cmd.Context()
			st, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			as, err := hq.ArchiveBefore(ctx, st, b, dir, time.Now())
			for _, a := range as {
				fmt.Fprintf(f.out, "%s: %d entries to %s (sha256 %s), dropped\n", a.Month, a.Entries, a.File, a.SHA256)
			}
			if err != nil {
				return err
			}
			if len(as) == 0 {
				fmt.Fprintf(f.out, "nothing received before %s is still stored\n", before)
			}
			return nil
		},
	}
	c.Flags().StringVar(&before, "before", "", "archive the months before this one, YYYY-MM (UTC)")
	c.Flags().StringVar(&dir, "dir", "", "directory for the month files and manifests")
	_ = c.MarkFlagRequired("before")
	return c
}
