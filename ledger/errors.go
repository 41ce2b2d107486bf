package ledger

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Sentinel errors. Every error the ledger returns wraps one of these (test
// with errors.Is) and carries a message that says what to do.
var (
	ErrNotFound                = errors.New("not found")
	ErrKeyConflict             = errors.New("conflicts with an earlier record")
	ErrInsufficientStoredValue = errors.New("insufficient stored value")
	ErrInsufficientPoints      = errors.New("insufficient points")
	ErrLocked                  = errors.New("ledger file is locked")
	ErrCorrupt                 = errors.New("ledger file is corrupt or not a ledger")
	ErrNewerSchema             = errors.New("ledger file has a newer schema")
	ErrOlderSchema             = errors.New("ledger file has an older, unsupported schema")
	ErrDiskFull                = errors.New("disk full")
	ErrInvalid                 = errors.New("invalid request")
	ErrClosed                  = errors.New("ledger is closed")
)

// wrapErr is fmt.Errorf with the sentinel first so errors.Is works and the
// message starts with what went wrong.
func wrapErr(sentinel error, format string, a ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, a...))
}

// storageErr classifies an error from bbolt or the file system. A full disk
// (ENOSPC, or the configured MaxSize) becomes ErrDiskFull.
func storageErr(path string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, berrors.ErrMaxSizeReached) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: ledger %s cannot grow (%v); the commit was not written, earlier ones are safe: free disk space (or raise the size limit) and retry", ErrDiskFull, path, err)
	}
	return err
}

func openErr(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %s is held by another process (another posagent is running?); stop it, or use the running agent (posagent sale / the agent's API) instead of opening the file directly", ErrLocked, path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return corruptErr(path, err.Error())
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("ledger %s: %w; run posagent as the user that owns the file", path, err)
	}
	return storageErr(path, err)
}

func corruptErr(path, why string) error {
	return fmt.Errorf("%w: %s: %s; nothing was changed. Move the file aside (mv %s %s.bad) and restore the latest backup, or start an empty ledger and let HQ resend member data", ErrCorrupt, path, why, path, path)
}

// boltTimeout hides the bbolt import from callers that only need the value.
var _ = bolt.Options{}
