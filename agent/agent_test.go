//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices/token"
	"posagent/ledger/entry"
)

const (
	wait     = 30 * time.Second
	apiTok   = "agent-test-token-0123456789"
	tokenKey = "00112233445566778899aabbccddeeff"
	pan      = "6222021234567890123"
	swipe    = "%B6222021234567890123^ZHANG/SAN^2512101000000?;6222021234567890123=25121010000000?\r"
	pan2     = "6222029876543210987"
	swipe2   = "%B6222029876543210987^LI/SI^2512101000000?;6222029876543210987=25121010000000?\r"
)

// reader is a fake serial card reader: the test writes to master, the
// agent opens the slave path like a /dev/ttyUSB0.
type reader struct {
	master, slave *os.File
}

func newReader(t testing.TB) *reader {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	r := &reader{master: m, slave: s}
	t.Cleanup(func() { m.Close(); s.Close() })
	return r
}

func (r *reader) write(t testing.TB, s string) {
	t.Helper()
	if _, err := r.master.Write([]byte(s)); err != nil {
		t.Fatalf("write to the reader: %v", err)
	}
}

type running struct {
	a    *Agent
	base string
	done chan error
	stop context.CancelFunc
}

// start runs an agent on 127.0.0.1:0 with an MSR on each given reader
// (named msr1, msr2…, the first on till T1, the next on T2).
func start(t testing.TB, readers ...*reader) *running {
	t.Helper()
	return startWith(t, nil, readers...)
}

// startWith is start with a change to the config before New.
func startWith(t testing.TB, mod func(*config.Config), readers ...*reader) *running {
	t.Helper()
	return startLog(t, nil, mod, readers...)
}

// startLog is startWith with the agent's logger given (nil: the default).
func startLog(t testing.TB, log *slog.Logger, mod func(*config.Config), readers ...*reader) *running {
	t.Helper()
	cfg := config.Default()
	cfg.Store, cfg.Till = "S1", "T1"
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.Token = apiTok
	cfg.TokenKey = tokenKey
	// These tests are about other things; cashier accounts have their own.
	cfg.Cashiers.AllowPOSWithoutCashier = true
	for i, r := range readers {
		cfg.Devices = append(cfg.Devices, config.Device{Name: "msr" + string(rune('1'+i)), Till: "T" + string(rune('1'+i)),
			Transport: "serial", Path: r.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "msr"})
	}
	if mod != nil {
		mod(&cfg)
	}
	require.NoError(t, cfg.Validate())
	a, err := New(cfg, log)
	require.NoError(t, err)
	ready := make(chan struct{})
	a.OnReady(func() { close(ready) })
	ctx, cancel := context.WithCancel(context.Background())
	rn := &running{a: a, base: "http://" + a.Addr(), done: make(chan error, 1), stop: cancel}
	go func() { rn.done <- a.Run(ctx) }()
	t.Cleanup(func() { rn.shutdown(t) })
	select {
	case <-ready:
	case err := <-rn.done:
		t.Fatalf("agent stopped at start: %v", err)
	case <-time.After(wait):
		t.Fatal("agent not ready in time")
	}
	if len(readers) > 0 {
		// A read written before its port is open is lost to the test.
		rn.waitOnline(t)
	}
	return rn
}

func (rn *running) shutdown(t testing.TB) {
	rn.stop()
	select {
	case err := <-rn.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		rn.done <- err // later calls see it too
	case <-time.After(wait):
		t.Error("agent did not stop in time")
	}
}

func (rn *running) post(t testing.TB, path string, body, out any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", rn.base+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out))
	}
}

func (rn *running) get(t testing.TB, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", rn.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// stream is an SSE client of the agent.
type stream struct {
	evs  chan events.Event
	errs chan error
}

func (rn *running) stream(t testing.TB, till string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", rn.base+"/v1/events?till="+till, nil)
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := &stream{evs: make(chan events.Event, 1024), errs: make(chan error, 1)}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		d := events.NewDecoder(resp.Body)
		for {
			e, err := d.Next()
			if err != nil {
				s.errs <- err
				return
			}
			s.evs <- e
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-finished })
	return s
}

// next waits for the next event of one of the types, skipping others.
func (s *stream) next(t testing.TB, types ...string) events.Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-s.evs:
			for _, ty := range types {
				if e.Type == ty {
					return e
				}
			}
		case err := <-s.errs:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatalf("no %v event in time", types)
		}
	}
}

// waitOnline polls the status until every reader is online.
func (rn *running) waitOnline(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var st api.Status
		rn.get(t, "/v1/status", &st)
		on := len(st.Devices) > 0
		for _, d := range st.Devices {
			on = on && d.Online
		}
		if on {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readers not online: %+v", st.Devices)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSwipeBecomesMemberEvent(t *testing.T) {
	r1, r2 := newReader(t), newReader(t)
	rn := start(t, r1, r2)
	var en api.EnrolResponse
	rn.post(t, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "mobile": "13800001111", "card": pan}, &en)
	id := en.Member.Member.ID

	s1 := rn.stream(t, "T1")
	s2 := rn.stream(t, "T2")
	rn.waitOnline(t)

	// A swipe on till T1's reader: the member, on T1's stream only.
	r1.write(t, swipe[:30])
	r1.write(t, swipe[30:])
	e := s1.next(t, events.TypeMember)
	require.Equal(t, "T1", e.Till)
	var me MemberEvent
	require.NoError(t, json.Unmarshal(e.Data, &me))
	require.Equal(t, id, me.Member.Member.ID)
	require.Equal(t, "张三", me.Member.Member.Name)
	require.Equal(t, "msr1", me.Device)
	require.NotContains(t, string(e.Data), pan, "no card number on the stream")

	// An unknown card on T2: card_unknown with a hash enrolment can use.
	r2.write(t, swipe2)
	e = s2.next(t, events.TypeCardUnknown, events.TypeMember)
	require.Equal(t, events.TypeCardUnknown, e.Type)
	var cu CardUnknownEvent
	require.NoError(t, json.Unmarshal(e.Data, &cu))
	key, _ := config.Config{TokenKey: tokenKey}.TokenKeyBytes()
	require.Equal(t, token.Hash(key, pan2), cu.CardHash)
	rn.post(t, "/v1/members", map[string]any{"enrol_id": "E2", "name": "李四", "card_hash": cu.CardHash}, &en)
	r2.write(t, swipe2)
	e = s2.next(t, events.TypeMember)
	require.NoError(t, json.Unmarshal(e.Data, &me))
	require.Equal(t, "李四", me.Member.Member.Name)

	// A garbled swipe: a read error with hints in both languages.
	r1.write(t, "%B6222^ZZ?;zz?\r")
	e = s1.next(t, events.TypeReadError)
	var re ReadErrorEvent
	require.NoError(t, json.Unmarshal(e.Data, &re))
	require.NotEmpty(t, re.Hint)
	require.NotEmpty(t, re.HintZH)

	// T2 never saw T1's member event.
	for len(s2.evs) > 0 {
		ev := <-s2.evs
		require.NotEqual(t, "T1", ev.Till, "T1's event on T2's stream: %s", ev.Type)
	}

	// Reads were counted per device.
	resp, err := http.Get(rn.base + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), `posagent_reads_total{device="msr1",result="member"} 1`)
	require.Contains(t, string(body), `posagent_reads_total{device="msr2",result="unknown"} 1`)
}

func TestRunWithoutDevicesAndShutdown(t *testing.T) {
	rn := start(t)
	var rd api.Readiness
	require.Equal(t, http.StatusOK, rn.get(t, "/readyz", &rd))
	require.True(t, rd.Ready)
	var st api.Status
	rn.get(t, "/v1/status", &st)
	require.Empty(t, st.Devices)
	require.False(t, st.Sync.Configured)

	// The cashier page is served, holding no credential.
	resp, err := http.Get(rn.base + "/")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(page), `id="signin"`)
	require.NotContains(t, string(page), apiTok)

	var e entry.Entry
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R1", "lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 100}}}, &e)
	require.Equal(t, uint64(1), e.Seq)

	// An open event stream does not hold up the shutdown.
	rn.stream(t, "")
	rn.shutdown(t)
	_, err = rn.a.ln.Accept()
	require.Error(t, err, "the listener is closed after Run returns")
	_, _, err = rn.a.led.Backlog()
	require.Error(t, err, "the ledger is closed after Run returns")
}

func TestNewReportsBadSetups(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Ledger.ProgramFile = filepath.Join(cfg.DataDir, "missing.yaml")
	_, err := New(cfg, nil)
	require.ErrorContains(t, err, "ledger.program_file")

	// Port taken: the error says so, and the ledger is released again.
	cfg.Ledger.ProgramFile = ""
	a, err := New(cfg, nil)
	require.NoError(t, err)
	cfg2 := cfg
	cfg2.API.Listen = a.Addr()
	cfg2.DataDir = t.TempDir()
	_, err = New(cfg2, nil)
	require.ErrorContains(t, err, "api.listen")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, a.Run(ctx))
	require.Error(t, a.Run(ctx), "Run twice")
	b, err := New(cfg, nil)
	require.NoError(t, err, "the first agent released its ledger and port")
	require.NoError(t, b.Run(ctx))

	bad := config.Default()
	bad.Till = "no spaces allowed"
	_, err = New(bad, nil)
	require.ErrorContains(t, err, "till")
	var ce *config.Error
	require.True(t, errors.As(err, &ce))
}

func TestDeviceConfigsAndLedgerOptionsFollowTheConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Store, cfg.Till = "S9", "T9"
	cfg.Devices = []config.Device{
		{Name: "msr1", Till: "T1", Path: "/dev/ttyUSB0", Baud: 9600, Decoder: "msr", Debounce: time.Second},
		{Name: "scan", Till: "T2", Transport: "hid", VID: "0c2e", PID: "0b61", HIDReport: "pos", Layout: "de"},
	}
	dc := DeviceConfigs(cfg)
	require.Len(t, dc, 2)
	require.Equal(t, "msr1", dc[0].Name)
	require.Equal(t, "T1", dc[0].Till)
	require.Equal(t, time.Second, dc[0].Debounce)
	require.Equal(t, "hid", dc[1].Transport)
	require.Equal(t, "0b61", dc[1].PID)
	require.Equal(t, "de", dc[1].Layout)

	lo, err := LedgerOptions(cfg)
	require.NoError(t, err)
	require.Equal(t, "S9", lo.Store)
	require.Equal(t, "T9", lo.Till)
	require.Nil(t, lo.Programs)
	cfg.Ledger.ProgramFile = filepath.Join(t.TempDir(), "missing.yaml")
	_, err = LedgerOptions(cfg)
	require.ErrorContains(t, err, "ledger.program_file")
}
