package bolt

import (
	"context"
	"fmt"
	"time"

	"posagent/sync/hq"
)

// The embedded store does not archive. Deleting a month from a bbolt file
// frees its pages for reuse inside the file but never returns them to the
// filesystem (bbolt files do not shrink), so retiring history would gain
// no disk, only a rewrite of the whole file while HQ is stopped. HQ that
// outgrows one file belongs on PostgreSQL, whose monthly partitions are
// dropped whole.
var errNoArchive = fmt.Errorf("%w: the embedded (bbolt) store keeps every entry: a bbolt file never shrinks, so dropping old months would free no disk; "+
	"run HQ on PostgreSQL (hq --pg) to archive history by month", hq.ErrNoArchive)

var _ hq.Archiver = (*Store)(nil)

func (s *Store) ArchiveMonths(context.Context, time.Time) ([]time.Time, error) {
	return nil, errNoArchive
}

func (s *Store) ArchiveMonth(context.Context, time.Time, func(hq.ArchiveSource) (hq.Archive, error)) (hq.Archive, error) {
	return hq.Archive{}, errNoArchive
}

// Archives: none, ever.
func (s *Store) Archives(context.Context) ([]hq.Archive, error) { return nil, nil }
