// Package frame cuts a reader's byte stream into frames (one read each).
//
// Pure code: no I/O, no goroutines, no clock. The caller passes the arrival
// time of every chunk so idle-gap framing and stale-partial discarding are
// deterministic and replayable from recordings.
package frame

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Framer turns chunks of bytes into complete frames.
//
// Push returns the frames completed by p (each a fresh slice the caller may
// keep). Flush returns a frame that is complete because nothing arrived for
// the configured gap (idle-gap framing) and discards stale partial frames;
// call it from a timer. Reset drops any partial frame (e.g. after an unplug,
// so a cut-off read is never half-delivered). Errors returns, and clears, the
// framing problems seen since the last call (overlong frames, partial frames
// discarded); each wraps ErrTooLong or ErrIncomplete.
type Framer interface {
	Push(p []byte, at time.Time) [][]byte
	Flush(now time.Time) [][]byte
	Reset()
	Errors() []error
}

// Config selects and tunes a framer.
type Config struct {
	// Kind is "terminator", "stx_etx", "idle_gap", "fixed" or "pn532".
	Kind string `yaml:"kind" json:"kind"`
	// Terminator for Kind "terminator": "CR", "LF" or "CRLF".
	Terminator string `yaml:"terminator" json:"terminator"`
	// Gap: for "idle_gap" the silence that ends a frame; for the other kinds,
	// when > 0, a partial frame older than Gap is discarded (a read cut off
	// mid-frame must not merge with the next one).
	Gap time.Duration `yaml:"gap" json:"gap"`
	// Length of every frame for Kind "fixed".
	Length int `yaml:"length" json:"length"`
	// MaxFrame bounds a frame's size; longer input is discarded and reported
	// through Errors. 0 means DefaultMaxFrame.
	MaxFrame int `yaml:"max_frame" json:"max_frame"`
}

// DefaultMaxFrame is the frame size bound when Config.MaxFrame is 0. A full
// three-track swipe is under 250 bytes; QR codes can be a couple of KiB.
const DefaultMaxFrame = 4096

// Control bytes used by the framers.
const (
	STX = 0x02
	ETX = 0x03
)

var (
	// ErrTooLong: a frame exceeded MaxFrame and was discarded.
	ErrTooLong = errors.New("frame too long")
	// ErrIncomplete: a partial frame was discarded (stale, or a new frame
	// started before it ended).
	ErrIncomplete = errors.New("incomplete frame discarded")
)

// New builds the framer described by c.
func New(c Config) (Framer, error) {
	if c.MaxFrame < 0 {
		return nil, fmt.Errorf("frame: max_frame %d is negative; use 0 for the default %d", c.MaxFrame, DefaultMaxFrame)
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Gap < 0 {
		return nil, fmt.Errorf("frame: gap %v is negative", c.Gap)
	}
	b := base{max: c.MaxFrame, gap: c.Gap}
	switch strings.ToLower(c.Kind) {
	case "terminator":
		var term []byte
		switch strings.ToUpper(c.Terminator) {
		case "CR":
			term = []byte{'\r'}
		case "LF":
			term = []byte{'\n'}
		case "CRLF":
			term = []byte{'\r', '\n'}
			// The CR waits in the buffer for its LF; it is not frame data.
			b.slack = 1
		default:
			return nil, fmt.Errorf("frame: terminator %q unknown; use CR, LF or CRLF", c.Terminator)
		}
		return &terminator{base: b, term: term}, nil
	case "stx_etx":
		return &stxetx{base: b}, nil
	case "idle_gap":
		if c.Gap <= 0 {
			return nil, fmt.Errorf("frame: idle_gap framing needs gap > 0 (e.g. 50ms)")
		}
		return &idleGap{base: b}, nil
	case "fixed":
		if c.Length <= 0 {
			return nil, fmt.Errorf("frame: fixed framing needs length > 0")
		}
		if c.Length > c.MaxFrame {
			return nil, fmt.Errorf("frame: fixed length %d exceeds max_frame %d", c.Length, c.MaxFrame)
		}
		return &fixed{base: b, n: c.Length}, nil
	case "pn532":
		return &pn532{base: b}, nil
	default:
		return nil, fmt.Errorf("frame: kind %q unknown; use terminator, stx_etx, idle_gap, fixed or pn532", c.Kind)
	}
}

// base holds what every framer shares: the partial frame, its last arrival
// time, the size bound and the accumulated errors.
type base struct {
	max      int
	slack    int // extra bytes the buffer may hold beyond max (a pending CR)
	gap      time.Duration
	buf      []byte
	last     time.Time
	dropping bool // discarding an overlong frame until its end
	errs     []error
}

func (b *base) Errors() []error {
	e := b.errs
	b.errs = nil
	return e
}

func (b *base) Reset() {
	b.buf = b.buf[:0]
	b.dropping = false
	b.last = time.Time{}
}

func (b *base) fail(err error) {
	// Bound the error list too: a noisy line must not grow memory.
	if len(b.errs) < 64 {
		b.errs = append(b.errs, err)
	}
}

// stale discards a partial frame whose last byte is older than the gap and
// reports whether the gap had elapsed.
func (b *base) stale(now time.Time) bool {
	if b.gap <= 0 || b.last.IsZero() || now.Sub(b.last) < b.gap {
		return false
	}
	if len(b.buf) > 0 {
		b.fail(fmt.Errorf("%w: %d bytes with no end after %v", ErrIncomplete, len(b.buf), b.gap))
	}
	b.buf = b.buf[:0]
	b.dropping = false
	return true
}

// add appends c to the partial frame, switching to drop mode when the frame
// would exceed the bound.
func (b *base) add(c byte) {
	if b.dropping {
		return
	}
	if len(b.buf) >= b.max+b.slack {
		b.fail(fmt.Errorf("%w: more than %d bytes; raise max_frame or check the framing settings", ErrTooLong, b.max))
		b.buf = b.buf[:0]
		b.dropping = true
		return
	}
	b.buf = append(b.buf, c)
}

// take returns a copy of the partial frame and clears it.
func (b *base) take() []byte {
	f := append([]byte(nil), b.buf...)
	b.buf = b.buf[:0]
	return f
}

type terminator struct {
	base
	term []byte
}

func (t *terminator) Push(p []byte, at time.Time) [][]byte {
	t.stale(at)
	t.last = at
	var out [][]byte
	last := t.term[len(t.term)-1]
	for _, c := range p {
		if c == last {
			if len(t.term) == 2 {
				// CRLF: the CR is the last byte held in the buffer (or was
				// dropped with an overlong frame).
				if t.dropping {
					t.dropping = false
					continue
				}
				if n := len(t.buf); n > 0 && t.buf[n-1] == t.term[0] {
					t.buf = t.buf[:n-1]
					if len(t.buf) > 0 {
						out = append(out, t.take())
					}
					continue
				}
				t.add(c)
				continue
			}
			if t.dropping {
				t.dropping = false
				continue
			}
			if len(t.buf) > 0 {
				out = append(out, t.take())
			}
			continue
		}
		t.add(c)
	}
	return out
}

func (t *terminator) Flush(now time.Time) [][]byte { t.stale(now); return nil }

type stxetx struct {
	base
	in bool // inside STX…ETX
}

func (s *stxetx) Reset() { s.base.Reset(); s.in = false }

func (s *stxetx) Push(p []byte, at time.Time) [][]byte {
	if s.stale(at) {
		s.in = false
	}
	s.last = at
	var out [][]byte
	for _, c := range p {
		switch {
		case c == STX:
			if s.in && len(s.buf) > 0 {
				s.fail(fmt.Errorf("%w: %d bytes, then a new STX before ETX", ErrIncomplete, len(s.buf)))
			}
			s.buf = s.buf[:0]
			s.dropping = false
			s.in = true
		case !s.in:
			// Noise between frames is discarded.
		case c == ETX:
			s.in = false
			if s.dropping {
				s.dropping = false
				continue
			}
			out = append(out, s.take())
		default:
			s.add(c)
		}
	}
	return out
}

func (s *stxetx) Flush(now time.Time) [][]byte {
	if s.stale(now) {
		s.in = false
	}
	return nil
}

type idleGap struct{ base }

func (g *idleGap) Push(p []byte, at time.Time) [][]byte {
	var out [][]byte
	if !g.last.IsZero() && at.Sub(g.last) >= g.gap {
		if len(g.buf) > 0 {
			out = append(out, g.take())
		}
		g.dropping = false
	}
	g.last = at
	for _, c := range p {
		g.add(c)
	}
	return out
}

func (g *idleGap) Flush(now time.Time) [][]byte {
	if g.last.IsZero() || now.Sub(g.last) < g.gap {
		return nil
	}
	g.dropping = false
	if len(g.buf) == 0 {
		return nil
	}
	return [][]byte{g.take()}
}

type fixed struct {
	base
	n int
}

func (f *fixed) Push(p []byte, at time.Time) [][]byte {
	f.stale(at)
	f.last = at
	var out [][]byte
	for _, c := range p {
		f.buf = append(f.buf, c)
		if len(f.buf) == f.n {
			out = append(out, f.take())
		}
	}
	return out
}

func (f *fixed) Flush(now time.Time) [][]byte { f.stale(now); return nil }
