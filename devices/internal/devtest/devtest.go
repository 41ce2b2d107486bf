// Package devtest holds test helpers for the devices packages: pseudo-
// terminal "readers" and event waits with generous deadlines.
package devtest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// Pty is a fake serial reader: the test writes to Master, the code under
// test opens Path (the slave) with go.bug.st/serial.
type Pty struct {
	Master, Slave *os.File
	Path          string
}

// NewPty opens a pseudo-terminal; it is closed at test end.
func NewPty(t testing.TB) *Pty {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	p := &Pty{Master: m, Slave: s, Path: s.Name()}
	t.Cleanup(func() { p.Unplug() })
	return p
}

// Unplug closes both sides, as pulling the USB cable does to a ttyUSB.
func (p *Pty) Unplug() {
	p.Master.Close()
	p.Slave.Close()
}

// Write writes to the reader side.
func (p *Pty) Write(t testing.TB, b []byte) {
	t.Helper()
	if _, err := p.Master.Write(b); err != nil {
		t.Fatalf("write to pty master: %v", err)
	}
}

// Link points the symlink at link to target, atomically replacing it.
func Link(t testing.TB, target, link string) {
	t.Helper()
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// TempLink is a symlink path in a fresh temp dir.
func TempLink(t testing.TB) string { return filepath.Join(t.TempDir(), "reader") }

// Wait is the deadline for things that are normally instant; generous for
// slow, loaded CI machines.
const Wait = 20 * time.Second

// Buffer is a bytes.Buffer safe for a logger or command writing from one
// goroutine while the test reads from another.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ReportLatency reports the median, 99th percentile and maximum of lat in
// microseconds as benchmark metrics (figures, never asserted).
func ReportLatency(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}
