//go:build !linux

package hqrun

import "errors"

// CapCPU needs Linux cgroups.
func CapCPU(pid int, cpus float64) (func(), error) {
	return nil, errors.New("hqrun: a CPU cap needs Linux cgroups")
}
