//go:build linux

package devices_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"posagent/devices"
	"posagent/devices/frame"
	"posagent/devices/internal/devtest"
	"posagent/devices/serialdev"
	"posagent/devices/token"
)

func em4100(uid string) []byte {
	raw, _ := hex.DecodeString(uid)
	var x byte
	for _, c := range raw {
		x ^= c
	}
	return []byte(fmt.Sprintf("\x02%s%02X\x03", uid, x))
}

func pn532Frame(data []byte) []byte {
	f := []byte{0x00, 0x00, 0xFF, byte(len(data)), byte(-len(data))}
	var sum byte
	for _, c := range data {
		sum += c
	}
	f = append(f, data...)
	return append(f, -sum, 0x00)
}

func pn532InList(uid []byte) []byte {
	ack := []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}
	body := append([]byte{0xD5, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, byte(len(uid))}, uid...)
	return append(ack, pn532Frame(body)...)
}

// TestSerialReaderKinds runs every serial reader kind over a real pty.
func TestSerialReaderKinds(t *testing.T) {
	cases := []struct {
		name  string
		cfg   devices.Config
		write [][]byte // written in pieces, as readers trickle bytes
		token string
		kind  string
	}{
		{"msr", devices.Config{Decoder: "msr"},
			[][]byte{[]byte(msrSwipe[:20]), []byte(msrSwipe[20:])}, pan, "msr"},
		{"rdm6300", devices.Config{Decoder: "em4100"},
			[][]byte{em4100("0A00B1C2D3")}, "0A00B1C2D3", "rfid"},
		{"parallax", devices.Config{Decoder: "parallax", Baud: 2400},
			[][]byte{[]byte("\n0415ED7A2C\r")}, "0415ED7A2C", "rfid"},
		{"pn532", devices.Config{Decoder: "pn532", Baud: 115200},
			[][]byte{pn532InList([]byte{0xDE, 0xAD, 0xBE, 0xEF})}, "DEADBEEF", "rfid"},
		{"barcode_cr", devices.Config{Decoder: "barcode"},
			[][]byte{[]byte("]E04006381333931\r")}, "4006381333931", "barcode"},
		{"barcode_idle_gap", devices.Config{Decoder: "barcode", Framer: frame.Config{Kind: "idle_gap", Gap: 30 * time.Millisecond}},
			[][]byte{[]byte("MEMBER-"), []byte("00012345")}, "MEMBER-00012345", "barcode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := devtest.NewPty(t)
			cfg := tc.cfg
			cfg.Name, cfg.Till, cfg.Path = tc.name, "T1", p.Path
			m := run(t, []devices.Config{cfg})
			next(t, m, online)
			for _, w := range tc.write {
				p.Write(t, w)
			}
			e, skipped := next(t, m, isData)
			if len(skipped) > 0 {
				t.Errorf("unexpected events before the read: %s", describe(skipped))
			}
			if e.Till != "T1" || e.Device != tc.name {
				t.Errorf("event belongs to %s/%s, want T1/%s", e.Till, e.Device, tc.name)
			}
			if e.Data.Kind != tc.kind {
				t.Errorf("kind %q, want %q", e.Data.Kind, tc.kind)
			}
			if want := token.Hash(testKey, tc.token); e.Data.TokenHash != want {
				t.Errorf("token hash %s, want hash of %s", e.Data.TokenHash, token.Mask(tc.token))
			}
			if want := token.Mask(tc.token); e.Data.Masked != want {
				t.Errorf("masked %q, want %q", e.Data.Masked, want)
			}
			if len(tc.token) >= 13 && strings.Contains(describe([]devices.Event{e})+fmt.Sprint(e.Data.Tracks), tc.token) {
				t.Errorf("full card number leaked into the event")
			}
			st := m.Status()
			if len(st) != 1 || !st[0].Online || st[0].Reads != 1 {
				t.Errorf("status %+v, want online with one read", st)
			}
		})
	}
}

// TestScannerSuffixes: a barcode scanner with the default framer reads
// every scan whatever suffix it is set to (CR, LF, CR LF, LF CR, TAB),
// also when the two bytes of a pair come in separate reads with a pause
// between them, and never turns a suffix byte into an error.
func TestScannerSuffixes(t *testing.T) {
	codes := []string{"M00012345", "M00067890", "M00099999", "M00011111"}
	for _, tc := range []struct {
		name, suffix string
		split        bool
	}{
		{"cr", "\r", false}, {"lf", "\n", false}, {"crlf", "\r\n", false}, {"lfcr", "\n\r", false},
		{"tab", "\t", false}, {"crlf_split", "\r\n", true}, {"lfcr_split", "\n\r", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := devtest.NewPty(t)
			m := run(t, []devices.Config{{Name: "scanner", Till: "T1", Path: p.Path, Decoder: "barcode"}})
			next(t, m, online)
			for _, code := range codes {
				if tc.split {
					p.Write(t, []byte(code+tc.suffix[:1]))
					time.Sleep(30 * time.Millisecond)
					p.Write(t, []byte(tc.suffix[1:]))
				} else {
					p.Write(t, []byte(code+tc.suffix))
				}
			}
			for _, code := range codes {
				e, skipped := next(t, m, isData)
				if len(skipped) > 0 {
					t.Errorf("unexpected events before %s: %s", code, describe(skipped))
				}
				if e.Data.TokenHash != token.Hash(testKey, code) {
					t.Fatalf("read %s, want %s", e.Data.Masked, token.Mask(code))
				}
			}
			st := m.Status()
			if st[0].Reads != uint64(len(codes)) || st[0].Errors != 0 {
				t.Errorf("status %+v, want %d reads and no errors", st[0], len(codes))
			}
		})
	}
}

// TestSerialBadReads: errors carry a code and a cashier hint.
func TestSerialBadReads(t *testing.T) {
	p := devtest.NewPty(t)
	m := run(t, []devices.Config{{Name: "rfid", Till: "T2", Path: p.Path, Decoder: "em4100"}})
	next(t, m, online)
	bad := em4100("0A00B1C2D3")
	// Corrupt the last checksum digit, keeping it a hex digit.
	if bad[12] == '0' {
		bad[12] = '1'
	} else {
		bad[12] = '0'
	}
	p.Write(t, bad)
	e, _ := next(t, m, isError)
	if e.Error.Code != "checksum" || e.Error.Hint == "" || e.Till != "T2" {
		t.Errorf("error event %+v, want checksum with a hint for till T2", e.Error)
	}

	p2 := devtest.NewPty(t)
	m2 := run(t, []devices.Config{{Name: "msr", Path: p2.Path, Decoder: "msr"}})
	next(t, m2, online)
	p2.Write(t, []byte("%E?;E?\r"))
	e, _ = next(t, m2, isError)
	if e.Error.Code != "bad_read" || !strings.Contains(e.Error.Hint, "swipe") {
		t.Errorf("error event %+v, want bad_read telling the cashier to swipe again", e.Error)
	}
}

// TestSerialUnplugReplug: close the master → offline; a new pty behind the
// configured path (a symlink we repoint) → online, and a read cut off by
// the unplug is never delivered.
func TestSerialUnplugReplug(t *testing.T) {
	link := devtest.TempLink(t)
	p1 := devtest.NewPty(t)
	devtest.Link(t, p1.Path, link)
	m := run(t, []devices.Config{{Name: "msr", Till: "T1", Path: link, Decoder: "msr"}})
	next(t, m, online)
	p1.Write(t, []byte(msrSwipe))
	e, _ := next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, pan) {
		t.Fatalf("first read has the wrong token")
	}

	// Half a swipe, then the cable is pulled.
	p1.Write(t, []byte(msrSwipe[:30]))
	p1.Unplug()
	e, skipped := next(t, m, offline)
	for _, s := range skipped {
		if s.Kind == devices.KindData {
			t.Fatalf("a cut-off read was delivered: %s", describe(skipped))
		}
	}
	if e.Status.Online {
		t.Fatal("offline event says online")
	}

	p2 := devtest.NewPty(t)
	devtest.Link(t, p2.Path, link)
	next(t, m, online)
	other := "6222029876543210"
	p2.Write(t, []byte(";"+other+"=2901101?\r"))
	e, skipped = next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, other) {
		t.Fatalf("after replug got a different card (a stale partial merged?) %s", describe(append(skipped, e)))
	}
	for _, s := range skipped {
		if s.Kind == devices.KindError || s.Kind == devices.KindData {
			t.Errorf("unexpected event after replug: %s", describe(skipped))
		}
	}
}

// TestUnplugReportedOnce: each unplug is one offline event and each replug
// one online event, however many reopen attempts fail in between (the
// reader stays unplugged for many backoff rounds).
func TestUnplugReportedOnce(t *testing.T) {
	link := devtest.TempLink(t)
	p := devtest.NewPty(t)
	devtest.Link(t, p.Path, link)
	m := run(t, []devices.Config{{Name: "scanner", Till: "T1", Path: link, Decoder: "barcode"}})
	next(t, m, online)
	for i := range 3 {
		// The next reader's pty is made while this one is still open, so
		// it never gets the number of the pty the link still points at
		// (that would be a replug before the test makes one).
		np := devtest.NewPty(t)
		p.Unplug()
		// The node goes away with the device, as a USB serial port's does:
		// a freed pty number can be taken by a test in another package
		// running at the same time, which would look like a replug.
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		next(t, m, offline)
		// Backoff is 5–100 ms here: a second is many failed reopens.
		time.Sleep(time.Second)
		if st := m.Status()[0]; st.State != devices.StateOffline || st.Online {
			t.Fatalf("while unplugged: status %+v, want offline", st)
		}
		p = np
		devtest.Link(t, p.Path, link)
		code := fmt.Sprintf("M%08d", i)
		p.Write(t, []byte(code+"\r"))
		e, skipped := next(t, m, isData)
		if e.Data.TokenHash != token.Hash(testKey, code) {
			t.Fatalf("replug %d: read %s", i, e.Data.Masked)
		}
		var offs, ons int
		for _, s := range skipped {
			switch {
			case s.Kind != devices.KindStatus:
				t.Errorf("replug %d: unexpected event %s", i, describe([]devices.Event{s}))
			case s.Status.Online:
				ons++
			default:
				offs++
			}
		}
		// The offline event of this unplug was taken by next above.
		if offs != 0 || ons != 1 {
			t.Fatalf("unplug %d: %d more offline and %d online events, want 0 and 1: %s", i, offs, ons, describe(skipped))
		}
	}
}

// TestSerialMatchByVIDPID: the reader moves to another port between
// plug-ins; the config names it by VID:PID+serial.
func TestSerialMatchByVIDPID(t *testing.T) {
	var ports atomic.Pointer[[]serialdev.PortInfo]
	set := func(p ...serialdev.PortInfo) { ports.Store(&p) }
	set()
	enum := func() ([]serialdev.PortInfo, error) { return *ports.Load(), nil }
	p1 := devtest.NewPty(t)
	other := devtest.NewPty(t) // an unrelated adapter that must not be opened
	set(serialdev.PortInfo{Path: other.Path, IsUSB: true, VID: "0403", PID: "6001", Serial: "OTHER"},
		serialdev.PortInfo{Path: p1.Path, IsUSB: true, VID: "0403", PID: "6001", Serial: "RDR1"})
	m := run(t, []devices.Config{{Name: "rfid", Till: "T3", VID: "0x0403", PID: "6001", Serial: "RDR1", Decoder: "em4100", Debounce: 10 * time.Second}},
		devices.WithSerialEnumerator(enum))
	e, _ := next(t, m, online)
	if !strings.Contains(e.Status.Detail, p1.Path) {
		t.Fatalf("opened %q, want %s", e.Status.Detail, p1.Path)
	}
	// Debounce: the card lies on the reader and the frame repeats.
	for range 3 {
		p1.Write(t, em4100("0A00B1C2D3"))
	}
	p1.Write(t, em4100("0A00B1C2D4"))
	e, _ = next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, "0A00B1C2D3") {
		t.Fatal("first read wrong")
	}
	e, skipped := next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, "0A00B1C2D4") {
		t.Fatalf("repeat frames were not debounced: %s", describe(append(skipped, e)))
	}

	p1.Unplug()
	set(serialdev.PortInfo{Path: other.Path, IsUSB: true, VID: "0403", PID: "6001", Serial: "OTHER"})
	next(t, m, offline)
	p2 := devtest.NewPty(t)
	set(serialdev.PortInfo{Path: other.Path, IsUSB: true, VID: "0403", PID: "6001", Serial: "OTHER"},
		serialdev.PortInfo{Path: p2.Path, IsUSB: true, VID: "0403", PID: "6001", Serial: "RDR1"})
	e, _ = next(t, m, online)
	if !strings.Contains(e.Status.Detail, p2.Path) {
		t.Fatalf("reopened %q, want the new port %s", e.Status.Detail, p2.Path)
	}
	p2.Write(t, em4100("0A00B1C2D3"))
	e, _ = next(t, m, isData)
	if e.Data.TokenHash != token.Hash(testKey, "0A00B1C2D3") || e.Till != "T3" {
		t.Fatal("read after the move is wrong")
	}
}

// TestTwoTills: each read belongs to the till whose device made it.
func TestTwoTills(t *testing.T) {
	a, b := devtest.NewPty(t), devtest.NewPty(t)
	m := run(t, []devices.Config{
		{Name: "a", Till: "T1", Path: a.Path, Decoder: "barcode"},
		{Name: "b", Till: "T2", Path: b.Path, Decoder: "barcode"},
	})
	var mu sync.Mutex
	up := map[string]bool{}
	for len(up) < 2 {
		e, _ := next(t, m, online)
		mu.Lock()
		up[e.Device] = true
		mu.Unlock()
	}
	b.Write(t, []byte("CODE-B\r"))
	a.Write(t, []byte("CODE-A\r"))
	for range 2 {
		e, _ := next(t, m, isData)
		want := map[string]string{"a": "T1", "b": "T2"}[e.Device]
		if e.Till != want {
			t.Errorf("device %s read attributed to till %s, want %s", e.Device, e.Till, want)
		}
		if e.Data.TokenHash != token.Hash(testKey, "CODE-"+strings.ToUpper(e.Device)) {
			t.Errorf("device %s delivered another device's code", e.Device)
		}
	}
}
