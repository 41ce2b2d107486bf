package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"posagent/ledger/staff"
	"posagent/sync/wire"
)

// maxPages bounds one pull; a store a week behind needs far fewer pages,
// and the next round continues from the stored cursor anyway.
const maxPages = 10000

// pull fetches HQ's changes since the stored cursor, page by page, and
// applies each page before storing its cursor: a crash in between repeats
// a page, which the inbox applies harmlessly.
func (c *Client) pull(ctx context.Context) error {
	cursor, err := c.in.SyncCursor()
	if err != nil {
		return fmt.Errorf("sync client: read sync cursor: %w", err)
	}
	if cursor == "" {
		// A till with no cursor (new, or HQ was rebuilt) takes every member
		// in one snapshot and continues with the feed from where it was
		// taken. An HQ without snapshots is paged from its start.
		if cursor, err = c.startFromSnapshot(ctx); err != nil {
			return err
		}
	}
	reset := false
	cashiers, askCashiers := c.in.(CashierInbox)
	for page := 0; page < maxPages; page++ {
		q := url.Values{}
		if askCashiers && page == 0 {
			// Once a pull: the store's cashier list, when HQ holds
			// another version than ours.
			v, err := cashiers.CashiersVersion()
			if err != nil {
				return fmt.Errorf("sync client: read the cashier list version: %w", err)
			}
			q.Set(wire.QueryCashiers, v)
		}
		ch, err := c.fetchChanges(ctx, cursor, q)
		var he *hqError
		if errors.As(err, &he) && he.code == "bad_cursor" && cursor != "" && !reset {
			// HQ no longer knows our cursor (its store was rebuilt): take a
			// fresh snapshot. HQ is the truth, so applying it again is safe.
			c.log.Warn("HQ refused the sync cursor; pulling a fresh snapshot", "cursor", cursor, "err", err)
			reset, cursor = true, ""
			if err := c.in.SetSyncCursor(""); err != nil {
				return fmt.Errorf("sync client: reset sync cursor: %w", err)
			}
			if cursor, err = c.startFromSnapshot(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("sync client: pull changes after cursor %q: %w", cursor, err)
		}
		if askCashiers && ch.CashiersVersion != "" {
			if err := cashiers.ApplyCashiers(ch.CashiersVersion, ch.Cashiers); err != nil {
				return fmt.Errorf("sync client: apply %d cashiers from HQ: %w", len(ch.Cashiers), err)
			}
			c.log.Info("cashiers from HQ applied", "cashiers", len(ch.Cashiers), "version", ch.CashiersVersion)
		}
		if err := c.applyMemberCodeKeys(ch.MemberCodeKeys); err != nil {
			return err
		}
		if len(ch.Members) > 0 {
			if err := c.in.ApplyMemberStates(ch.Members); err != nil {
				return fmt.Errorf("sync client: apply %d member states from HQ: %w", len(ch.Members), err)
			}
		}
		for _, p := range ch.Programs {
			if err := c.in.ApplyProgram([]byte(p.Source)); err != nil {
				return fmt.Errorf("sync client: apply program version %d from HQ: %w", p.Version, err)
			}
		}
		c.mu.Lock()
		c.st.MembersApplied += int64(len(ch.Members))
		c.st.ProgramsApplied += int64(len(ch.Programs))
		c.mu.Unlock()
		if ch.Cursor != "" && ch.Cursor != cursor {
			if err := c.in.SetSyncCursor(ch.Cursor); err != nil {
				return fmt.Errorf("sync client: store sync cursor: %w", err)
			}
		} else if ch.More {
			return fmt.Errorf("sync client: HQ said there is more but did not move the cursor %q", cursor)
		}
		cursor = ch.Cursor
		if !ch.More {
			c.succeeded(false)
			return nil
		}
	}
	c.succeeded(false)
	return nil
}

// startFromSnapshot takes a snapshot and stores the cursor after it,
// which it returns; "" when HQ serves no snapshot.
func (c *Client) startFromSnapshot(ctx context.Context) (string, error) {
	next, err := c.snapshot(ctx)
	if errors.Is(err, errNoSnapshot) {
		c.log.Info("HQ serves no snapshot; paging through the member feed from its start")
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sync client: member snapshot: %w", err)
	}
	if err := c.in.SetSyncCursor(next); err != nil {
		return "", fmt.Errorf("sync client: store sync cursor: %w", err)
	}
	return next, nil
}

// CashierInbox is an Inbox that also keeps the store's cashiers from HQ
// (the till's ledger); the client then asks for them with the feed.
type CashierInbox interface {
	CashiersVersion() (string, error)
	ApplyCashiers(version string, list []staff.Cashier) error
}

func (c *Client) fetchChanges(ctx context.Context, cursor string, q url.Values) (wire.Changes, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	q.Set("cursor", cursor)
	q.Set("limit", strconv.Itoa(c.cfg.PullLimit))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.URL+wire.PathChanges+"?"+q.Encode(), nil)
	if err != nil {
		return wire.Changes{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	resp, err := c.http.Do(req)
	if err != nil {
		return wire.Changes{}, err
	}
	defer drain(resp.Body)
	if resp.StatusCode/100 != 2 {
		return wire.Changes{}, readError(resp, c.now()).hqError
	}
	var ch wire.Changes
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&ch); err != nil {
		return wire.Changes{}, fmt.Errorf("read HQ changes: %w", err)
	}
	return ch, nil
}
