package hqrun

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU time of processes from /proc (Linux; 0 elsewhere), for the load
// program and benchmarks that print CPU beside wall time on a shared box.

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times.
const clockTick = 100

// ProcCPU reads utime+stime of a live process and, with children set, the
// cutime+cstime of the children it has reaped (0 if it is gone).
func ProcCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// Fields after the name: state is f[0]; utime, stime, cutime, cstime
	// are fields 14-17 of the line, so f[11]..f[14].
	if len(f) < 15 {
		return 0
	}
	n := 2
	if children {
		n = 4
	}
	var ticks int64
	for _, v := range f[11 : 11+n] {
		t, _ := strconv.ParseInt(v, 10, 64)
		ticks += t
	}
	return time.Duration(ticks) * time.Second / clockTick
}

// PostgresCPU is the CPU every postgres process on this machine has used:
// the live ones, plus what the postmaster's reaped children (backends that
// ended) used. Other users' queries count too; the load program says so.
func PostgresCPU() time.Duration {
	ds, _ := filepath.Glob("/proc/[0-9]*/comm")
	var total time.Duration
	for _, d := range ds {
		b, err := os.ReadFile(d)
		if err != nil || strings.TrimSpace(string(b)) != "postgres" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		ppid := 0
		if len(f) > 1 {
			ppid, _ = strconv.Atoi(f[1])
		}
		pb, _ := os.ReadFile("/proc/" + strconv.Itoa(ppid) + "/comm")
		postmaster := strings.TrimSpace(string(pb)) != "postgres"
		total += ProcCPU(pid, postmaster)
	}
	return total
}

// BoxCPU is the machine's busy CPU time so far (all but idle and iowait)
// from /proc/stat.
func BoxCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 { // idle, iowait (guest time is in user already)
			continue
		}
		t, _ := strconv.ParseInt(v, 10, 64)
		busy += t
	}
	return time.Duration(busy) * time.Second / clockTick
}

// Postmaster is the parent of a server process (a backend's pid, from
// pg_backend_pid()): the postmaster of its cluster; 0 if unknown.
func Postmaster(backend int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(backend) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// ClusterCPU is the CPU one PostgreSQL cluster has used: its postmaster's
// live children and those it has reaped. Unlike PostgresCPU it leaves out
// other clusters on the machine.
func ClusterCPU(postmaster int) time.Duration {
	if postmaster <= 0 {
		return 0
	}
	total := ProcCPU(postmaster, true)
	ds, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range ds {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if Postmaster(pid) == postmaster {
			total += ProcCPU(pid, false)
		}
	}
	return total
}
