// Package client is the store side of store↔HQ sync: it uploads each till's
// outbox to HQ in compressed batches and pulls members and program versions
// back.
//
// Exactly once: every entry is identified by (store, till, seq) and a till's
// sequence is gapless. The client only ever sends a consecutive run starting
// right after the till's acknowledged mark, and moves the mark only to what
// HQ says it holds with no gap. HQ deduplicates by (store, till, seq), so a
// batch sent twice (a retry after a cut, a restart before the mark moved) is
// stored once and answered with the same acknowledgement. The only state is
// the outbox's acknowledged mark and the inbox's cursor, both durable, so a
// crash at any point resumes where it left.
//
// The client never blocks a sale: it runs in its own goroutine and reads the
// outbox; Nudge tells it there is something new without waiting.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// Outbox is the till ledger as the client sees it. Pending returns the
// entries of till with a sequence above after, in order, at most limit.
// Ack marks everything up to upTo as held by HQ; it must be durable before
// it returns and must ignore a mark lower than the current one.
type Outbox interface {
	Tills() ([]string, error)
	Pending(till string, after uint64, limit int) ([]entry.Entry, error)
	Acked(till string) (uint64, error)
	Ack(till string, upTo uint64) error
}

// Inbox takes what HQ sends back. Applying the same states or program twice
// must be harmless: the cursor is stored after applying, so a crash in
// between repeats the page.
type Inbox interface {
	ApplyMemberStates(states []wire.MemberState) error
	ApplyProgram(src []byte) error
	SyncCursor() (string, error)
	SetSyncCursor(cursor string) error
}

// Backlogger is optionally implemented by an Outbox to report how much
// waits for upload (shown in Status).
type Backlogger interface {
	Backlog() (count int, oldest time.Time, err error)
}

// DeadLetterRecorder is optionally implemented by an Outbox to keep the
// entries HQ set aside durably. It is called before the acknowledgement is
// marked, so it must accept the same dead letter twice.
type DeadLetterRecorder interface {
	RecordDeadLetters(dl []wire.DeadLetter) error
}

// Status is a snapshot of the client for health pages and the CLI.
type Status struct {
	Running     bool      `json:"running"`
	LastSuccess time.Time `json:"last_success,omitzero"` // last exchange with HQ that worked
	LastUpload  time.Time `json:"last_upload,omitzero"`  // last batch acknowledged
	LastPull    time.Time `json:"last_pull,omitzero"`    // last pull completed
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Failures counts consecutive failed rounds; NextAttempt is when the
	// next one is due while backing off.
	Failures    int       `json:"failures"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Backlog is the number of entries not yet acknowledged, -1 when the
	// outbox cannot tell; OldestPending is the time of the oldest of them.
	Backlog       int               `json:"backlog"`
	OldestPending time.Time         `json:"oldest_pending,omitzero"`
	Acked         map[string]uint64 `json:"acked"` // per till
	Uploaded      int64             `json:"uploaded"`
	Batches       int64             `json:"batches"`
	Duplicates    int64             `json:"duplicates"`
	Rewinds       int64             `json:"rewinds"`
	// DeadLetters are the most recent entries HQ set aside (up to 100);
	// DeadLetterCount counts all seen since start.
	DeadLetters     []wire.DeadLetter `json:"dead_letters,omitempty"`
	DeadLetterCount int               `json:"dead_letter_count"`
	MembersApplied  int64             `json:"members_applied"`
	ProgramsApplied int64             `json:"programs_applied"`
}

const keepDeadLetters = 100

// Client uploads and pulls. One per store process.
type Client struct {
	cfg  Config
	out  Outbox
	in   Inbox
	log  *slog.Logger
	http *http.Client
	now  func() time.Time
	rnd  func(int64) int64

	sem     chan struct{} // one round at a time
	nudge   chan struct{}
	running atomic.Bool

	mu        sync.Mutex
	st        Status
	rewind    map[string]uint64 // till → first seq to send when HQ is behind our mark
	limit     map[string]int    // till → batch size after HQ said "too large"
	notBefore time.Time
	lastPull  time.Time
	mcKeys    []wire.MemberCodeKey // member-code keys last applied
	// lookupDownUntil: a member look-up could not reach HQ; Offline until
	// then, or until an upload or pull works.
	lookupDownUntil time.Time
}

// New checks the config and builds a client. in may be nil for an
// upload-only client; log may be nil.
func New(c Config, out Outbox, in Inbox, log *slog.Logger) (*Client, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("sync client: an outbox is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       cfg.TLS,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   cfg.Parallel + 1,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: cfg.RequestTimeout,
			ForceAttemptHTTP2:     true,
		}
		hc = &http.Client{Transport: tr}
	}
	cl := &Client{
		cfg: cfg, out: out, in: in, log: log, http: hc,
		now: time.Now, rnd: defaultRand,
		sem:    make(chan struct{}, 1),
		nudge:  make(chan struct{}, 1),
		rewind: map[string]uint64{},
		limit:  map[string]int{},
	}
	cl.st.Acked = map[string]uint64{}
	cl.st.Backlog = -1
	return cl, nil
}

// Run syncs until ctx is done, then returns nil. Errors talking to HQ never
// end it; they show in Status and make it back off.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("sync client: Run is already running")
	}
	defer c.running.Store(false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-c.nudge:
			timer.Stop()
		}
		wait := c.cfg.Poll
		if err := c.acquire(ctx); err != nil {
			return nil
		}
		w, _ := c.round(ctx, false)
		c.release()
		if w > 0 && w < wait {
			wait = w
		}
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(wait)
	}
}

// Nudge tells a running client there is something new to send. It never
// blocks; the batch limits still decide when it goes.
func (c *Client) Nudge() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// SyncNow uploads everything pending regardless of batch age or backoff,
// then pulls HQ's changes, and returns the first error. It waits for a
// round already in progress.
func (c *Client) SyncNow(ctx context.Context) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	_, err := c.round(ctx, true)
	return err
}

// Status returns a snapshot.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Running = c.running.Load()
	s.Acked = make(map[string]uint64, len(c.st.Acked))
	for k, v := range c.st.Acked {
		s.Acked[k] = v
	}
	s.DeadLetters = append([]wire.DeadLetter(nil), c.st.DeadLetters...)
	return s
}

func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() { <-c.sem }

// round uploads what is due and pulls when due. It returns how soon the
// next round is wanted (0: the regular poll) and the error of this round.
func (c *Client) round(ctx context.Context, force bool) (time.Duration, error) {
	now := c.now()
	c.mu.Lock()
	nb := c.notBefore
	pullDue := force || c.in != nil && now.Sub(c.lastPull) >= c.cfg.PullEvery
	c.mu.Unlock()
	if !force && now.Before(nb) {
		return nb.Sub(now), nil
	}

	wait, err := c.uploadAll(ctx, force)
	if err == nil {
		err = c.uploadClaims(ctx)
	}
	if err == nil && pullDue && c.in != nil {
		if err = c.pull(ctx); err == nil {
			c.mu.Lock()
			c.lastPull = now
			c.mu.Unlock()
		}
	}
	c.refreshBacklog()
	if ctx.Err() != nil {
		// Shutting down: a cancelled request is not HQ's fault.
		return 0, ctx.Err()
	}
	if err != nil {
		return c.failed(err), err
	}
	c.mu.Lock()
	c.st.Failures = 0
	c.st.NextAttempt = time.Time{}
	c.notBefore = time.Time{}
	c.mu.Unlock()
	return wait, nil
}

// failed records err and schedules the next attempt: HQ's Retry-After when
// it gave one, full-jitter backoff otherwise.
func (c *Client) failed(err error) time.Duration {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Failures++
	c.st.LastError = err.Error()
	c.st.LastErrorAt = now
	wait := fullJitter(c.st.Failures, c.cfg.BackoffBase, c.cfg.BackoffMax, c.rnd)
	var he *hqError
	if errors.As(err, &he) && he.hasRetryAfter {
		wait = he.retryAfter
		if wait > c.cfg.MaxRetryAfter {
			wait = c.cfg.MaxRetryAfter
		}
	}
	if wait <= 0 {
		wait = time.Millisecond
	}
	c.notBefore = now.Add(wait)
	c.st.NextAttempt = c.notBefore
	c.log.Warn("sync with HQ failed", "err", err, "failures", c.st.Failures, "retry_in", wait.Round(time.Millisecond))
	return wait
}

func (c *Client) succeeded(upload bool) {
	now := c.now()
	c.mu.Lock()
	c.st.LastSuccess = now
	c.lookupDownUntil = time.Time{}
	if upload {
		c.st.LastUpload = now
	} else {
		c.st.LastPull = now
	}
	c.mu.Unlock()
}

func (c *Client) refreshBacklog() {
	tills, err := c.out.Tills()
	if err != nil {
		return
	}
	acked := make(map[string]uint64, len(tills))
	for _, t := range tills {
		if a, err := c.out.Acked(t); err == nil {
			acked[t] = a
		}
	}
	count, oldest := -1, time.Time{}
	if b, ok := c.out.(Backlogger); ok {
		if n, o, err := b.Backlog(); err == nil {
			count, oldest = n, o
		}
	}
	c.mu.Lock()
	c.st.Acked = acked
	c.st.Backlog = count
	c.st.OldestPending = oldest
	c.mu.Unlock()
}

// uploadAll runs the tills' uploads, Parallel at a time. It returns the
// shortest wait any till asked for (a young small batch) and the first
// error, preferring one that carries Retry-After.
func (c *Client) uploadAll(ctx context.Context, force bool) (time.Duration, error) {
	tills, err := c.out.Tills()
	if err != nil {
		return 0, fmt.Errorf("sync client: list tills of the outbox: %w", err)
	}
	sort.Strings(tills)
	var (
		mu    sync.Mutex
		wait  time.Duration
		first error
		wg    sync.WaitGroup
		slots = make(chan struct{}, c.cfg.Parallel)
	)
	for _, till := range tills {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return 0, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			w, err := c.uploadTill(ctx, till, force)
			mu.Lock()
			defer mu.Unlock()
			if w > 0 && (wait == 0 || w < wait) {
				wait = w
			}
			var he *hqError
			if err != nil && (first == nil || errors.As(err, &he) && he.hasRetryAfter) {
				first = err
			}
		}()
	}
	wg.Wait()
	return wait, first
}
