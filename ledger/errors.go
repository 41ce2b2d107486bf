package ledger

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

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
	ErrOfflineCap              = errors.New("offline redemption limit reached")
	ErrLocked                  = errors.New("ledger file is locked")
	ErrCorrupt                 = errors.New("ledger file is corrupt or not a ledger")
	ErrNewerSchema             = errors.New("ledger file has a newer schema")
	ErrOlderSchema             = errors.New("ledger file has an older, unsupported schema")
	ErrDiskFull                = errors.New("disk full")
	ErrInvalid                 = errors.New("invalid request")
	ErrClosed                  = errors.New("ledger is closed")

	// ErrCouponNotFound: the member holds no coupon with that id (an
	// unknown id, or another member's coupon). It is also ErrNotFound.
	ErrCouponNotFound error = &subErr{"coupon not found", ErrNotFound}
	// ErrCouponUsed: an earlier sale used the coupon. It is also ErrInvalid.
	ErrCouponUsed error = &subErr{"coupon already used", ErrInvalid}
)

// subErr is a narrower kind of a sentinel: errors.Is matches both, so
// callers that only know the broad sentinel keep working.
type subErr struct {
	msg    string
	parent error
}

func (e *subErr) Error() string { return e.msg }
func (e *subErr) Unwrap() error { return e.parent }

// OfflineCapError refuses a redemption over the program's daily offline
// cap. The member may well hold the points: only Left more can be redeemed
// today while the till cannot reach HQ. It wraps ErrOfflineCap.
type OfflineCapError struct {
	Member string
	Cap    int64 // points a member may redeem offline per local day
	Used   int64 // already redeemed offline today
	Left   int64 // what may still be redeemed today, in whole redemption steps
}

func (e *OfflineCapError) Error() string {
	if e.Left <= 0 {
		return fmt.Sprintf("%v: member %s has redeemed %d points offline today, the daily offline limit of %d; sell without redeeming points, or redeem once the till reaches HQ again",
			ErrOfflineCap, e.Member, e.Used, e.Cap)
	}
	return fmt.Sprintf("%v: offline the till lets member %s redeem at most %d points a day; %d already redeemed today, so at most %d more now (or redeem the rest once the till reaches HQ again)",
		ErrOfflineCap, e.Member, e.Cap, e.Used, e.Left)
}

func (e *OfflineCapError) Unwrap() error { return ErrOfflineCap }

// Kinds of TimeError.
const (
	TimeAhead        = "ahead"         // later than the ledger's clock plus ClockSkew
	TimeTooOld       = "too_old"       // earlier than the ledger's clock minus MaxBackdate
	TimeBeforeMember = "before_member" // backdated to before the member enrolled
)

// TimeError refuses a request whose time (a sale's receipt time, or any
// request's At) is outside what the ledger accepts. It wraps ErrInvalid.
type TimeError struct {
	Kind   string
	At     time.Time     // the time the request carried
	Now    time.Time     // the ledger's clock
	Limit  time.Duration // ClockSkew (ahead) or MaxBackdate (too old)
	Member string        // before_member: the member and when they enrolled
	Since  time.Time
}

func (e *TimeError) Error() string {
	at := e.At.UTC().Format(time.RFC3339)
	now := e.Now.UTC().Format(time.RFC3339)
	switch e.Kind {
	case TimeAhead:
		return fmt.Sprintf("%v: time %s is more than %v ahead of the till's clock (%s); fix the POS clock, or leave the time out to record it now", ErrInvalid, at, e.Limit, now)
	case TimeTooOld:
		return fmt.Sprintf("%v: time %s is more than %v before the till's clock (%s), too old to record with its own time; leave the time out to record it now, or check the POS clock", ErrInvalid, at, e.Limit, now)
	default:
		return fmt.Sprintf("%v: time %s is before member %s enrolled (%s); check the POS clock, or leave the time out to record it now", ErrInvalid, at, e.Member, e.Since.UTC().Format(time.RFC3339))
	}
}

func (e *TimeError) Unwrap() error { return ErrInvalid }

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
