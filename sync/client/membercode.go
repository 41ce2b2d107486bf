package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"posagent/sync/wire"
)

// MemberCodeInbox is an Inbox that also keeps HQ's member-code public keys
// (the till's ledger); the client applies them when HQ's set changes.
type MemberCodeInbox interface {
	ApplyMemberCodeKeys(keys []wire.MemberCodeKey) error
}

// MemberCodeClaimOutbox is an Outbox that also queues the claims of codes
// accepted while HQ was unreachable; the client uploads them each round.
type MemberCodeClaimOutbox interface {
	PendingMemberCodeClaims(limit int) ([]wire.MemberCodeClaim, error)
	MemberCodeClaimsSent(codes []string) error
}

// ErrMemberCodeExpired and ErrMemberCodeWrong are HQ's answers to a short
// code that is too old or matches no member.
var (
	ErrMemberCodeExpired = errors.New("the short code has expired")
	ErrMemberCodeWrong   = errors.New("the short code does not match")
)

// claimsPerUpload is how many queued claims go in one request (HQ takes 500).
const claimsPerUpload = 500

// applyMemberCodeKeys stores the keys of a changes page when they differ
// from the last ones stored (a till's ledger write per change, not per pull).
func (c *Client) applyMemberCodeKeys(keys []wire.MemberCodeKey) error {
	in, ok := c.in.(MemberCodeInbox)
	if !ok || keys == nil {
		return nil
	}
	c.mu.Lock()
	same := c.mcKeys != nil && slices.EqualFunc(c.mcKeys, keys, func(a, b wire.MemberCodeKey) bool {
		return a.ID == b.ID && bytes.Equal(a.Public, b.Public) && a.NotAfter.Equal(b.NotAfter)
	})
	c.mu.Unlock()
	if same {
		return nil
	}
	if err := in.ApplyMemberCodeKeys(keys); err != nil {
		return fmt.Errorf("sync client: apply %d member-code keys from HQ: %w", len(keys), err)
	}
	c.mu.Lock()
	c.mcKeys = keys
	c.mu.Unlock()
	c.log.Info("member-code keys from HQ applied", "keys", len(keys))
	return nil
}

// uploadClaims sends the queued member-code claims and drops those HQ took.
func (c *Client) uploadClaims(ctx context.Context) error {
	q, ok := c.out.(MemberCodeClaimOutbox)
	if !ok {
		return nil
	}
	for range 100 { // bounded: 50000 claims a round, the rest next round
		pending, err := q.PendingMemberCodeClaims(claimsPerUpload)
		if err != nil || len(pending) == 0 {
			return err
		}
		res, err := c.postClaims(ctx, pending)
		var he *hqError
		if errors.As(err, &he) && (he.status == http.StatusNotFound || he.status == http.StatusNotImplemented) {
			// An HQ that takes no claims (older, or storage without member
			// codes) must not stall the entries: keep them queued.
			c.log.Warn("HQ takes no member-code claims; they stay queued", "claims", len(pending), "status", he.status)
			return nil
		}
		if err != nil {
			return fmt.Errorf("sync client: upload %d member-code claims: %w", len(pending), err)
		}
		codes := make([]string, 0, len(pending))
		for i, p := range pending {
			codes = append(codes, p.Code)
			if i < len(res) && res[i].Repeat {
				c.log.Warn("a member code accepted offline had been used at another till first", "member", p.Member,
					"till", p.Till, "first_store", res[i].FirstStore, "first_till", res[i].FirstTill)
			}
		}
		if err := q.MemberCodeClaimsSent(codes); err != nil {
			return fmt.Errorf("sync client: drop uploaded member-code claims: %w", err)
		}
		if len(pending) < claimsPerUpload {
			return nil
		}
	}
	return nil
}

// ClaimMemberCode claims one code at HQ now, for a till deciding whether to
// accept it; timeout bounds the wait (the cashier is waiting). An error
// means HQ could not be asked: accept offline and queue the claim.
func (c *Client) ClaimMemberCode(ctx context.Context, cl wire.MemberCodeClaim, timeout time.Duration) (wire.MemberCodeClaimResult, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := c.postClaims(ctx, []wire.MemberCodeClaim{cl})
	// The member's refresh that follows need not wait for HQ too.
	c.unreachableAfter(parent, err)
	if err != nil {
		return wire.MemberCodeClaimResult{}, err
	}
	if len(res) != 1 {
		return wire.MemberCodeClaimResult{}, fmt.Errorf("HQ answered %d results to one claim", len(res))
	}
	return res[0], nil
}

// CheckShortCode asks HQ whether a typed short code is a member's current
// code, and claims it for till. ErrMemberCodeWrong or ErrMemberCodeExpired
// are HQ's refusals; any other error means HQ could not answer.
func (c *Client) CheckShortCode(ctx context.Context, short, till string, seen time.Time, timeout time.Duration) (wire.MemberCodeShortAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var ans wire.MemberCodeShortAnswer
	err := c.postJSON(ctx, wire.PathMemberCodeShort, wire.MemberCodeShort{Short: short, Till: till, SeenAt: seen.UTC()}, &ans)
	var he *hqError
	if errors.As(err, &he) {
		switch he.code {
		case "member_code_expired":
			return ans, ErrMemberCodeExpired
		case "member_code_wrong", "bad_request":
			return ans, fmt.Errorf("%w: %s", ErrMemberCodeWrong, he.message)
		}
	}
	return ans, err
}

func (c *Client) postClaims(ctx context.Context, cs []wire.MemberCodeClaim) ([]wire.MemberCodeClaimResult, error) {
	var a wire.MemberCodeClaimAnswer
	if err := c.postJSON(ctx, wire.PathMemberCodeClaims, wire.MemberCodeClaims{Claims: cs}, &a); err != nil {
		return nil, err
	}
	return a.Results, nil
}

func (c *Client) postJSON(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.doJSON(ctx, http.MethodPost, path, bytes.NewReader(b), out)
}

// doJSON sends a request with a JSON body (nil: none) to HQ and decodes
// its JSON answer into out; a refusal is an *hqError.
func (c *Client) doJSON(ctx context.Context, method, path string, body io.Reader, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if resp.StatusCode/100 != 2 {
		return readError(resp, c.now()).hqError
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil {
		return fmt.Errorf("read HQ's answer to %s: %w", path, err)
	}
	return nil
}
