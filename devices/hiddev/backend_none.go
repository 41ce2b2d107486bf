//go:build !cgo || nohid

package hiddev

// Compiled reports whether this binary has HID support.
const Compiled = false

// System always fails: HID support is not compiled in.
func System() (Backend, error) { return nil, ErrNotCompiled }
