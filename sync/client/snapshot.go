package client

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"posagent/sync/wire"
)

// snapshotApply is how many member states go to the inbox at once while a
// snapshot streams in: a bulk-apply transaction's worth for the ledger,
// small enough that memory does not grow with the chain.
var snapshotApply = 20000 // tests make it small

// errNoSnapshot: HQ does not serve snapshots (an older HQ); the till pages
// through the feed from its start instead.
var errNoSnapshot = errors.New("HQ serves no snapshot")

// snapshotQueue is how many decoded batches may wait for the apply: one
// is applied while the next is read and decoded, so memory holds at most
// three batches however large the chain.
const snapshotQueue = 1

// SnapshotLoader is implemented by an Inbox that takes a whole snapshot
// faster as one bulk load (the ledger's LoadMembers) than as a run of
// ApplyMemberStates calls. The snapshot then goes to one SnapshotLoad.
type SnapshotLoader interface {
	LoadSnapshot() (SnapshotLoad, error)
}

// SnapshotLoad takes one snapshot: Add every batch of states as it
// arrives, then Finish once the whole snapshot is in, or Abort if it
// was cut. The states need not be visible before Finish returns; what an
// aborted load applied is harmless (HQ's truth, applied again later).
type SnapshotLoad interface {
	Add(states []wire.MemberState) error
	Finish() error
	Abort()
}

// snapBatch is a run of decoded member states, the end (last), or the
// error that ended the read.
type snapBatch struct {
	states []wire.MemberState
	end    *wire.SnapshotEnd
	err    error
}

// snapshot takes every member from HQ in one streamed response, applies
// them in bulk and returns the changes cursor that continues after it. It
// returns the cursor only after the end arrived and every member was
// applied; the caller stores it. A cut stream is an error and leaves the
// cursor unset, so the next round takes a whole snapshot again (the states
// applied so far are HQ's truth and harmless to apply twice). Reading and
// decoding run in their own goroutine, ahead of the apply by at most
// snapshotQueue batches.
func (c *Client) snapshot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+wire.PathSnapshot, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set("Accept-Encoding", "gzip")
	// An older HQ ignores the binary type and sends newline-delimited JSON.
	req.Header.Set("Accept", wire.SnapshotBinary+", application/x-ndjson;q=0.5")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	// The whole stream may take longer than one exchange: only silence
	// longer than RequestTimeout ends it.
	body := newIdleReader(resp.Body, c.cfg.RequestTimeout, cancel)
	defer func() { body.stop(); drain(resp.Body) }()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		return "", errNoSnapshot
	}
	if resp.StatusCode/100 != 2 {
		return "", readError(resp, c.now()).hqError
	}
	var r io.Reader = bufio.NewReaderSize(body, 64<<10)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", fmt.Errorf("read HQ snapshot: %w", err)
		}
		r = zr
	}
	next := jsonSnapshot(r)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == wire.SnapshotBinary {
		next = binarySnapshot(r)
	}

	batches := make(chan snapBatch, snapshotQueue)
	go readSnapshot(ctx, next, batches)
	// Runs before the body is drained, so the reader has stopped touching
	// it; a reader still under way (the apply failed) is cancelled.
	finished := false
	defer func() {
		if !finished {
			cancel()
		}
		for range batches {
		}
	}()

	apply, finish := c.in.ApplyMemberStates, func() error { return nil }
	if sl, ok := c.in.(SnapshotLoader); ok {
		ld, err := sl.LoadSnapshot()
		if err != nil {
			return "", fmt.Errorf("sync client: start loading HQ's snapshot: %w", err)
		}
		defer ld.Abort() // after Finish: nothing left to do
		apply, finish = ld.Add, ld.Finish
	}
	var applied int64
	for b := range batches {
		finished = b.end != nil || b.err != nil
		if len(b.states) > 0 {
			if err := apply(b.states); err != nil {
				return "", fmt.Errorf("sync client: apply %d member states from HQ's snapshot: %w", len(b.states), err)
			}
			applied += int64(len(b.states))
			c.mu.Lock()
			c.st.MembersApplied += int64(len(b.states))
			c.mu.Unlock()
		}
		switch {
		case b.err != nil:
			return "", fmt.Errorf("read HQ snapshot after %d members: %w", applied, b.err)
		case b.end != nil:
			if applied != b.end.Members {
				return "", fmt.Errorf("read HQ snapshot: %d members arrived, HQ sent %d", applied, b.end.Members)
			}
			if b.end.Cursor == "" {
				return "", errors.New("read HQ snapshot: HQ sent no cursor to continue from")
			}
			if err := finish(); err != nil {
				return "", fmt.Errorf("sync client: load %d member states from HQ's snapshot: %w", applied, err)
			}
			return b.end.Cursor, nil
		}
	}
	return "", fmt.Errorf("read HQ snapshot after %d members: %w", applied, io.ErrUnexpectedEOF)
}

// readSnapshot decodes with next into batches of snapshotApply states and
// sends them; the last batch carries the end or the error. It stops when
// ctx ends and closes out either way.
func readSnapshot(ctx context.Context, next func(*wire.MemberState) (*wire.SnapshotEnd, error), out chan<- snapBatch) {
	defer close(out)
	batch := make([]wire.MemberState, 0, snapshotApply)
	for {
		var b snapBatch
		batch = batch[:len(batch)+1]
		b.end, b.err = next(&batch[len(batch)-1])
		if b.end != nil || b.err != nil {
			batch = batch[:len(batch)-1]
		}
		if b.end == nil && b.err == nil && len(batch) < snapshotApply {
			continue
		}
		b.states = batch
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if b.end != nil || b.err != nil {
			return
		}
		batch = make([]wire.MemberState, 0, snapshotApply)
	}
}

// binarySnapshot reads wire.SnapshotBinary records.
func binarySnapshot(r io.Reader) func(*wire.MemberState) (*wire.SnapshotEnd, error) {
	rd := wire.NewSnapshotReader(r)
	return rd.Next
}

// jsonSnapshot reads the newline-delimited SnapshotLine of an HQ that
// does not send the binary stream.
func jsonSnapshot(r io.Reader) func(*wire.MemberState) (*wire.SnapshotEnd, error) {
	dec := json.NewDecoder(r)
	return func(m *wire.MemberState) (*wire.SnapshotEnd, error) {
		var l wire.SnapshotLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // no end line: the stream was cut
			}
			return nil, err
		}
		switch {
		case l.Member != nil:
			*m = *l.Member
			return nil, nil
		case l.End != nil:
			return l.End, nil
		}
		return nil, errors.New("a line with neither member nor end")
	}
}

// idleReader cancels the request when a read waits d for a byte. Only
// waiting on the network counts: time spent decoding or applying between
// reads does not, so a slow apply cannot be taken for a silent HQ.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

func newIdleReader(r io.Reader, d time.Duration, cancel func()) *idleReader {
	t := time.AfterFunc(d, cancel)
	t.Stop()
	return &idleReader{r: r, d: d, timer: t}
}

func (i *idleReader) Read(p []byte) (int, error) {
	i.timer.Reset(i.d)
	n, err := i.r.Read(p)
	i.timer.Stop()
	return n, err
}

// stop is called once no read is under way any more.
func (i *idleReader) stop() { i.timer.Stop() }
