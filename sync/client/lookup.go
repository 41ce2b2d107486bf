package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"posagent/sync/wire"
)

// ErrMemberUnknown is HQ's answer to a look-up of a member it does not hold
// (enrolled at this till and not uploaded yet, or HQ was rebuilt).
var ErrMemberUnknown = errors.New("HQ holds no such member")

// lookupQuiet is how long after a look-up or a member-code claim could not
// reach HQ the client counts HQ as unreachable (Offline), unless an upload
// or pull works first: the cashier of the next swipe should not wait out
// the same timeout.
const lookupQuiet = 30 * time.Second

// LookupMember asks HQ for one member's state now, with HQ's acked marks of
// the store's tills read with it; timeout bounds the wait (a cashier is
// waiting). ErrMemberUnknown is HQ saying it holds no such member. A
// look-up that cannot reach HQ (no answer, a timeout, HQ busy or failing)
// makes Offline true for a while.
func (c *Client) LookupMember(ctx context.Context, id string, timeout time.Duration) (wire.MemberLookup, error) {
	var l wire.MemberLookup
	parent := ctx
	if timeout > 0 { // within the request timeout doJSON sets
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := c.doJSON(ctx, http.MethodGet, wire.PathMembers+url.PathEscape(id), nil, &l)
	var he *hqError
	if errors.As(err, &he) && he.status == http.StatusNotFound && he.code == "not_found" {
		return l, fmt.Errorf("%w: %s", ErrMemberUnknown, id)
	}
	c.unreachableAfter(parent, err)
	if err != nil {
		return wire.MemberLookup{}, fmt.Errorf("look up member %s at HQ: %w", id, err)
	}
	if l.Member.Member.ID != id {
		return wire.MemberLookup{}, fmt.Errorf("HQ answered the look-up of member %s with member %q", id, l.Member.Member.ID)
	}
	return l, nil
}

// unreachableAfter notes HQ unreachable for lookupQuiet when err, from a
// request a cashier waits for, says HQ could not answer: no answer or none
// in time, HQ busy or failing, an answer that does not read; not the
// caller giving up (parent done) nor a refusal of the request itself.
func (c *Client) unreachableAfter(parent context.Context, err error) {
	var he *hqError
	if err == nil || parent.Err() != nil || (errors.As(err, &he) && he.status != http.StatusTooManyRequests && he.status < 500) {
		return
	}
	c.mu.Lock()
	c.lookupDownUntil = c.now().Add(lookupQuiet)
	c.mu.Unlock()
	// A round soon tells whether HQ is down (Failures) or was only slow.
	c.Nudge()
}

// Offline reports whether HQ is known unreachable now, so asking it would
// only wait for a timeout: no exchange has worked yet, the last round
// failed, or a look-up or claim could not reach HQ since the last upload or
// pull that worked (for lookupQuiet).
func (c *Client) Offline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.LastSuccess.IsZero() || c.st.Failures > 0 || c.now().Before(c.lookupDownUntil)
}
