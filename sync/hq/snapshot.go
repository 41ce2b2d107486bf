package hq

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"time"

	"posagent/sync/wire"
)

// maxSnapshots is how many snapshots HQ sends at once; each holds a
// database snapshot and a connection (or a bbolt read transaction) for as
// long as it streams, so a further one is answered 503 with Retry-After.
const maxSnapshots = 4

// snapshotWriteTimeout drops a till that takes no bytes for this long, so
// a stalled one cannot hold its snapshot open.
const snapshotWriteTimeout = 30 * time.Second

// handleSnapshot streams every member as one consistent snapshot: one
// SnapshotLine per member, newline-delimited JSON, gzip-compressed, then
// the end line with the count and the changes cursor to continue from.
// Nothing is held in memory beyond the compressor's window. A failure
// after the first byte can only cut the stream; the missing end line tells
// the till to throw it away.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r, "", ""); !ok {
		return
	}
	select {
	case s.snaps <- struct{}{}:
		defer func() { <-s.snaps }()
	default:
		s.setRetryAfter(w)
		writeError(w, http.StatusServiceUnavailable, "busy", "HQ is sending as many snapshots as it can; retry")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Encoding", "gzip")
	h.Set("Cache-Control", "no-store")
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	zw, _ := gzip.NewWriterLevel(dw, gzip.BestSpeed) // a valid level: no error
	enc := json.NewEncoder(zw)
	var n int64
	cursor, err := s.st.Snapshot(r.Context(), func(m wire.MemberState) error {
		n++
		return enc.Encode(wire.SnapshotLine{Member: &m})
	})
	if err == nil {
		err = enc.Encode(wire.SnapshotLine{End: &wire.SnapshotEnd{Members: n, Cursor: cursor}})
	}
	if err != nil {
		if n == 0 && dw.n == 0 {
			h.Del("Content-Encoding")
			h.Del("Cache-Control")
			s.pageError(w, err)
			return
		}
		s.o.Log.Warn("snapshot cut", "members_sent", n, "err", err)
	}
	_ = zw.Close()
}

// deadlineWriter sets a write deadline before each write, so only a till
// that stops reading is dropped, not one whose snapshot is long.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	n  int64
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(snapshotWriteTimeout)) // recorders cannot; real connections can
	n, err := d.w.Write(p)
	d.n += int64(n)
	return n, err
}
