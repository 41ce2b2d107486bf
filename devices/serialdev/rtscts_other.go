//go:build !linux

package serialdev

import "errors"

const rtsctsSupported = false

func enableRTSCTS(string) error {
	return errors.New("RTS/CTS flow control is not supported on this OS")
}
