package hqrun

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// A process held to a fifth of a CPU uses about that, however busy it is.
func TestCapCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a CPU cgroup needs root")
	}
	spin := exec.Command("sh", "-c", "while :; do :; done")
	if err := spin.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = spin.Process.Kill(); _ = spin.Wait() }()
	uncap, err := CapCPU(spin.Process.Pid, 0.2)
	if err != nil {
		t.Skipf("no CPU cgroup here: %v", err)
	}
	defer uncap()
	time.Sleep(200 * time.Millisecond) // let the cap take hold
	c0, t0 := ProcCPU(spin.Process.Pid, false), time.Now()
	time.Sleep(1500 * time.Millisecond)
	used := float64(ProcCPU(spin.Process.Pid, false)-c0) / float64(time.Since(t0))
	t.Logf("held to 0.2 CPU, used %.2f", used)
	// Uncapped, the loop takes a whole CPU (or what the box has left).
	if used > 0.3 {
		t.Fatalf("a process held to 0.2 CPU used %.2f", used)
	}
	uncap()
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/cpu"} { // v2, v1
		if _, err := os.Stat(root + "/posagent-hq-" + strconv.Itoa(spin.Process.Pid)); err == nil {
			t.Fatalf("the cgroup in %s is still there after uncap", root)
		}
	}
}
