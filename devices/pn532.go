package devices

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"posagent/devices/decode"
	"posagent/devices/frame"
)

// A PN532 over HSU only ever answers the host: after power-up it sleeps
// until woken, and it reports a card only as the response to an
// InListPassiveTarget command. pn532Source is the host side: it wakes the
// reader, configures it (SAMConfiguration, normal mode), keeps one
// InListPassiveTarget outstanding and hands every response frame to the
// manager, which decodes it with the pn532 decoder and debounces repeats of
// a card lying on the reader.
//
//	wake-up + SAMConfiguration ─ACK─► SAM response ─► InListPassiveTarget ─ACK─► response ─► (read) ─► InListPassiveTarget …
//
// NACK from the reader: the command is sent again. A response with a bad
// checksum: the host sends NACK so the reader repeats it (up to
// pn532MaxRetries times). No ACK within AckTimeout, or no response to
// InListPassiveTarget within IdleTimeout (no card came; also proves the
// reader is still alive): abort with an ACK frame and start over with the
// wake-up, so a reader that reset or lost power is brought back.
//
// A reader that stays silent through pn532SilentAfter initialisations in a
// row (the adapter is there, the PN532 is not: power, cable, HSU mode
// switch) is reported with a not_answering status, so the cashier page and
// /readyz stop showing it as ready; the first answer reports it enabled
// again. Both transitions are reported once; the host keeps re-initialising
// in between.

// PN532Timing tunes the PN532 host protocol; zero fields take the defaults.
type PN532Timing struct {
	// AckTimeout bounds the wait for an ACK after a command, and for the
	// response to SAMConfiguration or to a NACK. Default 500ms: a PN532
	// acknowledges within milliseconds; USB serial adapters add tens.
	AckTimeout time.Duration
	// IdleTimeout bounds the wait for a card (the InListPassiveTarget
	// response) before the reader is re-initialised. Default 5s.
	IdleTimeout time.Duration
}

// WithPN532Timing sets the PN532 host protocol timeouts.
func WithPN532Timing(t PN532Timing) Option { return func(o *options) { o.pn532 = t } }

func (t PN532Timing) withDefaults() PN532Timing {
	if t.AckTimeout <= 0 {
		t.AckTimeout = 500 * time.Millisecond
	}
	if t.IdleTimeout <= 0 {
		t.IdleTimeout = 5 * time.Second
	}
	return t
}

// pn532MaxRetries bounds NACK-triggered resends in either direction before
// the host gives up on the exchange.
const pn532MaxRetries = 3

// pn532SilentAfter is how many commands in a row must go unacknowledged
// before the reader is reported not answering: one lost ACK (line noise, a
// reader busy resetting) is recovered silently; the re-initialisation
// failing as well is not a glitch.
const pn532SilentAfter = 2

var errSourceClosed = errors.New("source closed")

type pn532In struct {
	frame []byte
	at    time.Time
	err   error // a framing error (bad length checksum, overlong frame)
}

type pn532Phase int

const (
	pn532WaitAck  pn532Phase = iota // command sent, ACK due
	pn532WaitResp                   // ACK received, response due
)

type pn532Source struct {
	port   io.ReadWriteCloser
	fr     frame.Framer
	timing PN532Timing
	log    *slog.Logger

	in       chan pn532In
	closed   chan struct{}
	once     sync.Once
	pumpDone chan struct{}
	readErr  error      // set by pump before it closes in
	wmu      sync.Mutex // a write never overlaps Close (fd reuse)

	// Protocol state, touched only by next (one goroutine).
	out      []byte        // to write before waiting again
	wait     time.Duration // how long to wait once out is written
	cmd      []byte        // the outstanding command frame (resent on NACK)
	code     byte          // its command code
	phase    pn532Phase
	deadline time.Time
	timer    *time.Timer
	resends  int  // NACKs received for cmd
	nacks    int  // NACKs sent for the current response
	silent   bool // the reader stopped answering (logged once)
	misses   int  // ACK timeouts in a row
	down     bool // reported not answering (status sent once)
	queued   []chunk
	path     string
}

func newPN532Source(port io.ReadWriteCloser, path string, fc frame.Config, t PN532Timing, log *slog.Logger) (*pn532Source, error) {
	// The driver must see single PN532 frames whatever framer is
	// configured; gap and max_frame are kept.
	fc.Kind = "pn532"
	fr, err := frame.New(fc)
	if err != nil {
		return nil, err
	}
	s := &pn532Source{
		port: port, path: path, fr: fr, timing: t.withDefaults(), log: log,
		in: make(chan pn532In, 16), closed: make(chan struct{}), pumpDone: make(chan struct{}),
		timer: time.NewTimer(time.Hour),
	}
	s.timer.Stop()
	s.initialise(false)
	go s.pump()
	return s, nil
}

// pump reads the port and cuts the stream into PN532 frames.
func (s *pn532Source) pump() {
	defer close(s.pumpDone)
	defer close(s.in)
	buf := make([]byte, 512)
	send := func(x pn532In) bool {
		select {
		case s.in <- x:
			return true
		case <-s.closed:
			return false
		}
	}
	for {
		n, err := s.port.Read(buf)
		if n > 0 {
			now := time.Now()
			for _, f := range s.fr.Push(buf[:n], now) {
				if !send(pn532In{frame: f, at: now}) {
					return
				}
			}
			for _, fe := range s.fr.Errors() {
				if !send(pn532In{err: fe, at: now}) {
					return
				}
			}
		}
		if err != nil {
			s.readErr = err
			return
		}
	}
}

// Close stops the driver; it returns after the reading goroutine ended.
func (s *pn532Source) Close() error {
	s.once.Do(func() { close(s.closed) })
	s.wmu.Lock()
	err := s.port.Close() // unblocks pump's Read
	s.wmu.Unlock()
	<-s.pumpDone
	s.timer.Stop()
	return err
}

func (s *pn532Source) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.closed:
		return errSourceClosed
	default:
	}
	_, err := s.port.Write(b)
	return err
}

// next drives the reader until a response that may carry a card arrives
// or the reader's state changes; it returns that frame for the manager to
// decode, or the status to publish.
func (s *pn532Source) next() (chunk, error) {
	for {
		if len(s.queued) > 0 {
			c := s.queued[0]
			s.queued = s.queued[1:]
			return c, nil
		}
		if s.out != nil {
			if err := s.write(s.out); err != nil {
				return chunk{}, err
			}
			s.out = nil
			s.deadline = time.Now().Add(s.wait)
		}
		s.timer.Reset(time.Until(s.deadline))
		select {
		case <-s.closed:
			return chunk{}, errSourceClosed
		case x, ok := <-s.in:
			if !ok {
				if s.readErr == nil {
					return chunk{}, errors.New("PN532 reader stopped")
				}
				return chunk{}, s.readErr
			}
			if c, ok := s.handle(x); ok {
				s.queued = append(s.queued, c) // after a status answering() queued
			}
		case <-s.timer.C:
			s.timeout()
		}
	}
}

// send makes cmd the outstanding command; prefix goes out before it.
func (s *pn532Source) send(prefix, cmd []byte, code byte) {
	s.out = append(append([]byte(nil), prefix...), cmd...)
	s.cmd, s.code, s.phase, s.wait = cmd, code, pn532WaitAck, s.timing.AckTimeout
	s.resends, s.nacks = 0, 0
}

// initialise starts over: wake-up preamble, then SAMConfiguration. With
// abort, an ACK frame first cancels a command the reader may still run.
func (s *pn532Source) initialise(abort bool) {
	var prefix []byte
	if abort {
		prefix = decode.PN532AckFrame()
	}
	s.send(append(prefix, decode.PN532WakeUp()...), decode.PN532SAMConfiguration(), decode.PN532CmdSAMConfiguration)
}

func (s *pn532Source) arm() {
	s.send(nil, decode.PN532InListPassiveTarget(), decode.PN532CmdInListPassiveTarget)
}

func (s *pn532Source) answering() {
	s.misses = 0
	if s.silent {
		s.silent = false
		s.log.Info("PN532 answering again")
	}
	if s.down {
		s.down = false
		s.queued = append(s.queued, chunk{at: time.Now(), status: &Status{Online: true, State: StateEnabled,
			Detail: "PN532 answering again: " + s.path}})
	}
}

func (s *pn532Source) timeout() {
	if s.phase == pn532WaitResp && s.code == decode.PN532CmdInListPassiveTarget && s.nacks == 0 {
		// No card for a while: normal. Start over anyway so a reader that
		// reset (and sleeps again) is woken; a live one answers at once.
		s.log.Debug("PN532 idle; re-initialising")
		s.initialise(true)
		return
	}
	if !s.silent {
		s.silent = true
		s.log.Warn("PN532 not answering; re-initialising (check its power, wiring, HSU mode and 115200 baud)")
	}
	s.misses++
	if s.misses >= pn532SilentAfter && !s.down {
		s.down = true
		s.queued = append(s.queued, chunk{at: time.Now(), status: &Status{State: StateNotAnswering,
			Detail: fmt.Sprintf("PN532 on %s does not answer (no ACK within %v, %d tries); the USB adapter is there: check the reader's power, the cable (TX/RX), that its mode switch is set to HSU, and 115200 baud; retrying",
				s.path, s.timing.AckTimeout, s.misses)}})
	}
	s.initialise(true)
}

// responseBroken handles a response that arrived corrupted: NACK asks the
// reader to send it again. When that keeps failing the exchange is given
// up; a corrupted card response is then passed on so the cashier hears of
// it.
func (s *pn532Source) responseBroken(f []byte, at time.Time) (chunk, bool) {
	if s.phase != pn532WaitResp {
		return chunk{}, false // a broken ACK: the ACK timeout recovers
	}
	if s.nacks < pn532MaxRetries {
		s.nacks++
		s.log.Debug("PN532 response corrupted; asking for it again")
		s.out, s.wait = decode.PN532NackFrame(), s.timing.AckTimeout
		return chunk{}, false
	}
	s.log.Warn("PN532 response corrupted repeatedly; check the wiring and baud rate")
	code := s.code
	if code == decode.PN532CmdInListPassiveTarget {
		s.arm()
		if f != nil {
			return chunk{data: f, at: at, framed: true}, true
		}
		return chunk{}, false
	}
	s.initialise(true)
	return chunk{}, false
}

func (s *pn532Source) handle(x pn532In) (chunk, bool) {
	if x.err != nil {
		return s.responseBroken(nil, x.at)
	}
	f, err := decode.ParsePN532Frame(x.frame)
	if err != nil {
		if errors.Is(err, decode.ErrChecksum) {
			return s.responseBroken(x.frame, x.at)
		}
		s.log.Debug("PN532 frame ignored", "err", err)
		return chunk{}, false
	}
	switch f.Kind {
	case decode.PN532Ack:
		if s.phase == pn532WaitAck {
			s.answering()
			s.phase = pn532WaitResp
			wait := s.timing.AckTimeout
			if s.code == decode.PN532CmdInListPassiveTarget {
				wait = s.timing.IdleTimeout
			}
			s.deadline = x.at.Add(wait)
		}
	case decode.PN532Nack:
		s.answering()
		if s.resends >= pn532MaxRetries {
			s.log.Warn("PN532 keeps refusing the command; re-initialising")
			s.initialise(true)
			return chunk{}, false
		}
		s.resends++
		s.out, s.phase, s.wait = s.cmd, pn532WaitAck, s.timing.AckTimeout
	case decode.PN532AppError:
		s.answering()
		s.log.Warn("PN532 rejected a command; re-initialising")
		s.initialise(true)
	case decode.PN532Info:
		if f.TFI != decode.PN532TFIReply {
			return chunk{}, false
		}
		s.answering()
		if f.Code == s.code+1 {
			// The response (its ACK may have been lost; the answer counts).
			if s.code == decode.PN532CmdSAMConfiguration {
				s.arm()
				return chunk{}, false
			}
			s.arm() // re-arm; written on the next call
		}
		if f.Code == decode.PN532ReplyInListPassiveTarget {
			// Unsolicited ones too: a card is a card.
			return chunk{data: x.frame, at: x.at, framed: true}, true
		}
	}
	return chunk{}, false
}
