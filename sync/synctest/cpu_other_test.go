//go:build !unix

package synctest

import "time"

func cpuTime() time.Duration { return 0 }
