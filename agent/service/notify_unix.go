//go:build !windows

package service

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Notify sends a state string (e.g. "READY=1", "STOPPING=1", "STATUS=…") to
// systemd over $NOTIFY_SOCKET, as sd_notify(3) does. Without the variable
// (not started by systemd with Type=notify) it does nothing. Written with the
// standard library so the agent carries no libsystemd binding.
func Notify(state string) error {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return nil
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:] // Linux abstract socket namespace
	} else if !strings.HasPrefix(sock, "/") {
		return fmt.Errorf("NOTIFY_SOCKET=%q is neither a path nor an abstract socket", sock)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
