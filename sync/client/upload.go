package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// hqError is a non-2xx answer from HQ.
type hqError struct {
	status        int
	code, message string
	retryAfter    time.Duration
	hasRetryAfter bool
}

func (e *hqError) Error() string {
	msg := e.message
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	hint := ""
	switch {
	case e.code == "client_cert_mismatch" || e.code == "client_cert_required":
		hint = " (check the store's client certificate: it must name this store, CN=<store id> or URI SAN posagent:store:<store id>)"
	case e.status == http.StatusUnauthorized || e.status == http.StatusForbidden:
		hint = " (check the store's HQ token; issue a new one at HQ if it was revoked)"
	case e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable:
		hint = " (HQ is busy; retrying later)"
	}
	if e.code != "" {
		return fmt.Sprintf("HQ answered %d %s: %s%s", e.status, e.code, msg, hint)
	}
	return fmt.Sprintf("HQ answered %d: %s%s", e.status, msg, hint)
}

// gapError is HQ's 409: it holds the till only up to expected-1.
type gapError struct{ expected uint64 }

func (e *gapError) Error() string {
	return fmt.Sprintf("HQ expects seq %d next", e.expected)
}

// maxRewinds bounds how often one till rewinds in a round without HQ's
// mark moving, so a confused HQ cannot spin the client.
const maxRewinds = 3

// uploadTill sends the till's due entries, batch after batch. It returns a
// wait when a small batch is not old enough yet.
func (c *Client) uploadTill(ctx context.Context, till string, force bool) (time.Duration, error) {
	stalls := 0
	// While a full batch is in flight the next one is read and encoded,
	// so the store's work overlaps HQ's. It is used only if it starts
	// where HQ's answer leaves us.
	var next chan prepResult
	defer func() {
		if next != nil {
			<-next
		}
	}()
	for ctx.Err() == nil {
		acked, err := c.out.Acked(till)
		if err != nil {
			return 0, fmt.Errorf("sync client: read acknowledged mark of till %s: %w", till, err)
		}
		c.mu.Lock()
		from := acked + 1
		if r, ok := c.rewind[till]; ok && r < from {
			from = r
		}
		limit := c.cfg.BatchMax
		if l, ok := c.limit[till]; ok && l < limit {
			limit = l
		}
		c.mu.Unlock()

		var p *prepared
		if next != nil {
			r := <-next
			next = nil
			if r.err == nil && r.p != nil && r.p.b.First == from && len(r.p.b.Entries) <= limit && (force || len(r.p.b.Entries) == limit) {
				p = r.p
			}
		}
		if p == nil {
			head, err := c.out.Pending(till, from-1, 1)
			if err != nil {
				return 0, fmt.Errorf("sync client: read outbox of till %s: %w", till, err)
			}
			if len(head) == 0 {
				return 0, nil
			}
			if !force {
				// A full batch goes at once; a small one waits until its
				// oldest entry is BatchAge old. Probing the limit-th entry
				// avoids reading the whole batch just to count it.
				full, err := c.out.Pending(till, from-1+uint64(limit)-1, 1)
				if err != nil {
					return 0, fmt.Errorf("sync client: read outbox of till %s: %w", till, err)
				}
				if len(full) == 0 {
					age := c.now().Sub(head[0].At)
					if age < c.cfg.BatchAge {
						w := c.cfg.BatchAge - age
						if w > c.cfg.BatchAge {
							w = c.cfg.BatchAge // a till clock ahead of ours
						}
						return w, nil
					}
				}
			}
			if p, err = c.prepare(till, from, limit); err != nil {
				return 0, err
			}
			if p == nil {
				return 0, nil
			}
		}
		b := p.b
		if len(b.Entries) == limit {
			next = make(chan prepResult, 1)
			go func(from uint64) {
				p, err := c.prepare(till, from, limit)
				next <- prepResult{p, err}
			}(b.Last + 1)
		}
		ack, err := c.send(ctx, p)
		var gap *gapError
		var he *hqError
		switch {
		case errors.As(err, &gap):
			stalls++
			if stalls > maxRewinds {
				return 0, fmt.Errorf("sync client: till %s: HQ keeps asking for seq %d; check that HQ and this till agree on the store", till, gap.expected)
			}
			exp := max(gap.expected, 1)
			c.mu.Lock()
			c.st.Rewinds++
			if exp <= acked {
				c.rewind[till] = exp
			} else {
				delete(c.rewind, till)
			}
			c.mu.Unlock()
			c.log.Info("HQ reported a gap; rewinding", "till", till, "sent_from", b.First, "expected", exp)
			if exp > acked+1 {
				// HQ holds more than our mark says (a crash after HQ
				// committed). Those entries are ours and consecutive, so
				// HQ's mark is ours: mark what we hold up to it.
				if err := c.markAcked(till, acked, min(exp-1, b.Last)); err != nil {
					return 0, err
				}
			}
			continue
		case errors.As(err, &he) && he.status == http.StatusRequestEntityTooLarge && limit > 1:
			c.mu.Lock()
			c.limit[till] = limit / 2
			c.mu.Unlock()
			c.log.Info("HQ refused the batch as too large; halving", "till", till, "batch", limit/2)
			continue
		case err != nil:
			return 0, fmt.Errorf("sync client: upload till %s seq %d-%d: %w", till, b.First, b.Last, err)
		}
		c.succeeded(true)

		if len(ack.DeadLettered) > 0 {
			c.recordDeadLetters(ack.DeadLettered)
		}
		upTo := min(ack.Acked, b.Last)
		c.mu.Lock()
		c.st.Batches++
		if ack.Duplicate {
			c.st.Duplicates++
		}
		if ack.Acked < acked {
			// HQ is behind our mark (restored from a backup): send again
			// from what it holds. The mark itself never goes back.
			c.rewind[till] = ack.Acked + 1
		} else {
			delete(c.rewind, till)
		}
		c.mu.Unlock()
		if upTo > acked {
			if err := c.markAcked(till, acked, upTo); err != nil {
				return 0, err
			}
			stalls = 0
		} else if ack.Acked < b.First {
			// HQ took nothing of a well-formed batch.
			stalls++
			if stalls > maxRewinds {
				return 0, fmt.Errorf("sync client: till %s: HQ acknowledges only up to seq %d after %d uploads", till, ack.Acked, stalls)
			}
		}
	}
	return 0, ctx.Err()
}

func (c *Client) markAcked(till string, acked, upTo uint64) error {
	if upTo <= acked {
		return nil
	}
	if err := c.out.Ack(till, upTo); err != nil {
		return fmt.Errorf("sync client: mark till %s acknowledged up to %d: %w", till, upTo, err)
	}
	c.mu.Lock()
	c.st.Uploaded += int64(upTo - acked)
	c.st.Acked[till] = upTo
	c.mu.Unlock()
	return nil
}

// makeBatch checks that the outbox returned a consecutive run of one till
// of one store starting at from: anything else would make HQ see a gap or
// a foreign entry, so it is reported instead of sent.
func (c *Client) makeBatch(till string, from uint64, entries []entry.Entry) (wire.Batch, error) {
	if len(entries) == 0 {
		return wire.Batch{}, fmt.Errorf("sync client: outbox of till %s returned nothing after seq %d", till, from-1)
	}
	store := c.cfg.Store
	if store == "" {
		store = entries[0].Store
	}
	for i := range entries {
		e := &entries[i]
		if e.Seq != from+uint64(i) {
			return wire.Batch{}, fmt.Errorf("sync client: outbox of till %s is not consecutive: expected seq %d, found %d; run `posagent ledger verify`", till, from+uint64(i), e.Seq)
		}
		if e.Till != till || e.Store != store {
			return wire.Batch{}, fmt.Errorf("sync client: entry %s does not belong to store %s till %s; check the store id configured for this agent", e.ID(), store, till)
		}
	}
	return wire.Batch{Store: store, Till: till, First: from, Last: entries[len(entries)-1].Seq, Entries: entries}, nil
}

func (c *Client) recordDeadLetters(dl []wire.DeadLetter) {
	if r, ok := c.out.(DeadLetterRecorder); ok {
		if err := r.RecordDeadLetters(dl); err != nil {
			c.log.Error("could not record dead letters locally; they stay visible at HQ", "err", err)
		}
	}
	for _, d := range dl {
		c.log.Warn("HQ set an entry aside", "store", d.Store, "till", d.Till, "seq", d.Seq, "reason", d.Reason)
	}
	c.mu.Lock()
	c.st.DeadLetterCount += len(dl)
	c.st.DeadLetters = append(c.st.DeadLetters, dl...)
	if n := len(c.st.DeadLetters); n > keepDeadLetters {
		c.st.DeadLetters = append([]wire.DeadLetter(nil), c.st.DeadLetters[n-keepDeadLetters:]...)
	}
	c.mu.Unlock()
}

// prepared is a batch ready to send: checked, encoded and compressed.
type prepared struct {
	b    wire.Batch
	body []byte
}

type prepResult struct {
	p   *prepared
	err error
}

// prepare reads up to limit entries of till from seq from on; nil when
// there are none.
func (c *Client) prepare(till string, from uint64, limit int) (*prepared, error) {
	entries, err := c.out.Pending(till, from-1, limit)
	if err != nil {
		return nil, fmt.Errorf("sync client: read outbox of till %s: %w", till, err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	b, err := c.makeBatch(till, from, entries)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return nil, fmt.Errorf("sync client: encode batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("sync client: compress batch: %w", err)
	}
	return &prepared{b: b, body: buf.Bytes()}, nil
}

// send POSTs one prepared batch and reads the acknowledgement.
func (c *Client) send(ctx context.Context, p *prepared) (wire.Ack, error) {
	b := p.b
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+wire.PathBatches, bytes.NewReader(p.body))
	if err != nil {
		return wire.Ack{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	req.Header.Set(wire.HeaderIdempotencyKey, fmt.Sprintf("%s/%s/%d-%d", b.Store, b.Till, b.First, b.Last))
	resp, err := c.http.Do(req)
	if err != nil {
		return wire.Ack{}, err
	}
	defer drain(resp.Body)
	if resp.StatusCode/100 == 2 {
		var ack wire.Ack
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ack); err != nil {
			return wire.Ack{}, fmt.Errorf("read HQ acknowledgement: %w", err)
		}
		if ack.Till != "" && ack.Till != b.Till {
			return wire.Ack{}, fmt.Errorf("HQ acknowledged till %q for an upload of till %q", ack.Till, b.Till)
		}
		return ack, nil
	}
	he := readError(resp, c.now())
	if resp.StatusCode == http.StatusConflict && he.expected > 0 {
		return wire.Ack{}, &gapError{expected: he.expected}
	}
	return wire.Ack{}, he.hqError
}

type errWithExpected struct {
	*hqError
	expected uint64
}

// readError turns a non-2xx answer into an error, keeping HQ's own words
// and Retry-After.
func readError(resp *http.Response, now time.Time) errWithExpected {
	he := &hqError{status: resp.StatusCode}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
		he.retryAfter, he.hasRetryAfter = d, true
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	// The body is a wire.Error; a gap may also come as an Ack-shaped body,
	// so read "expected" from either.
	var body struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Expected uint64 `json:"expected"`
	}
	if json.Unmarshal(raw, &body) == nil {
		he.code, he.message = body.Code, body.Message
	} else {
		he.message = strings.TrimSpace(string(raw))
		if len(he.message) > 200 {
			he.message = he.message[:200]
		}
	}
	return errWithExpected{hqError: he, expected: body.Expected}
}

func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	_ = r.Close()
}
