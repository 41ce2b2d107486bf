package hqrun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CapCPU holds process pid to cpus CPUs (0.25: a quarter of one) with a
// CPU cgroup of its own, so several HQ processes on one test machine each
// stand for a machine of that size. It needs root and a cgroup file
// system with the cpu controller: cgroup v2 (cpu.max) where the cpu
// controller is there, v1 (cpu.cfs_quota_us) otherwise. The returned
// function moves the process out (if it still runs) and removes the group.
func CapCPU(pid int, cpus float64) (func(), error) {
	if cpus <= 0 {
		return nil, fmt.Errorf("hqrun: a CPU cap must be above 0, not %v", cpus)
	}
	const period = 100 * time.Millisecond
	quota := int64(cpus * float64(period/time.Microsecond))
	name := fmt.Sprintf("posagent-hq-%d", pid)
	if root, ok := cgroupV2CPU(); ok {
		dir := filepath.Join(root, name)
		return makeGroup(dir, root, pid, map[string]string{
			"cpu.max": fmt.Sprintf("%d %d", quota, period/time.Microsecond),
		})
	}
	root := "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		return nil, errors.New("hqrun: no cgroup with the cpu controller (v2 cpu.max or v1 /sys/fs/cgroup/cpu); run as root on Linux, or leave the CPU cap off")
	}
	return makeGroup(filepath.Join(root, name), root, pid, map[string]string{
		"cpu.cfs_period_us": strconv.FormatInt(int64(period/time.Microsecond), 10),
		"cpu.cfs_quota_us":  strconv.FormatInt(quota, 10),
	})
}

// cgroupV2CPU is the unified hierarchy's root when it offers the cpu
// controller to its children.
func cgroupV2CPU() (string, bool) {
	const root = "/sys/fs/cgroup"
	b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		return "", false
	}
	for _, c := range strings.Fields(string(b)) {
		if c == "cpu" {
			return root, true
		}
	}
	return "", false
}

func makeGroup(dir, parent string, pid int, files map[string]string) (func(), error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hqrun: make cgroup %s (needs root): %w", dir, err)
	}
	remove := func() {
		// A group holding a process cannot be removed: move it back first.
		_ = os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		for i := 0; i < 50; i++ { // bounded: the kernel may take a moment
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0); err != nil {
			remove()
			return nil, fmt.Errorf("hqrun: set %s to %q: %w", filepath.Join(dir, f), v, err)
		}
	}
	// Threads the process makes after this join the group with it.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		remove()
		return nil, fmt.Errorf("hqrun: move process %d into %s: %w", pid, dir, err)
	}
	return remove, nil
}
