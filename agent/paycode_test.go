//go:build linux

package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices"
	"posagent/devices/decode"
	"posagent/devices/frame/replay"
	"posagent/devices/hiddev"
	"posagent/devices/hiddev/hidtest"
	"posagent/devices/token"
)

// The made-up payment codes of testdata/reads/paycode_*.
var payCodes = map[string]string{
	"wechat":   "134598761234567890",
	"alipay":   "28661234567890123456",
	"unionpay": "6259871234567890123",
}

// syncBuf is a log sink the agent's goroutines write to concurrently.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A payment code scanned at till T1 — over a serial pty, a HID POS scanner
// and a HID keyboard wedge, from recorded streams — reaches the POS of T1
// with its digits, and nothing else: not T2's POS, not the ring, not a log
// line, not the metrics, not a byte of the data directory. A scanner set to
// drop them, and a till whose POS is not connected, only say that one was
// read.
func TestPaymentCodesGoOnlyToThePOSOfTheTill(t *testing.T) {
	serial, dropper, lone := newReader(t), newReader(t), newReader(t)
	pos := hiddev.DeviceInfo{Path: "1-2:1.0", VID: 0x0c2e, PID: 0x0b61, UsagePage: hiddev.UsagePagePOS}
	wedge := hiddev.DeviceInfo{Path: "1-3:1.0", VID: 0xffff, PID: 0x0035}
	be := hidtest.NewBackend() // the HID scanners are plugged in once the clients listen
	be.Queue(pos.Path, hidtest.NewReplay(hidtest.MustLoad(t, "../testdata/reads/paycode_hid_pos.hex"), false))
	be.Queue(wedge.Path, hidtest.NewReplay(hidtest.MustLoad(t, "../testdata/reads/paycode_hid_wedge.hex"), false))
	deviceOptions = []devices.Option{devices.WithHIDBackend(be), devices.WithBackoff(5*time.Millisecond, 20*time.Millisecond)}
	t.Cleanup(func() { deviceOptions = nil })

	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	member := token.Rule{Source: token.SourceBarcodeRegex, Regex: `^(M\d{8})$`, Group: 1}
	rn := startLog(t, log, func(c *config.Config) {
		c.Devices = []config.Device{
			{Name: "scan1", Till: "T1", Transport: "serial", Path: serial.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "barcode",
				Rule: member},
			{Name: "hidpos", Till: "T1", Transport: "hid", VID: "0c2e", PID: "0b61", HIDReport: "pos", Rule: member},
			{Name: "wedge", Till: "T1", Transport: "hid", Path: wedge.Path, HIDReport: "keyboard", Decoder: "barcode", Layout: "us",
				Rule: token.Rule{Source: token.SourceBarcodeRegex, Regex: `^(88\d{6})$`, Group: 1}},
			{Name: "drop1", Till: "T1", Transport: "serial", Path: dropper.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "barcode",
				Rule: member, PaymentCodes: "drop"},
			{Name: "lone", Till: "T3", Transport: "serial", Path: lone.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "barcode",
				Rule: member},
		}
	})
	t1, t2 := rn.stream(t, "T1"), rn.stream(t, "T2")
	waitSerialOnline(t, rn, "scan1", "drop1", "lone")

	// Serial: the recording's bytes, as the scanner sent them.
	rec, err := replay.Load("../testdata/reads/paycode_serial.rec")
	require.NoError(t, err)
	for _, c := range rec {
		serial.write(t, string(c.Data))
	}
	expectPayments(t, t1, map[string][]string{"scan1": {"Code 128", "QR", "QR"}})
	// The near miss is not a payment code and not a member code either.
	require.Equal(t, "rule", readErr(t, t1.next(t, events.TypeReadError)))
	require.Equal(t, "card_unknown", t1.next(t, events.TypeCardUnknown).Type)

	be.SetDevices(pos, wedge)
	seen := expectPayments(t, t1, map[string][]string{"hidpos": {"Code 128", "QR", "QR"}, "wedge": {"", "", ""}})
	// The scanners still read member codes after them.
	for len(seen) < 2 {
		var cu CardUnknownEvent
		require.NoError(t, json.Unmarshal(t1.next(t, events.TypeCardUnknown).Data, &cu))
		seen[cu.Device] = true
	}

	// drop: the page is told, the POS gets no code.
	dropper.write(t, "]C0"+payCodes["wechat"]+"\r")
	var rd PaymentCodeReadEvent
	e := t1.next(t, events.TypePaymentCodeRead, events.TypePaymentCode)
	require.Equal(t, events.TypePaymentCodeRead, e.Type, "a dropping scanner handed a code to the POS")
	require.NoError(t, json.Unmarshal(e.Data, &rd))
	require.Equal(t, PaymentCodeReadEvent{Device: "drop1", Scheme: "wechat", Dropped: true,
		Message: rd.Message, MessageZH: rd.MessageZH}, rd)
	require.Contains(t, rd.Message, "POS")
	require.Contains(t, rd.MessageZH, "收银系统")

	// T3 has no POS connected: dropped, and the till's clients are told.
	// (A subscriber that is not the POS, as the cashier page's stream is.)
	t3page, _, _ := rn.a.hub.Subscribe("T3", 0, false, 8)
	lone.write(t, "]Q1"+payCodes["unionpay"]+"\r")
	for e = range t3page.C {
		if e.Type == events.TypePaymentCodeRead || e.Type == events.TypePaymentCode {
			break
		}
	}
	require.Equal(t, events.TypePaymentCodeRead, e.Type)
	require.NoError(t, json.Unmarshal(e.Data, &rd))
	require.Equal(t, "lone", rd.Device)
	require.False(t, rd.Delivered)
	require.False(t, rd.Dropped)
	require.Equal(t, "payment code read — charge it in the POS", rd.Message)

	// T2's POS got none of it: a marker published after everything to every
	// till arrives with nothing of the payment codes before it.
	_, err = rn.a.hub.Publish("marker", "", map[string]string{})
	require.NoError(t, err)
	for {
		e := t2.next(t, "marker", events.TypePaymentCode, events.TypePaymentCodeRead, events.TypeCardUnknown)
		require.Equal(t, "marker", e.Type, "T2's POS got a read of T1: %s", e.Data)
		break
	}

	// The metrics count the reads, and hold no code.
	resp, err := http.Get(rn.base + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), `result="payment_code"`)

	// The ring: every event a resuming client could get.
	_, backlog, _ := rn.a.hub.Subscribe("", 0, true, 1)
	var ring strings.Builder
	kinds := map[string]int{}
	for _, e := range backlog {
		require.NotEqual(t, events.TypePaymentCode, e.Type, "a payment code is in the ring")
		kinds[e.Type]++
		ring.Write(e.Data)
		ring.WriteString("\n")
	}
	require.Equal(t, 11, kinds[events.TypePaymentCodeRead], "3 serial + 3 HID POS + 3 wedge + drop + T3")

	rn.shutdown(t)
	var files bytes.Buffer
	require.NoError(t, filepath.WalkDir(rn.a.cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files.Write(b)
		return err
	}))
	require.Greater(t, files.Len(), 4096, "the ledger file was written")

	for scheme, code := range payCodes {
		for what, text := range map[string]string{"log": logs.String(), "metrics": string(metrics), "event ring": ring.String(),
			"data directory (ledger)": files.String()} {
			require.NotContains(t, text, code, "the %s code is in the %s", scheme, what)
			require.NotContains(t, text, decode.Mask(code), "the %s code, masked, is in the %s", scheme, what)
		}
	}
	require.Contains(t, logs.String(), "payment code read", "the reads are logged, by scheme")
}

// expectPayments reads from a POS stream the payment codes of the devices
// (interleaved as they come): WeChat, Alipay, UnionPay from each, in the
// recordings' order, each with the page's payment_code_read saying the POS
// took it. syms are each device's symbologies in that order.
//
// It returns the devices whose member code (read after the payment codes)
// came in the meantime.
func expectPayments(t *testing.T, s *stream, syms map[string][]string) (members map[string]bool) {
	t.Helper()
	schemes := []string{"wechat", "alipay", "unionpay"}
	codes, reads := map[string]int{}, map[string]int{}
	members = map[string]bool{}
	for n := 0; n < 2*len(schemes)*len(syms); {
		e := s.next(t, events.TypePaymentCode, events.TypePaymentCodeRead, events.TypeCardUnknown)
		require.Equal(t, "T1", e.Till)
		if e.Type == events.TypeCardUnknown {
			var cu CardUnknownEvent
			require.NoError(t, json.Unmarshal(e.Data, &cu))
			members[cu.Device] = true
			continue
		}
		n++
		if e.Type == events.TypePaymentCode {
			var pc PaymentCodeEvent
			require.NoError(t, json.Unmarshal(e.Data, &pc))
			i := codes[pc.Device]
			require.Less(t, i, len(schemes), "unexpected code from %s", pc.Device)
			want := PaymentCodeEvent{Device: pc.Device, Scheme: schemes[i], Code: payCodes[schemes[i]], Symbology: syms[pc.Device][i]}
			require.Equal(t, want, pc)
			codes[pc.Device]++
			continue
		}
		var rd PaymentCodeReadEvent
		require.NoError(t, json.Unmarshal(e.Data, &rd))
		i := reads[rd.Device]
		require.Less(t, i, len(schemes), "unexpected read from %s", rd.Device)
		require.Equal(t, schemes[i], rd.Scheme)
		require.True(t, rd.Delivered, "%+v", rd)
		require.Equal(t, "payment code sent to the POS — finish the payment there", rd.Message)
		reads[rd.Device]++
	}
	for d := range syms {
		require.Equal(t, len(schemes), codes[d], d)
		require.Equal(t, len(schemes), reads[d], d)
	}
	return members
}

func readErr(t *testing.T, e events.Event) string {
	t.Helper()
	var re ReadErrorEvent
	require.NoError(t, json.Unmarshal(e.Data, &re))
	return re.Code
}

// waitSerialOnline waits for the named devices only (HID ones come later).
func waitSerialOnline(t *testing.T, rn *running, names ...string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		on := 0
		for _, d := range rn.a.dev.Status() {
			for _, n := range names {
				if d.Name == n && d.Online {
					on++
				}
			}
		}
		if on == len(names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices %v not online", names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
