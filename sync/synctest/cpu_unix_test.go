//go:build unix

package synctest

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user+system) this process has used, so a
// benchmark can report work done independently of how loaded the box is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
