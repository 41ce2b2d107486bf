package hq

import (
	"compress/gzip"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
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

// handleSnapshot streams every member as one consistent snapshot,
// gzip-compressed: wire.SnapshotBinary records when the till asks for
// them in Accept, else one SnapshotLine per member, newline-delimited
// JSON; then the end with the count and the changes cursor to continue
// from. Nothing is held in memory beyond a buffer and the compressor's
// window. A failure after the first byte can only cut the stream; the
// missing end tells the till to throw it away.
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
	bin := acceptsSnapshotBinary(r)
	h := w.Header()
	if bin {
		h.Set("Content-Type", wire.SnapshotBinary)
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Content-Encoding", "gzip")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept")
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	zw, _ := gzip.NewWriterLevel(dw, gzip.BestSpeed) // a valid level: no error
	var n int64
	var member func(*wire.MemberState) error
	var end func(wire.SnapshotEnd) error
	if bin {
		// Records gather in buf and go to the compressor in large writes.
		buf := []byte(wire.SnapshotMagic)
		flush := func() error {
			_, err := zw.Write(buf)
			buf = buf[:0]
			return err
		}
		member = func(m *wire.MemberState) error {
			var err error
			if buf, err = wire.AppendSnapshotMember(buf, m); err != nil {
				return err
			}
			if len(buf) >= snapshotChunk {
				return flush()
			}
			return nil
		}
		end = func(e wire.SnapshotEnd) error {
			var err error
			if buf, err = wire.AppendSnapshotEnd(buf, e); err != nil {
				return err
			}
			return flush()
		}
	} else {
		enc := json.NewEncoder(zw)
		member = func(m *wire.MemberState) error { return enc.Encode(wire.SnapshotLine{Member: m}) }
		end = func(e wire.SnapshotEnd) error { return enc.Encode(wire.SnapshotLine{End: &e}) }
	}
	cursor, err := s.st.Snapshot(r.Context(), func(m wire.MemberState) error {
		n++
		return member(&m)
	})
	if err == nil {
		err = end(wire.SnapshotEnd{Members: n, Cursor: cursor})
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

// snapshotChunk is how many bytes of binary records go to the compressor
// at once.
const snapshotChunk = 64 << 10

// acceptsSnapshotBinary: the till named wire.SnapshotBinary in Accept.
func acceptsSnapshotBinary(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, t := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(t))
			if err != nil || mt != wire.SnapshotBinary {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				return false // explicitly refused
			}
			return true
		}
	}
	return false
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
