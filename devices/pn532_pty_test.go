//go:build linux

package devices_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/decode"
	"posagent/devices/internal/devtest"
	"posagent/devices/token"
)

// What the simulated PN532 does with the next InListPassiveTarget.
type simAction struct {
	kind string // card, nack, corrupt (card, first copy with a bad DCS), silent, ack_only, mute (silent until unmute)
	uid  []byte
}

// pn532Sim plays a PN532 on the master side of a pty: it parses what the
// host writes and answers as the reader would, following a script for
// InListPassiveTarget. Everything the host sent is logged for assertions.
type pn532Sim struct {
	t      testing.TB
	p      *devtest.Pty
	mu     sync.Mutex
	log    []string // "wake SAM", "InList", "ACK", "NACK", or what was wrong
	script []simAction
	last   []byte // the last response, repeated when the host sends NACK
	done   chan struct{}
	// With stamps set, every InListPassiveTarget gets a card (uid) once the
	// script is done, one per value on gate, and the time its last byte
	// was written is sent on stamps. stop ends a wait for gate.
	stamps chan time.Time
	gate   chan struct{}
	stop   chan struct{}
	uid    []byte
	// muted: the reader is gone behind a present adapter (no power, HSU
	// switch wrong): every command is logged as "muted", none answered.
	muted bool
}

func startPN532Sim(t testing.TB, p *devtest.Pty, script ...simAction) *pn532Sim {
	s := &pn532Sim{t: t, p: p, script: script, done: make(chan struct{})}
	go s.run()
	t.Cleanup(func() {
		s.unplug()
		select {
		case <-s.done:
		case <-time.After(devtest.Wait):
			t.Errorf("PN532 simulator did not stop")
		}
	})
	return s
}

// unplug pulls the reader's cable. creack/pty leaves the master in
// blocking mode (it calls Fd), so Close cannot interrupt the simulator's
// pending Read and the kernel close waits until that Read returns: a byte
// written to the slave wakes it, and only then does the host see the
// hang-up.
func (s *pn532Sim) unplug() {
	s.p.Master.Close()
	s.p.Slave.Write([]byte{0x00}) // read as preamble, if at all
	s.p.Unplug()
}

func (s *pn532Sim) record(msg string) {
	s.mu.Lock()
	s.log = append(s.log, msg)
	s.mu.Unlock()
}

// unmute makes the reader answer again, from the next command on.
func (s *pn532Sim) unmute() {
	s.mu.Lock()
	s.muted = false
	s.mu.Unlock()
}

// waitLog polls the simulator's log (bounded by devtest.Wait) until cond
// holds for it; it returns the log.
func (s *pn532Sim) waitLog(cond func([]string) bool) []string {
	s.t.Helper()
	deadline := time.Now().Add(devtest.Wait)
	for {
		got := s.messages()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("simulator log never matched; host sent %s", strings.Join(got, ", "))
		}
		time.Sleep(5 * time.Millisecond) // polling the log, bounded by the deadline
	}
}

func (s *pn532Sim) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *pn532Sim) write(b ...[]byte) {
	for _, x := range b {
		// After the test the host side may be gone; nothing to do then.
		if _, err := s.p.Master.Write(x); err != nil {
			return
		}
	}
}

func (s *pn532Sim) run() {
	defer close(s.done)
	var buf []byte
	woken := false
	rd := make([]byte, 256)
	for {
		n, err := s.p.Master.Read(rd)
		if err != nil {
			return
		}
		buf = append(buf, rd[:n]...)
		for {
			i := 0
			for i < len(buf) && buf[i] == 0x00 {
				i++
			}
			if i == len(buf) {
				break // zeros only: more preamble to come
			}
			if buf[i] == 0x55 {
				// HSU wake-up: 55 55, then the zeros of the long preamble.
				for i < len(buf) && buf[i] == 0x55 {
					i++
				}
				woken = true
				buf = buf[i:]
				continue
			}
			if buf[i] != 0xFF || i == 0 {
				s.record(fmt.Sprintf("junk %02X", buf[i]))
				buf = buf[i+1:]
				continue
			}
			// buf[i-1:] starts with the start code 00 FF.
			f := buf[i-1:]
			if len(f) < 4 {
				break
			}
			size := 4 // ACK, NACK
			if !(f[2] == 0x00 && f[3] == 0xFF) && !(f[2] == 0xFF && f[3] == 0x00) {
				size = 4 + int(f[2]) + 1
			}
			if len(f) < size {
				break
			}
			s.command(f[:size], woken)
			woken = false
			buf = buf[i-1+size:]
		}
	}
}

func (s *pn532Sim) command(raw []byte, woken bool) {
	f, err := decode.ParsePN532Frame(raw)
	prefix := ""
	if woken {
		prefix = "wake "
	}
	ack := decode.PN532AckFrame()
	s.mu.Lock()
	muted := s.muted
	s.mu.Unlock()
	if muted {
		s.record(prefix + "muted")
		return
	}
	switch {
	case err != nil:
		s.record(prefix + "bad frame: " + err.Error())
	case f.Kind == decode.PN532Ack:
		s.record(prefix + "ACK")
	case f.Kind == decode.PN532Nack:
		s.record(prefix + "NACK")
		s.write(s.last)
	case f.TFI == decode.PN532TFIHost && f.Code == decode.PN532CmdSAMConfiguration && bytes.Equal(f.Params, []byte{0x01, 0x14, 0x01}):
		s.record(prefix + "SAM")
		if !woken {
			return // a sleeping PN532 hears nothing without the wake-up
		}
		s.last, _ = decode.PN532Response(decode.PN532ReplySAMConfiguration)
		s.write(ack, s.last)
	case f.TFI == decode.PN532TFIHost && f.Code == decode.PN532CmdInListPassiveTarget && bytes.Equal(f.Params, []byte{0x01, 0x00}):
		s.record(prefix + "InList")
		s.mu.Lock()
		a := simAction{kind: "ack_only"} // no card: the reader waits
		if s.stamps != nil {
			a = simAction{kind: "card", uid: s.uid}
		}
		if len(s.script) > 0 {
			a, s.script = s.script[0], s.script[1:]
		}
		s.mu.Unlock()
		switch a.kind {
		case "card", "corrupt":
			s.last, _ = decode.PN532Response(decode.PN532ReplyInListPassiveTarget,
				append([]byte{0x01, 0x01, 0x00, 0x04, 0x08, byte(len(a.uid))}, a.uid...)...)
			if a.kind == "card" && s.stamps != nil {
				select {
				case <-s.gate:
				case <-s.stop:
					return
				}
				s.write(ack, s.last[:len(s.last)-2])
				t0 := time.Now()
				s.write(s.last[len(s.last)-2:]) // DCS: the frame is complete
				select {
				case s.stamps <- t0:
				case <-s.stop:
				}
				return
			}
			if a.kind == "card" {
				s.write(ack, s.last)
				return
			}
			bad := slices.Clone(s.last)
			bad[len(bad)-2] ^= 0x5A // DCS
			s.write(ack, bad)
		case "nack":
			s.write(decode.PN532NackFrame())
		case "silent":
		case "mute":
			s.mu.Lock()
			s.muted = true
			s.mu.Unlock()
		case "ack_only":
			s.write(ack)
		}
	default:
		s.record(fmt.Sprintf("%sunexpected command %02X % X", prefix, f.Code, f.Params))
	}
}

// TestPN532HostDrivesReader: the host wakes and configures the reader,
// polls for cards, resends after a NACK, asks for a corrupted response
// again, re-initialises after silence and after an idle period, and every
// card arrives as its member token; a card left on the reader is one read.
func TestPN532HostDrivesReader(t *testing.T) {
	p := devtest.NewPty(t)
	uid1, uid2, uid3, uid4 := []byte{0xDE, 0xAD, 0xBE, 0xEF}, []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, []byte{0x01, 0x02, 0x03, 0x04}, []byte{0xCA, 0xFE, 0xF0, 0x0D}
	sim := startPN532Sim(t, p,
		simAction{kind: "card", uid: uid1},
		simAction{kind: "card", uid: uid1}, // the card still lies there
		simAction{kind: "nack"},
		simAction{kind: "corrupt", uid: uid2},
		simAction{kind: "silent"},
		simAction{kind: "card", uid: uid3},
		simAction{kind: "ack_only"}, // no card until the idle timeout
		simAction{kind: "card", uid: uid4},
	)
	// The ACK timeout is what a spurious re-initialisation would need the
	// simulator to be late by; the idle timeout only has to be longer.
	m := run(t, []devices.Config{{Name: "nfc", Till: "T1", Path: p.Path, Baud: 115200, Decoder: "pn532", Debounce: time.Hour}},
		devices.WithPN532Timing(devices.PN532Timing{AckTimeout: 2 * time.Second, IdleTimeout: 3 * time.Second}))
	next(t, m, online)

	for _, uid := range [][]byte{uid1, uid2, uid3, uid4} {
		tok := fmt.Sprintf("%X", uid)
		e, skipped := next(t, m, isData)
		for _, s := range skipped {
			if s.Kind != devices.KindStatus {
				t.Errorf("unexpected event before card %s: %s", token.Mask(tok), describe(skipped))
			}
		}
		if e.Data.TokenHash != token.Hash(testKey, tok) || e.Till != "T1" || e.Data.Kind != "rfid" {
			t.Fatalf("got %s, want card %s for T1 (host log %q)", describe([]devices.Event{e}), token.Mask(tok), sim.messages())
		}
	}

	want := []string{
		"wake SAM", "InList", // card 1
		"InList",           // card 1 again: debounced
		"InList", "InList", // NACK, resent without a wake-up
		"NACK",                      // the corrupted card 2 response is asked for again
		"InList",                    // silent
		"ACK", "wake SAM", "InList", // abort, re-initialise; card 3
		"InList",                    // no card
		"ACK", "wake SAM", "InList", // idle: re-initialise; card 4
		"InList", // armed again
	}
	deadline := time.Now().Add(devtest.Wait)
	var got []string
	for {
		got = sim.messages()
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the simulator's log, bounded by the deadline
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("host sent\n  %s\nwant\n  %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	st := m.Status()
	if st[0].Reads != 4 || st[0].Errors != 0 {
		t.Errorf("status %+v, want 4 reads and no errors", st[0])
	}
}

// TestPN532NotAnswering: the adapter stays plugged in but the PN532 falls
// silent. After the re-initialisation fails too, one not_answering status
// (offline) is published and Status shows it; the host keeps trying
// without repeating it; when the reader answers again one enabled status
// comes back and cards are read again.
func TestPN532NotAnswering(t *testing.T) {
	p := devtest.NewPty(t)
	uid1, uid2 := []byte{0x0A, 0x0B, 0x0C, 0x0D}, []byte{0x1A, 0x1B, 0x1C, 0x1D}
	sim := startPN532Sim(t, p,
		simAction{kind: "card", uid: uid1},
		simAction{kind: "mute"},
		simAction{kind: "card", uid: uid2},
	)
	m := run(t, []devices.Config{{Name: "nfc", Till: "T1", Path: p.Path, Baud: 115200, Decoder: "pn532"}},
		devices.WithPN532Timing(devices.PN532Timing{AckTimeout: time.Second, IdleTimeout: time.Minute}))
	next(t, m, online)
	if e, _ := next(t, m, isData); e.Data.TokenHash != token.Hash(testKey, "0A0B0C0D") {
		t.Fatalf("first card wrong: %s", describe([]devices.Event{e}))
	}

	notAnswering := func(e devices.Event) bool {
		return e.Status != nil && e.Status.State == devices.StateNotAnswering
	}
	e, skipped := next(t, m, notAnswering)
	if len(skipped) != 0 {
		t.Errorf("before not_answering got %s", describe(skipped))
	}
	if e.Status.Online || !strings.Contains(e.Status.Detail, "HSU") || !strings.Contains(e.Status.Detail, p.Path) {
		t.Errorf("not_answering event %s: want offline, naming the port and what to check", describe([]devices.Event{e}))
	}
	// Not the first lost ACK: the host re-initialised (the simulator may
	// log that a moment after the event) and that went unanswered too.
	sim.waitLog(func(log []string) bool { return slices.Contains(log, "wake muted") })
	if !strings.Contains(e.Status.Detail, "2 tries") {
		t.Errorf("not_answering detail %q, want it after 2 unanswered commands", e.Status.Detail)
	}
	st := m.Status()[0]
	if st.State != devices.StateNotAnswering || st.Online || st.Detail != e.Status.Detail {
		t.Errorf("Status() %+v, want not_answering, offline, with the event's detail", st)
	}

	// Two more failed re-initialisations: the host keeps trying, and the
	// state is not reported again (checked below: nothing precedes the
	// enabled event).
	count := func(log []string) int {
		n := 0
		for _, l := range log {
			if l == "wake muted" {
				n++
			}
		}
		return n
	}
	seen := count(sim.messages())
	sim.waitLog(func(log []string) bool { return count(log) >= seen+2 })
	if st := m.Status()[0]; st.State != devices.StateNotAnswering {
		t.Errorf("Status() while still silent %+v, want not_answering", st)
	}

	sim.unmute()
	e, skipped = next(t, m, online)
	if len(skipped) != 0 {
		t.Errorf("between not_answering and enabled got %s, want nothing (each transition once)", describe(skipped))
	}
	if e.Status.State != devices.StateEnabled {
		t.Errorf("answering again: %s, want enabled", describe([]devices.Event{e}))
	}
	e, skipped = next(t, m, isData)
	if len(skipped) != 0 {
		t.Errorf("before the card got %s", describe(skipped))
	}
	if e.Data.TokenHash != token.Hash(testKey, "1A1B1C1D") {
		t.Fatalf("card after recovery wrong: %s (host log %q)", describe([]devices.Event{e}), sim.messages())
	}
	st = m.Status()[0]
	if st.State != devices.StateEnabled || !st.Online || st.Reads != 2 {
		t.Errorf("Status() after recovery %+v, want enabled, online, 2 reads", st)
	}
}

// TestPN532UnplugReplug: the reader is unplugged while a command is
// outstanding and plugged back in; the host wakes it again and reads on.
func TestPN532UnplugReplug(t *testing.T) {
	link := devtest.TempLink(t)
	p1 := devtest.NewPty(t)
	devtest.Link(t, p1.Path, link)
	sim1 := startPN532Sim(t, p1, simAction{kind: "card", uid: []byte{0x11, 0x22, 0x33, 0x44}})
	m := run(t, []devices.Config{{Name: "nfc", Till: "T1", Path: link, Baud: 115200, Decoder: "pn532"}},
		devices.WithPN532Timing(devices.PN532Timing{AckTimeout: 2 * time.Second, IdleTimeout: time.Minute}))
	next(t, m, online)
	e, _ := next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, "11223344") {
		t.Fatal("first card wrong")
	}
	sim1.unplug()
	next(t, m, offline)

	p2 := devtest.NewPty(t)
	sim2 := startPN532Sim(t, p2, simAction{kind: "card", uid: []byte{0x55, 0x66, 0x77, 0x88}})
	devtest.Link(t, p2.Path, link)
	next(t, m, online)
	e, _ = next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, "55667788") {
		t.Fatalf("card after replug wrong (host log %q)", sim2.messages())
	}
	if got := sim2.messages(); len(got) < 2 || got[0] != "wake SAM" || got[1] != "InList" {
		t.Errorf("after replug the host sent %q, want the wake-up and SAMConfiguration first", got)
	}
}

// BenchmarkPN532PtyToToken measures a driven PN532: the response's last
// byte written to the pty → the token delivered to a subscriber of
// Events(). Each read re-arms InListPassiveTarget, so this is also the
// whole poll cycle. Figures are reported, never asserted.
func BenchmarkPN532PtyToToken(b *testing.B) {
	p := devtest.NewPty(b)
	sim := &pn532Sim{t: b, p: p, done: make(chan struct{}), uid: []byte{0xDE, 0xAD, 0xBE, 0xEF},
		stamps: make(chan time.Time), gate: make(chan struct{}), stop: make(chan struct{})}
	go sim.run()
	b.Cleanup(func() { close(sim.stop); sim.unplug(); <-sim.done })
	// Long timeouts: the reader waits for the benchmark loop, as for a card.
	m := run(b, []devices.Config{{Name: "nfc", Till: "T1", Path: p.Path, Baud: 115200, Decoder: "pn532"}},
		devices.WithPN532Timing(devices.PN532Timing{AckTimeout: devtest.Wait, IdleTimeout: time.Hour}))
	next(b, m, online)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		select {
		case sim.gate <- struct{}{}:
		case <-time.After(devtest.Wait):
			b.Fatal("the host did not poll for a card")
		}
		e, _ := next(b, m, isData)
		got := time.Now()
		var t0 time.Time
		select {
		case t0 = <-sim.stamps:
		case <-time.After(devtest.Wait):
			b.Fatal("no timestamp from the simulator")
		}
		lat = append(lat, got.Sub(t0))
		if e.Data.TokenHash == "" {
			b.Fatal("no token")
		}
	}
	b.StopTimer()
	devtest.ReportLatency(b, lat)
}
