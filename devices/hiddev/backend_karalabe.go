//go:build cgo && !nohid

package hiddev

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/karalabe/hid"
)

// Compiled reports whether this binary has HID support.
const Compiled = true

// System returns the karalabe/hid (hidapi) backend.
func System() (Backend, error) {
	if !hid.Supported() {
		return nil, fmt.Errorf("HID is not supported on this platform by karalabe/hid: use serial or keyboard-wedge mode")
	}
	return karalabe{}, nil
}

type karalabe struct{}

func (karalabe) Enumerate() ([]DeviceInfo, error) {
	infos, err := hid.Enumerate(0, 0)
	if err != nil {
		return nil, fmt.Errorf("enumerating HID devices: %w", err)
	}
	out := make([]DeviceInfo, 0, len(infos))
	for _, i := range infos {
		out = append(out, DeviceInfo{
			Path: i.Path, VID: i.VendorID, PID: i.ProductID, Serial: i.Serial,
			Manufacturer: i.Manufacturer, Product: i.Product,
			UsagePage: i.UsagePage, Usage: i.Usage, Interface: i.Interface,
		})
	}
	return out, nil
}

func (karalabe) Open(d DeviceInfo) (ReportSource, error) {
	infos, err := hid.Enumerate(d.VID, d.PID)
	if err != nil {
		return nil, err
	}
	for _, i := range infos {
		if i.Path != d.Path {
			continue
		}
		dev, err := i.Open()
		if err != nil {
			msg := strings.ToLower(err.Error())
			if strings.Contains(msg, "busy") || strings.Contains(msg, "access") {
				return nil, fmt.Errorf("open HID %s (%s): %w: %v", d.ID(), d.Path, ErrBusy, err)
			}
			return nil, fmt.Errorf("open HID %s (%s): %w", d.ID(), d.Path, err)
		}
		return &karalabeDev{dev: dev}, nil
	}
	return nil, fmt.Errorf("HID device %s (%s) disappeared before it could be opened", d.ID(), d.Path)
}

// karalabeDev polls with a short timeout instead of blocking forever:
// hidapi must not close a handle another thread is reading from, so Close
// waits for the in-flight poll to return before it closes.
type karalabeDev struct {
	mu     sync.Mutex
	dev    hid.Device
	closed atomic.Bool
}

var errClosed = errors.New("HID device closed")

const pollMillis = 100

func (k *karalabeDev) Read(p []byte) (int, error) {
	for {
		if k.closed.Load() {
			return 0, errClosed
		}
		k.mu.Lock()
		n, err := k.dev.ReadTimeout(p, pollMillis)
		k.mu.Unlock()
		if err != nil || n > 0 {
			return n, err
		}
	}
}

func (k *karalabeDev) Close() error {
	if k.closed.Swap(true) {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dev.Close()
}
