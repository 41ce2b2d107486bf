package hq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"posagent/sync/hq/gateway"
)

// SenderConfig configures delivery to the chain's gateway.
type SenderConfig struct {
	URL    string // the gateway's endpoint; POST, JSON body (gateway.Message)
	Secret []byte // HMAC key shared with the gateway
	// Timeout bounds one POST [10s].
	Timeout time.Duration
	// Rate is the most messages per second this process posts [10];
	// Burst how many may go at once after a pause [1].
	Rate  float64
	Burst int
	// Batch is how many messages one claim takes [10].
	Batch int
	// MaxAttempts: after this many failed tries a message is dead [8].
	MaxAttempts int
	// Backoff before the second try, doubling to BackoffMax [5s, 1h].
	Backoff, BackoffMax time.Duration
	// Poll is how long an idle sender waits before looking again [2s].
	Poll time.Duration
	// Quiet holds messages back in the member's store's local hours.
	Quiet QuietHours
	// ChainZone is the zone of stores without one of their own [Asia/Shanghai].
	ChainZone *time.Location
	// Now is the clock [time.Now]; leases, quiet hours and backoff use it.
	Now    func() time.Time
	Client *http.Client // [one with Timeout]
	Log    *slog.Logger
}

// Sender posts the outbox's due messages to the gateway. Any number of
// senders (in one or many HQ processes) may share a store: a claim leases
// each message to one of them.
type Sender struct {
	ob    Outbox
	creds interface {
		Credentials(ctx context.Context) ([]Credential, error)
	}
	c     SenderConfig
	lease time.Duration
	lim   *limiter

	mu       sync.Mutex
	zones    map[string]*time.Location
	zonesAt  time.Time
	zoneFail time.Time
}

// NewSender checks c and makes a sender over st, which must keep an outbox.
func NewSender(st Store, c SenderConfig) (*Sender, error) {
	ob, ok := st.(Outbox)
	if !ok {
		return nil, ErrNoOutbox
	}
	if c.URL == "" || !(strings.HasPrefix(c.URL, "http://") || strings.HasPrefix(c.URL, "https://")) {
		return nil, fmt.Errorf("hq: gateway URL %q must start with http:// or https://", c.URL)
	}
	if len(c.Secret) < 16 {
		return nil, errors.New("hq: the gateway secret must be at least 16 bytes (e.g. openssl rand -hex 32)")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 10*time.Second)
	def(&c.Backoff, 5*time.Second)
	def(&c.BackoffMax, time.Hour)
	def(&c.Poll, 2*time.Second)
	if c.Rate <= 0 {
		c.Rate = 10
	}
	c.Burst = max(c.Burst, 1)
	if c.Batch <= 0 {
		c.Batch = 10
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.ChainZone == nil {
		loc, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			loc = time.FixedZone("UTC+8", 8*3600)
		}
		c.ChainZone = loc
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	// A lease outlasts a whole batch at the rate limit with every POST
	// timing out, so a live sender never loses a message it is posting.
	perMsg := c.Timeout + time.Duration(float64(time.Second)/c.Rate)
	lease := time.Duration(c.Batch)*perMsg + c.Timeout
	return &Sender{ob: ob, creds: st, c: c, lease: lease, lim: newLimiter(c.Rate, c.Burst, time.Now)}, nil
}

// Lease is how long a claim holds its messages.
func (s *Sender) Lease() time.Duration { return s.lease }

// Run sends until ctx ends. Messages claimed and not yet posted when it
// ends are handed back at once rather than waiting for their lease.
func (s *Sender) Run(ctx context.Context) error {
	for {
		n, err := s.Round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.c.Log.Warn("message outbox: claim failed; trying again", "err", err)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.c.Poll):
		}
	}
}

// Round claims one batch and delivers it; it returns how many it claimed.
func (s *Sender) Round(ctx context.Context) (int, error) {
	cl, err := s.ob.ClaimMessages(ctx, s.c.Now(), s.lease, s.c.Batch)
	if err != nil {
		return 0, err
	}
	for i, c := range cl {
		if ctx.Err() != nil {
			s.release(cl[i:])
			break
		}
		s.deliver(ctx, c)
	}
	return len(cl), nil
}

// release hands claimed messages back, due now, without an attempt.
func (s *Sender) release(cl []Claimed) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range cl {
		_ = s.ob.DeferMessage(ctx, c, s.c.Now())
	}
}

// deliver takes one claimed message to its end for this attempt: sent,
// deferred, suppressed, failed or dead. Store errors are logged: the lease
// then runs out and the message goes again.
func (s *Sender) deliver(ctx context.Context, c Claimed) {
	log := s.c.Log.With("message", c.ID, "member", c.Member, "attempt", c.Attempts)
	settle := func(what string, err error) {
		if err != nil && ctx.Err() == nil {
			log.Warn("message outbox: "+what, "err", err)
		}
	}
	cons, err := s.ob.Consent(ctx, c.Member)
	if err != nil {
		settle("reading consent", err)
		s.release([]Claimed{c})
		return
	}
	if !cons.Allows() {
		reason := "no consent"
		if cons.Status != "" {
			reason = cons.Status
		}
		settle("suppressing", s.ob.SuppressMessage(ctx, c, s.c.Now(), reason))
		return
	}
	now := s.c.Now()
	if until, quiet := s.c.Quiet.Until(now, s.zone(ctx, c.Store)); quiet {
		settle("deferring to the end of quiet hours", s.ob.DeferMessage(ctx, c, until))
		return
	}
	if err := s.lim.wait(ctx); err != nil {
		s.release([]Claimed{c})
		return
	}
	// The lease must outlast the POST: otherwise another sender may post
	// it at the same time.
	if now := s.c.Now(); !now.Add(s.c.Timeout).Before(c.Until) {
		s.release([]Claimed{c})
		return
	}
	retryAfter, err := s.post(ctx, c)
	now = s.c.Now()
	if err == nil {
		settle("recording delivery", s.ob.AckMessage(ctx, c, now))
		return
	}
	if ctx.Err() != nil { // shutting down: the answer is unknown, so it goes again
		s.release([]Claimed{c})
		return
	}
	var perm *permanentError
	if errors.As(err, &perm) || c.Attempts >= s.c.MaxAttempts {
		log.Warn("message outbox: dead letter", "err", err)
		settle("recording dead letter", s.ob.FailMessage(ctx, c, now, err.Error(), time.Time{}))
		return
	}
	wait := max(Backoff(c.Attempts, s.c.Backoff, s.c.BackoffMax, rand.Float64()), retryAfter)
	log.Info("message outbox: retrying later", "err", err, "in", wait.Round(time.Millisecond))
	settle("recording failure", s.ob.FailMessage(ctx, c, now, err.Error(), now.Add(wait)))
}

// permanentError is a refusal that retrying will not change (4xx).
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// post sends c; a nil error means the gateway took it (2xx, or 409: it has
// the id already). retryAfter is the gateway's Retry-After, if any.
func (s *Sender) post(ctx context.Context, c Claimed) (retryAfter time.Duration, err error) {
	body, err := json.Marshal(gateway.Message{ID: c.ID, Kind: string(c.Kind), Member: c.Member, Store: c.Store,
		To: c.To, Lang: c.Lang, Text: c.Text, CreatedAt: c.CreatedAt, Attempt: c.Attempts})
	if err != nil {
		return 0, &permanentError{err.Error()}
	}
	rctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &permanentError{err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(gateway.HeaderIdempotency, c.ID)
	gateway.SetHeaders(req.Header, s.c.Secret, s.c.Now(), body)
	resp, err := s.c.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("gateway: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	switch code := resp.StatusCode; {
	case code/100 == 2, code == http.StatusConflict:
		return 0, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code/100 == 5:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			retryAfter = min(time.Duration(secs)*time.Second, s.c.BackoffMax)
		}
		return retryAfter, fmt.Errorf("gateway answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	default:
		return 0, &permanentError{fmt.Sprintf("gateway refused it: %s: %s", resp.Status, strings.TrimSpace(string(msg)))}
	}
}

// zone is the store's time zone from its credential, or the chain's. The
// credentials are read at most once a minute.
func (s *Sender) zone(ctx context.Context, store string) *time.Location {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.zones == nil || now.Sub(s.zonesAt) > time.Minute {
		if cs, err := s.creds.Credentials(ctx); err == nil {
			z := map[string]*time.Location{}
			for _, c := range cs {
				if c.Role != RoleStore || c.TimeZone == "" {
					continue
				}
				if l, err := time.LoadLocation(c.TimeZone); err == nil {
					z[c.ID] = l
				}
			}
			s.zones, s.zonesAt = z, now
		} else if now.Sub(s.zoneFail) > time.Minute {
			s.zoneFail = now
			s.c.Log.Warn("message outbox: reading store zones failed; using the chain's", "err", err)
		}
	}
	if l := s.zones[store]; l != nil {
		return l
	}
	return s.c.ChainZone
}

// Backoff is the wait after the attempt-th failure: base doubled per
// attempt up to most, of which the upper half is drawn at random (u in
// [0,1)) so senders that failed together do not retry together.
func Backoff(attempt int, base, most time.Duration, u float64) time.Duration {
	d := base
	for i := 1; i < attempt && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(u*float64(d/2))
}

// QuietHours is a daily window, local to the member's store, in which no
// message goes out. From == To means none.
type QuietHours struct {
	From, To int // minutes after midnight
}

// ParseQuietHours reads "21:00-09:00" (a window may run over midnight);
// "" or "off" means none.
func ParseQuietHours(s string) (QuietHours, error) {
	if s == "" || s == "off" {
		return QuietHours{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return QuietHours{}, fmt.Errorf("quiet hours %q: want FROM-TO as HH:MM-HH:MM, e.g. 21:00-09:00", s)
	}
	from, err := parseHHMM(a)
	if err != nil {
		return QuietHours{}, fmt.Errorf("quiet hours %q: %w", s, err)
	}
	to, err := parseHHMM(b)
	if err != nil {
		return QuietHours{}, fmt.Errorf("quiet hours %q: %w", s, err)
	}
	return QuietHours{From: from, To: to}, nil
}

func parseHHMM(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func (q QuietHours) String() string {
	if q.From == q.To {
		return "off"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", q.From/60, q.From%60, q.To/60, q.To%60)
}

// Until reports whether t falls in quiet hours in loc, and when they end.
func (q QuietHours) Until(t time.Time, loc *time.Location) (time.Time, bool) {
	if q.From == q.To {
		return time.Time{}, false
	}
	l := t.In(loc)
	m := l.Hour()*60 + l.Minute()
	var quiet bool
	if q.From < q.To {
		quiet = m >= q.From && m < q.To
	} else {
		quiet = m >= q.From || m < q.To
	}
	if !quiet {
		return time.Time{}, false
	}
	end := time.Date(l.Year(), l.Month(), l.Day(), q.To/60, q.To%60, 0, 0, loc)
	if !end.After(l) {
		end = time.Date(l.Year(), l.Month(), l.Day()+1, q.To/60, q.To%60, 0, 0, loc)
	}
	return end, true
}

// limiter is a token bucket: rate tokens a second, up to burst. It runs
// on the wall clock: the limit is the gateway's, in real seconds.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), tokens: float64(burst), now: now}
}

// wait takes a token, sleeping until one is there.
func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		now := l.now()
		if !l.last.IsZero() {
			l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		}
		l.last = now
		if l.tokens >= 1 {
			l.tokens--
			l.mu.Unlock()
			return nil
		}
		need := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(need):
		}
	}
}
