//go:build !linux

package evdev

// Supported reports whether evdev capture works on this OS.
func Supported() error { return ErrNotSupported }

// Device is unavailable off Linux.
type Device struct{}

// Open always fails off Linux with ErrNotSupported.
func Open(path string) (*Device, error) { return nil, ErrNotSupported }

// Read is never reached.
func (d *Device) Read(p []byte) (int, error) { return 0, ErrNotSupported }

// Close is a no-op.
func (d *Device) Close() error { return nil }

// List fails off Linux.
func List() ([]InputDevice, error) { return nil, ErrNotSupported }
