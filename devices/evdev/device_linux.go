//go:build linux

package evdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// EVIOCGRAB is _IOW('E', 0x90, int).
const eviocgrab = 0x40044590

// Supported reports whether evdev capture works on this OS.
func Supported() error { return nil }

// Device is an open, exclusively grabbed input device.
type Device struct {
	f *os.File
}

// Open opens path and grabs it exclusively: while grabbed, its key presses
// reach only us, not the desktop or the POS application.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("open %s: permission denied: add the service user to the group the udev rule grants (scripts/udev/99-posagent.rules): %w", path, err)
		}
		return nil, err
	}
	if err := ioctlInt(f, eviocgrab, 1); err != nil {
		f.Close()
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s: %w", path, ErrBusy)
		}
		return nil, fmt.Errorf("grab %s: %w", path, err)
	}
	return &Device{f: f}, nil
}

func ioctlInt(f *os.File, req uint, v int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		// EVIOCGRAB takes its argument by value, not by pointer.
		ierr = unix.IoctlSetInt(int(fd), req, v)
	}); err != nil {
		return err
	}
	return ierr
}

// Read reads raw input_event bytes; Close unblocks it.
func (d *Device) Read(p []byte) (int, error) { return d.f.Read(p) }

// Close releases the grab and the device.
func (d *Device) Close() error {
	_ = ioctlInt(d.f, eviocgrab, 0)
	return d.f.Close()
}

// List returns the input devices the kernel knows.
func List() ([]InputDevice, error) {
	f, err := os.Open("/proc/bus/input/devices")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseDevices(f)
}
