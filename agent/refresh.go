package agent

import (
	"context"
	"errors"
	"time"

	"posagent/ledger"
	"posagent/sync/client"
	"posagent/sync/wire"
)

// refreshMember gives a member just identified the balances HQ holds now:
// HQ's state, looked up within hq.member_refresh_timeout, is applied when
// its acked marks are the till's, and the member is read again, so the
// till's pending entries stay on top. Whenever HQ cannot say (no HQ,
// refresh off, HQ known unreachable, a timeout, an error, a member HQ does
// not hold, an upload in flight) the till answers from its own view v, as
// it would offline; the read never fails because of HQ.
func (a *Agent) refreshMember(ctx context.Context, v ledger.MemberView) ledger.MemberView {
	v, _ = a.refresh(ctx, v)
	return v
}

// refresh is refreshMember, telling also whether HQ's state was applied;
// the member then counts as confirmed for redemptions (balancesConfirmed).
func (a *Agent) refresh(ctx context.Context, v ledger.MemberView) (ledger.MemberView, bool) {
	timeout := a.cfg.HQ.RefreshTimeout()
	if a.sync == nil || timeout <= 0 {
		return v, false
	}
	start := time.Now()
	done := func(result string) { a.metrics.Refresh(result, time.Since(start)) }
	if a.sync.Offline() {
		done("offline")
		return v, false
	}
	id := v.Member.ID
	l, err := a.sync.LookupMember(ctx, id, timeout)
	switch {
	case errors.Is(err, client.ErrMemberUnknown):
		// Enrolled here and not uploaded yet, most likely.
		a.log.Debug("member not at HQ yet; answered from the till", "member", id)
		done("unknown")
		return v, false
	case err != nil:
		a.log.Info("member balances not refreshed from HQ; answered from the till", "member", id, "err", err)
		done("error")
		return v, false
	}
	states, err := memberStates([]wire.MemberState{l.Member})
	if err != nil {
		a.log.Warn("member state from HQ refused", "member", id, "err", err)
		done("error")
		return v, false
	}
	applied, err := a.led.ApplyLookedUpMember(states[0], l.Acked)
	if err != nil {
		a.log.Warn("applying a member state from HQ", "member", id, "err", err)
		done("error")
		return v, false
	}
	if !applied {
		a.log.Debug("member state from HQ not applied: an upload is in flight", "member", id)
		done("marks")
		return v, false
	}
	a.confirmed.add(id)
	nv, err := a.led.Member(id)
	if err != nil {
		a.log.Warn("reading a member after the refresh from HQ", "member", id, "err", err)
		done("error")
		return v, true
	}
	done("applied")
	return nv, true
}
