//go:build !linux

package pg_test

import (
	"errors"
	"testing"
)

// startCluster is Linux-only (it runs the server as the postgres user and
// ties its life to the test process); elsewhere tests burn ids on
// POSAGENT_TEST_PG instead.
func startCluster(t *testing.T, next uint64) (string, error) {
	return "", errors.New("a throwaway PostgreSQL cluster is only started on Linux")
}
