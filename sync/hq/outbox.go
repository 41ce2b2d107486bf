package hq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"posagent/sync/hq/messages"
)

// The outbox keeps the member messages HQ owes the chain's gateway. The
// triggers write them in the transaction of the change that caused them
// (the stores' EnqueueTx), so a crash neither loses nor doubles one; the
// sender (OutboxSender) claims due ones under a lease, posts them and acks
// them. A sender that dies mid-delivery leaves its lease to expire and the
// message goes out again with the same id: delivery is at least once from
// HQ and exactly once by id at a gateway that drops repeated ids.

// Outbox message states.
const (
	MsgPending    = "pending"    // waiting to be sent (or leased to a sender)
	MsgSent       = "sent"       // the gateway took it
	MsgDead       = "dead"       // given up; hq messages retry puts it back
	MsgSuppressed = "suppressed" // consent withdrawn before it went out
)

// Consent states.
const (
	ConsentGranted   = "granted"   // the member agreed to messages
	ConsentWithdrawn = "withdrawn" // consent taken back at HQ or a store
	ConsentOptedOut  = "opted_out" // the member opted out through the gateway
)

// ErrLeaseLost: the message is no longer leased to this claim (the lease
// expired and another sender took it, or it was acked already).
var ErrLeaseLost = errors.New("hq: message lease lost")

// ErrNoOutbox: the storage keeps no outbox.
var ErrNoOutbox = errors.New("hq: this storage keeps no message outbox")

// OutboxMessage is a message with its delivery state.
type OutboxMessage struct {
	messages.Message
	Status string `json:"status"`
	// Attempts counts claims: a sender that dies mid-delivery used one.
	Attempts  int       `json:"attempts"`
	DueAt     time.Time `json:"due_at,omitzero"` // not sent before (backoff, quiet hours, lease)
	LastError string    `json:"last_error,omitempty"`
	DoneAt    time.Time `json:"done_at,omitzero"` // sent, dead or suppressed at
}

// Claimed is a message leased to one sender until Until. Token names the
// claim: Ack, Fail, Defer and Suppress take effect only while it holds.
type Claimed struct {
	messages.Message
	Attempts int       `json:"attempts"` // including this one
	Token    string    `json:"token"`
	Until    time.Time `json:"until"`
}

// OutboxFilter selects messages to list.
type OutboxFilter struct {
	Status string // one of the Msg states; "" for all
	Member string // "" for all
	Limit  int    // [100]
}

// Consent is a member's consent to messages as it stands.
type Consent struct {
	Member string    `json:"member"`
	Status string    `json:"status"` // ConsentGranted | ConsentWithdrawn | ConsentOptedOut
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"`
}

// Allows reports whether the member may be sent messages.
func (c Consent) Allows() bool { return c.Status == ConsentGranted }

// ConsentEvent is one change of consent as recorded, with its time.
type ConsentEvent = Consent

// Outbox is HQ's message outbox. Both stores implement it; it is its own
// interface (like CashierStore) so Store stays as it is.
type Outbox interface {
	// Enqueue stores the messages of members who consented and have not
	// opted out; others are dropped. An id already stored stays as it is.
	Enqueue(ctx context.Context, ms []messages.Message) error
	// ClaimMessages leases up to n pending messages due at now (DueAt
	// passed, no live lease) to one claim until now+lease, oldest due
	// first, and counts an attempt on each. Any number of senders may
	// claim at once: a message goes to one claim at a time.
	ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Claimed, error)
	// AckMessage marks a claimed message sent. Lease gone → ErrLeaseLost.
	AckMessage(ctx context.Context, c Claimed, at time.Time) error
	// FailMessage records a failed attempt: pending again from next, or
	// dead when next is zero. Lease gone → ErrLeaseLost.
	FailMessage(ctx context.Context, c Claimed, at time.Time, reason string, next time.Time) error
	// DeferMessage puts a claimed message back until until without
	// counting the attempt (quiet hours). Lease gone → ErrLeaseLost.
	DeferMessage(ctx context.Context, c Claimed, until time.Time) error
	// SuppressMessage ends a claimed message unsent (no consent at send
	// time). Lease gone → ErrLeaseLost.
	SuppressMessage(ctx context.Context, c Claimed, at time.Time, reason string) error
	// Messages lists the last Limit messages that match, in the order
	// they were enqueued.
	Messages(ctx context.Context, f OutboxFilter) ([]OutboxMessage, error)
	// RetryMessage puts a dead message back, due at once with no attempts;
	// unknown or not dead → ErrNotFound.
	RetryMessage(ctx context.Context, id string) error

	// SetConsent records that the member granted (or withdrew) consent at
	// at, from source (e.g. "store:S001", "hq:admin"). OptOut records an
	// opt-out. The latest by at stands; every change is kept in the log.
	SetConsent(ctx context.Context, member string, granted bool, at time.Time, source string) error
	OptOut(ctx context.Context, member string, at time.Time, source string) error
	// Consent is the member's consent as it stands; none recorded →
	// Status "" (which allows nothing).
	Consent(ctx context.Context, member string) (Consent, error)
	// ConsentLog lists the member's consent changes, oldest first.
	ConsentLog(ctx context.Context, member string) ([]ConsentEvent, error)
}

// CheckMessages refuses messages the outbox cannot hold or send.
func CheckMessages(ms []messages.Message) error {
	for _, m := range ms {
		var miss []string
		for _, f := range []struct{ name, v string }{{"id", m.ID}, {"kind", string(m.Kind)}, {"member", m.Member}, {"to", m.To}, {"text", m.Text}} {
			if strings.TrimSpace(f.v) == "" {
				miss = append(miss, f.name)
			}
		}
		if m.CreatedAt.IsZero() {
			miss = append(miss, "created_at")
		}
		if len(miss) > 0 {
			return fmt.Errorf("hq: message %q lacks %s", m.ID, strings.Join(miss, ", "))
		}
		if len(m.ID) > 200 {
			return fmt.Errorf("hq: message id %.40q… is longer than 200 bytes", m.ID)
		}
	}
	return nil
}

// MessageDue is when a new message may first be sent: NotBefore if set,
// else when its cause happened.
func MessageDue(m messages.Message) time.Time {
	if !m.NotBefore.IsZero() {
		return m.NotBefore
	}
	return m.CreatedAt
}

// CheckConsent refuses a consent change without a member or time.
func CheckConsent(member string, at time.Time) error {
	if strings.TrimSpace(member) == "" {
		return errors.New("hq: consent needs a member id")
	}
	if at.IsZero() {
		return fmt.Errorf("hq: consent of %s needs its time", member)
	}
	return nil
}
