// Package devtest holds test helpers for the devices packages: pseudo-
// terminal "readers" and event waits with generous deadlines.
package devtest

import (
	"os"
	"path/filepath"
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
