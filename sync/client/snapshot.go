package client

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"posagent/sync/wire"
)

// snapshotApply is how many member states go to the inbox at once while a
// snapshot streams in: a bulk-apply transaction's worth for the ledger,
// small enough that memory does not grow with the chain.
const snapshotApply = 20000

// errNoSnapshot: HQ does not serve snapshots (an older HQ); the till pages
// through the feed from its start instead.
var errNoSnapshot = errors.New("HQ serves no snapshot")

// snapshot takes every member from HQ in one streamed response, applies
// them in bulk and returns the changes cursor that continues after it. It
// returns the cursor only after the end line arrived and every member was
// applied; the caller stores it. A cut stream is an error and leaves the
// cursor unset, so the next round takes a whole snapshot again (the states
// applied so far are HQ's truth and harmless to apply twice).
func (c *Client) snapshot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+wire.PathSnapshot, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set("Accept-Encoding", "gzip")
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
	var r io.Reader = body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bufio.NewReaderSize(body, 64<<10))
		if err != nil {
			return "", fmt.Errorf("read HQ snapshot: %w", err)
		}
		r = zr
	}
	dec := json.NewDecoder(r)
	batch := make([]wire.MemberState, 0, snapshotApply)
	var applied int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := c.in.ApplyMemberStates(batch); err != nil {
			return fmt.Errorf("sync client: apply %d member states from HQ's snapshot: %w", len(batch), err)
		}
		applied += int64(len(batch))
		c.mu.Lock()
		c.st.MembersApplied += int64(len(batch))
		c.mu.Unlock()
		batch = batch[:0]
		return nil
	}
	for {
		var l wire.SnapshotLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // no end line: the stream was cut
			}
			return "", fmt.Errorf("read HQ snapshot after %d members: %w", applied+int64(len(batch)), err)
		}
		switch {
		case l.Member != nil:
			batch = append(batch, *l.Member)
			if len(batch) == snapshotApply {
				if err := flush(); err != nil {
					return "", err
				}
			}
		case l.End != nil:
			if err := flush(); err != nil {
				return "", err
			}
			if applied != l.End.Members {
				return "", fmt.Errorf("read HQ snapshot: %d members arrived, HQ sent %d", applied, l.End.Members)
			}
			if l.End.Cursor == "" {
				return "", errors.New("read HQ snapshot: HQ sent no cursor to continue from")
			}
			return l.End.Cursor, nil
		default:
			return "", fmt.Errorf("read HQ snapshot after %d members: a line with neither member nor end", applied+int64(len(batch)))
		}
	}
}

// idleReader cancels the request when no byte arrives for d.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	mu    sync.Mutex
	timer *time.Timer
}

func newIdleReader(r io.Reader, d time.Duration, cancel func()) *idleReader {
	return &idleReader{r: r, d: d, timer: time.AfterFunc(d, cancel)}
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.mu.Lock()
		i.timer.Reset(i.d)
		i.mu.Unlock()
	}
	return n, err
}

func (i *idleReader) stop() {
	i.mu.Lock()
	i.timer.Stop()
	i.mu.Unlock()
}
