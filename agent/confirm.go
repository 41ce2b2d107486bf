package agent

import (
	"context"
	"sync"
	"time"
)

// confirmWindow is how long a member's balances, once an HQ look-up applied
// them, count as HQ's for a redemption: a member identified at the start of
// a checkout pays at its end without HQ being asked again, and points spent
// at another store in so short a time are unlikely.
const confirmWindow = 10 * time.Minute

// confirmedMax bounds how many members the till remembers as confirmed; a
// member forgotten early is only asked about again at a redemption.
const confirmedMax = 4096

// confirmedBalances remembers, in memory, when an HQ look-up last applied a
// member's balances.
type confirmedBalances struct {
	mu  sync.Mutex
	at  map[string]time.Time
	now func() time.Time // the clock; tests move it
}

func newConfirmedBalances() *confirmedBalances {
	return &confirmedBalances{at: map[string]time.Time{}, now: time.Now}
}

// add records that HQ's balances of member id were applied now.
func (c *confirmedBalances) add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.at[id]; !ok && len(c.at) >= confirmedMax {
		c.prune(now)
	}
	c.at[id] = now
}

// prune drops the members confirmed longer ago than the window and, when a
// burst of look-ups left more than half the bound within it, others at
// random until half is free: they are only asked about again.
func (c *confirmedBalances) prune(now time.Time) {
	for id, at := range c.at {
		if now.Sub(at) >= confirmWindow {
			delete(c.at, id)
		}
	}
	for id := range c.at {
		if len(c.at) <= confirmedMax/2 {
			break
		}
		delete(c.at, id)
	}
}

// recent tells whether HQ's balances of member id were applied within the
// window.
func (c *confirmedBalances) recent(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.at[id]
	if !ok {
		return false
	}
	if c.now().Sub(at) >= confirmWindow {
		delete(c.at, id)
		return false
	}
	return true
}

// balancesConfirmed tells a redeeming sale or quote whether the till's
// balances of member id are HQ's: applied by a look-up within the window,
// or by one asked now (within hq.member_refresh_timeout). When not, the sale
// falls under the offline redemption cap: HQ answers, but the till's figure
// may be days old and the points spent at another store.
func (a *Agent) balancesConfirmed(ctx context.Context, id string) bool {
	if a.confirmed.recent(id) {
		return true
	}
	v, err := a.led.Member(id)
	if err != nil {
		// Unknown here: the ledger refuses the sale anyway.
		return false
	}
	_, applied := a.refresh(ctx, v)
	return applied
}
