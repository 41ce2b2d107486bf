// Package hidtest replays recorded HID reports through the same
// hiddev.ReportSource interface the karalabe backend implements.
package hidtest

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"posagent/devices/hiddev"
)

// Load reads a recording: one "milliseconds hex-report" per line, '#'
// starts a comment.
func Load(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"ms hex\"", path, n)
		}
		b, err := hex.DecodeString(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

// MustLoad is Load for tests: a recording that cannot be read fails t.
func MustLoad(t testing.TB, path string) [][]byte {
	t.Helper()
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ErrUnplugged is what a replay returns after its reports when Unplug is set.
var ErrUnplugged = errors.New("hidapi: device disconnected")

// Replay is a ReportSource that yields reports, then blocks until Close
// (or fails with ErrUnplugged when built with unplug).
type Replay struct {
	mu      sync.Mutex
	reports [][]byte
	unplug  bool
	closed  chan struct{}
	once    sync.Once
}

// NewReplay replays reports; with unplug the device vanishes after them.
func NewReplay(reports [][]byte, unplug bool) *Replay {
	return &Replay{reports: reports, unplug: unplug, closed: make(chan struct{})}
}

// Read returns the next report.
func (r *Replay) Read(p []byte) (int, error) {
	r.mu.Lock()
	if len(r.reports) > 0 {
		n := copy(p, r.reports[0])
		r.reports = r.reports[1:]
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	if r.unplug {
		return 0, ErrUnplugged
	}
	<-r.closed
	return 0, errors.New("hid device closed")
}

// Close unblocks Read.
func (r *Replay) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// Backend is a hiddev.Backend over recordings: Open hands out the next
// queued replay for that path.
type Backend struct {
	mu      sync.Mutex
	devices []hiddev.DeviceInfo
	queue   map[string][]*Replay
	Opened  []string
}

// NewBackend lists devs.
func NewBackend(devs ...hiddev.DeviceInfo) *Backend {
	return &Backend{devices: devs, queue: map[string][]*Replay{}}
}

// SetDevices replaces the device list (plug/unplug).
func (b *Backend) SetDevices(devs ...hiddev.DeviceInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.devices = devs
}

// Queue adds a replay handed out by the next Open of path.
func (b *Backend) Queue(path string, r *Replay) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue[path] = append(b.queue[path], r)
}

// Enumerate lists the devices.
func (b *Backend) Enumerate() ([]hiddev.DeviceInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]hiddev.DeviceInfo(nil), b.devices...), nil
}

// Open returns the next queued replay for the device, or a silent device.
func (b *Backend) Open(d hiddev.DeviceInfo) (hiddev.ReportSource, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Opened = append(b.Opened, d.Path)
	q := b.queue[d.Path]
	if len(q) == 0 {
		return NewReplay(nil, false), nil
	}
	b.queue[d.Path] = q[1:]
	return q[0], nil
}

// OpenedPaths returns the paths opened so far.
func (b *Backend) OpenedPaths() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.Opened...)
}
