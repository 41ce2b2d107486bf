package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	if timeout <= 0 || timeout > c.cfg.RequestTimeout {
		timeout = c.cfg.RequestTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+wire.PathMembers+url.PathEscape(id), nil)
	if err != nil {
		return l, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	resp, err := c.http.Do(req)
	if err != nil {
		if parent.Err() == nil { // not the caller giving up
			c.unreachable()
		}
		return l, fmt.Errorf("look up member %s at HQ: %w", id, err)
	}
	defer drain(resp.Body)
	if resp.StatusCode/100 != 2 {
		he := readError(resp, c.now()).hqError
		switch {
		case he.status == http.StatusNotFound && he.code == "not_found":
			return l, fmt.Errorf("%w: %s", ErrMemberUnknown, id)
		case he.status == http.StatusTooManyRequests || he.status >= 500:
			c.unreachable()
		}
		return l, fmt.Errorf("look up member %s at HQ: %w", id, he)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&l); err != nil {
		c.unreachable()
		return wire.MemberLookup{}, fmt.Errorf("read HQ's answer to the look-up of member %s: %w", id, err)
	}
	if l.Member.Member.ID != id {
		return wire.MemberLookup{}, fmt.Errorf("HQ answered the look-up of member %s with member %q", id, l.Member.Member.ID)
	}
	return l, nil
}

// unreachable notes that a request a cashier waits for could not reach HQ.
func (c *Client) unreachable() {
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
