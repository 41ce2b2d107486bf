package main

import (
	"os"
	"time"

	"posagent/sync/hq/hqrun"
)

func procCPU(pid int, children bool) time.Duration { return hqrun.ProcCPU(pid, children) }
func postgresCPU() time.Duration                   { return hqrun.PostgresCPU() }
func boxCPU() time.Duration                        { return hqrun.BoxCPU() }

// selfCPU is this process's user+system time (0 where there is no /proc).
func selfCPU() time.Duration { return procCPU(os.Getpid(), false) }
