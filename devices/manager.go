package devices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"posagent/devices/decode"
	"posagent/devices/evdev"
	"posagent/devices/frame"
	"posagent/devices/hiddev"
	"posagent/devices/serialdev"
	"posagent/devices/token"
)

// Option tunes a Manager (mostly for tests and the CLI).
type Option func(*options)

type options struct {
	enumSerial serialdev.Enumerator
	hid        hiddev.Backend
	hidErr     error
	minBackoff time.Duration
	maxBackoff time.Duration
	buffer     int
	pn532      PN532Timing
}

// WithSerialEnumerator replaces serial port enumeration (VID:PID matching).
func WithSerialEnumerator(e serialdev.Enumerator) Option {
	return func(o *options) { o.enumSerial = e }
}

// WithHIDBackend replaces the karalabe/hid backend (tests feed recorded reports).
func WithHIDBackend(b hiddev.Backend) Option {
	return func(o *options) { o.hid, o.hidErr = b, nil }
}

// WithBackoff bounds the reconnect delay: attempt n waits a uniformly
// random time in [0, min(max, min·2ⁿ)) ("full jitter"). Defaults 250ms, 5s.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// WithEventBuffer sets the Events channel capacity (default 256).
func WithEventBuffer(n int) Option { return func(o *options) { o.buffer = n } }

// Manager runs the configured devices and delivers their events.
type Manager struct {
	devs   []*device
	events chan Event
	log    *slog.Logger
	opts   options

	mu      sync.Mutex
	status  map[string]*DeviceStatus
	running bool
}

// NewManager validates cfgs (every error names the device) and prepares
// the devices; nothing is opened until Run. key is the token hash key.
func NewManager(cfgs []Config, key []byte, log *slog.Logger, opts ...Option) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("devices: token key has %d bytes, need at least 16 (the keyed hash must not be guessable)", len(key))
	}
	o := options{minBackoff: 250 * time.Millisecond, maxBackoff: 5 * time.Second, buffer: 256, enumSerial: serialdev.List}
	o.hid, o.hidErr = hiddev.System()
	for _, f := range opts {
		f(&o)
	}
	if o.minBackoff <= 0 || o.maxBackoff < o.minBackoff {
		return nil, fmt.Errorf("devices: backoff min %v max %v invalid", o.minBackoff, o.maxBackoff)
	}
	m := &Manager{events: make(chan Event, max(o.buffer, 1)), log: log, opts: o, status: map[string]*DeviceStatus{}}
	seen := map[string]bool{}
	for i, c := range cfgs {
		n, err := c.normalize()
		if err != nil {
			name := c.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i+1)
			}
			return nil, fmt.Errorf("devices: device %s: %w", name, err)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("devices: two devices are named %q: names must be unique", n.Name)
		}
		seen[n.Name] = true
		if changed8H10D(n) {
			log.Warn("this device's member tokens differ from posagent versions whose 8h10d was the first 4 UID bytes reversed: "+
				"8h10d is now the low 4 bytes as 10 digits, as reader manuals define 8H10D (0A00B1C2D3 → 0011649747); "+
				"cards enrolled through this device with the reversed number are found with 8h10d_rev in its place",
				"device", n.Name, "decoder", n.Decoder, "uid_format", n.Rule.UIDFormat)
		}
		dec, _ := decode.ByName(n.Decoder) // validated in normalize
		d := &device{m: m, cfg: n, decode: dec, key: key}
		m.devs = append(m.devs, d)
		m.status[n.Name] = &DeviceStatus{Name: n.Name, Till: n.Till, Transport: n.Transport, Path: n.Path, State: StateClosed}
	}
	return m, nil
}

// changed8H10D reports a device whose tokens changed when 8h10d took the
// reader-manual meaning (the low 4 bytes; the first 4 bytes reversed is
// now 8h10d_rev): a rule formatting card bytes as 8h10d that a uid:8h10d
// wedge did not parse, or a uid:8h10d wedge whose UID bytes a rule of the
// other formats of that time formats. A wedge typing 8h10d under an 8h10d
// rule gives the typed number, then as now.
func changed8H10D(c Config) bool {
	if c.Rule.Source != token.SourceUID {
		return false
	}
	rule := strings.ToLower(c.Rule.UIDFormat)
	wedge := strings.EqualFold(strings.TrimSpace(c.Decoder), "uid:"+decode.UID8H10D)
	if rule == decode.UID8H10D {
		return !wedge
	}
	switch rule {
	case "", decode.UIDHex, decode.UIDHexRev, decode.UIDDec10, decode.UIDW26:
		return wedge
	}
	return false
}

// Events delivers every device's events. It is closed when Run returns.
func (m *Manager) Events() <-chan Event { return m.events }

// Status returns a snapshot of every device, in config order.
func (m *Manager) Status() []DeviceStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]DeviceStatus, 0, len(m.devs))
	for _, d := range m.devs {
		out = append(out, *m.status[d.cfg.Name])
	}
	return out
}

// Run opens every device, keeps reopening unplugged ones with backoff and
// returns (nil) when ctx is done, after every goroutine has ended.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("devices: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.events)
	if m.opts.hidErr != nil {
		for _, d := range m.devs {
			if d.cfg.Transport == TransportHID {
				// Said once, loudly, at start-up: not a silent no-op.
				m.log.Error("HID support not compiled in; HID devices stay offline", "err", m.opts.hidErr)
				break
			}
		}
	}
	var wg sync.WaitGroup
	for _, d := range m.devs {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
	return nil
}

func (m *Manager) emit(ctx context.Context, e Event) bool {
	select {
	case m.events <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Manager) setState(name, state, path, detail string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status[name]
	if s.State != state {
		s.Since = at
	}
	s.State, s.Online, s.Detail = state, state == StateEnabled, detail
	if path != "" {
		s.Path = path
	}
}

func (m *Manager) count(name string, read bool, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.status[name]
	if read {
		s.Reads++
		s.LastRead = at
	} else {
		s.Errors++
	}
}

// backoff is full jitter over an exponentially growing, bounded window.
func (o *options) backoff(attempt int) time.Duration {
	w := o.maxBackoff
	if attempt < 30 {
		w = min(o.maxBackoff, o.minBackoff<<attempt)
	}
	return rand.N(w) + time.Millisecond
}

// chunk is bytes from a transport; framed chunks are complete reads. A
// chunk with status carries no data: the open device's state changed
// (a PN532 stopped or resumed answering) without the port closing.
type chunk struct {
	data      []byte
	at        time.Time
	framed    bool
	symbology string
	status    *Status
}

// source is an open, claimed device.
type source interface {
	next() (chunk, error)
	Close() error
}

// reportError marks a bad report or event that does not end the stream.
type reportError struct{ err error }

func (e reportError) Error() string { return e.err.Error() }

type device struct {
	m      *Manager
	cfg    Config
	decode func([]byte) (decode.Read, error)
	key    []byte

	lastHash string
	lastAt   time.Time
	// reported is the state of the last status event: a state is
	// announced once when entered (an unplug is one offline event, not one
	// more per failed reopen); a new detail in the same state only updates
	// Status(). Used by the device's own goroutine only.
	reported string
}

func (d *device) event(kind string, at time.Time) Event {
	return Event{Device: d.cfg.Name, Till: d.cfg.Till, At: at, Kind: kind}
}

func (d *device) status(ctx context.Context, state, path, detail string) {
	now := time.Now()
	d.m.setState(d.cfg.Name, state, path, detail, now)
	if state == d.reported {
		return
	}
	d.reported = state
	e := d.event(KindStatus, now)
	e.Status = &Status{Online: state == StateEnabled, State: state, Detail: detail}
	d.m.emit(ctx, e)
}

func (d *device) run(ctx context.Context) {
	log := d.m.log.With("device", d.cfg.Name, "till", d.cfg.Till)
	attempt := 0
	lastFail := ""
	for ctx.Err() == nil {
		src, path, err := d.open()
		if err != nil {
			if permanent(err) {
				log.Error("device unavailable", "err", err)
				d.status(ctx, StateUnsupported, "", err.Error())
				return
			}
			state := StateOffline
			if errors.Is(err, serialdev.ErrBusy) || errors.Is(err, evdev.ErrBusy) || errors.Is(err, hiddev.ErrBusy) {
				state = StateClaimed
			}
			// Log a failure once, not on every retry; status publishes an
			// event only when the state changes.
			if msg := state + err.Error(); msg != lastFail {
				lastFail = msg
				log.Warn("device not available, retrying", "state", state, "err", err)
				d.status(ctx, state, "", err.Error())
			}
			if !sleep(ctx, d.m.opts.backoff(attempt)) {
				break
			}
			attempt++
			continue
		}
		attempt, lastFail = 0, ""
		log.Info("device online", "path", path)
		d.status(ctx, StateEnabled, path, "opened, claimed and enabled: "+path)
		err = d.read(ctx, src)
		if ctx.Err() != nil {
			break
		}
		log.Warn("device offline", "path", path, "err", err)
		d.status(ctx, StateOffline, path, fmt.Sprintf("disconnected (%v); reconnecting", err))
		if !sleep(ctx, d.m.opts.backoff(0)) {
			break
		}
		attempt = 1
	}
	d.m.setState(d.cfg.Name, StateReleased, "", "released at shutdown", time.Now())
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// read pumps src until it fails or ctx ends. The source is closed on return.
func (d *device) read(ctx context.Context, src source) error {
	fr, err := frame.New(d.cfg.Framer)
	if err != nil {
		src.Close()
		return err
	}
	type item struct {
		c   chunk
		err error
	}
	ch := make(chan item, 16)
	done := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			c, err := src.next()
			var re reportError
			if errors.As(err, &re) {
				select {
				case ch <- item{err: err}:
					continue
				case <-done:
					return
				}
			}
			select {
			case ch <- item{c: c, err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(done)
		src.Close() // unblocks the reader goroutine
		for range ch {
		}
	}()

	gap := d.cfg.Framer.Gap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-timer.C:
			for _, f := range fr.Flush(now) {
				d.frame(ctx, f, chunk{at: now}, first)
				first = time.Time{}
			}
			d.framingErrors(ctx, fr, now)
		case it, ok := <-ch:
			if !ok {
				return errors.New("reader stopped")
			}
			if it.err != nil {
				var re reportError
				if errors.As(it.err, &re) {
					d.fail(ctx, time.Now(), "report", re.err.Error(), "scan or swipe again; if it repeats, check the reader's mode")
					continue
				}
				// Unplugged mid-read: whatever was partly received is dropped.
				fr.Reset()
				fr.Errors()
				return it.err
			}
			c := it.c
			if c.status != nil {
				d.m.log.Info("device state", "device", d.cfg.Name, "state", c.status.State, "detail", c.status.Detail)
				d.status(ctx, c.status.State, "", c.status.Detail)
				continue
			}
			if c.framed {
				d.frame(ctx, c.data, c, c.at)
				continue
			}
			if first.IsZero() {
				first = c.at
			}
			frames := fr.Push(c.data, c.at)
			for _, f := range frames {
				d.frame(ctx, f, c, first)
				first = time.Time{}
			}
			d.framingErrors(ctx, fr, c.at)
			if gap > 0 {
				timer.Reset(gap + time.Millisecond)
			}
		}
	}
}

func (d *device) framingErrors(ctx context.Context, fr frame.Framer, at time.Time) {
	for _, err := range fr.Errors() {
		code, hint := "framing", "swipe or scan again"
		if errors.Is(err, frame.ErrTooLong) {
			code, hint = "too_long", "scan again; if it repeats, check the reader's terminator setting"
		}
		d.fail(ctx, at, code, err.Error(), hint)
	}
}

func (d *device) fail(ctx context.Context, at time.Time, code, msg, hint string) {
	d.failZH(ctx, at, code, msg, hint, "")
}

// failZH is fail with the hint in Chinese too (the card rule's errors).
func (d *device) failZH(ctx context.Context, at time.Time, code, msg, hint, hintZH string) {
	d.m.count(d.cfg.Name, false, at)
	d.m.log.Info("read failed", "device", d.cfg.Name, "code", code, "err", msg)
	e := d.event(KindError, at)
	e.Error = &Error{Code: code, Message: msg, Hint: hint, HintZH: hintZH}
	d.m.emit(ctx, e)
}

var defaultHints = map[string]string{
	"checksum": "swipe or tap again",
	"bad_read": "swipe again, steadily",
	"format":   "swipe or scan again; if it repeats, this card or code is not supported",
	"nack":     "tap again",
	"rule":     "this card is not a member card",
}

// frame decodes one complete read and emits a data or error event.
func (d *device) frame(ctx context.Context, f []byte, c chunk, first time.Time) {
	at := c.at
	rd, err := d.decode(f)
	if err == nil {
		// Before the card rule: a payment code must never be hashed,
		// looked up or reported as a card that no member holds.
		if pc, ok := decode.PayCodeOf(rd); ok {
			d.payment(ctx, rd, pc, c)
			return
		}
		// A member code is verified by the agent, not taken as a card.
		if mc, ok := decode.MemberCodeOf(rd); ok {
			d.memberCode(ctx, rd, mc, c)
			return
		}
		var tok string
		if tok, err = d.cfg.Rule.Token(rd); err == nil {
			d.deliver(ctx, rd, tok, len(f), c, first)
			return
		}
	}
	if errors.Is(err, decode.ErrNoData) {
		return // ACKs, empty lines: nothing was read
	}
	var de *decode.Error
	if errors.As(err, &de) {
		hint := de.Hint
		if hint == "" {
			hint = defaultHints[de.Code]
		}
		d.failZH(ctx, at, de.Code, de.Message, hint, de.HintZH)
		return
	}
	d.fail(ctx, at, "format", err.Error(), defaultHints["format"])
}

func (d *device) deliver(ctx context.Context, rd decode.Read, tok string, rawLen int, c chunk, first time.Time) {
	hash := tokenHash(d.key, tok)
	if d.cfg.Debounce > 0 && hash == d.lastHash && c.at.Sub(d.lastAt) < d.cfg.Debounce {
		// The window slides: a card lying on an RFID reader stays one read.
		d.lastAt = c.at
		return
	}
	d.lastHash, d.lastAt = hash, c.at
	d.m.count(d.cfg.Name, true, c.at)
	data := &Data{Kind: rd.Kind, Symbology: rd.Symbology, TokenHash: hash, Masked: decode.Mask(tok), RawLen: rawLen}
	if data.Symbology == "" {
		data.Symbology = c.symbology
	}
	if !first.IsZero() && c.at.After(first) {
		data.Duration = c.at.Sub(first)
	}
	for _, t := range rd.Tracks {
		t.Data = decode.Mask(t.Data)
		data.Tracks = append(data.Tracks, t)
	}
	d.m.log.Debug("read", "device", d.cfg.Name, "kind", rd.Kind, "token", data.Masked)
	e := d.event(KindData, c.at)
	e.Data = data
	d.m.emit(ctx, e)
}

// payment hands a payment code on (or, with payment_codes: drop, only the
// fact that one was read). Logs carry the scheme, never the digits.
func (d *device) payment(ctx context.Context, rd decode.Read, pc decode.PayCode, c chunk) {
	// The same phone held under a presentation scanner is read again and
	// again; the debounce key is keyed like a card token and kept in
	// memory only.
	hash := tokenHash(d.key, "payment:"+pc.Reveal())
	if d.cfg.Debounce > 0 && hash == d.lastHash && c.at.Sub(d.lastAt) < d.cfg.Debounce {
		d.lastAt = c.at
		return
	}
	d.lastHash, d.lastAt = hash, c.at
	d.m.count(d.cfg.Name, true, c.at)
	p := &Payment{Scheme: pc.Scheme(), Code: pc, Symbology: rd.Symbology}
	if p.Symbology == "" {
		p.Symbology = c.symbology
	}
	if d.cfg.PaymentCodes == PaymentCodesDrop {
		p.Code, p.Dropped = decode.PayCode{}, true
	}
	d.m.log.Debug("payment code read", "device", d.cfg.Name, "scheme", string(p.Scheme), "dropped", p.Dropped)
	e := d.event(KindPayment, c.at)
	e.Payment = p
	d.m.emit(ctx, e)
}

// memberCode hands a scanned member code on for verification. A phone held
// under a presentation scanner is read again and again: the same code is
// debounced like a card.
func (d *device) memberCode(ctx context.Context, rd decode.Read, mc decode.MemberCode, c chunk) {
	hash := tokenHash(d.key, "membercode:"+strings.ToUpper(mc.Text()))
	if d.cfg.Debounce > 0 && hash == d.lastHash && c.at.Sub(d.lastAt) < d.cfg.Debounce {
		d.lastAt = c.at
		return
	}
	d.lastHash, d.lastAt = hash, c.at
	d.m.count(d.cfg.Name, true, c.at)
	m := &MemberCode{Code: mc, Symbology: rd.Symbology}
	if m.Symbology == "" {
		m.Symbology = c.symbology
	}
	d.m.log.Debug("member code read", "device", d.cfg.Name)
	e := d.event(KindMemberCode, c.at)
	e.MemberCode = m
	d.m.emit(ctx, e)
}
