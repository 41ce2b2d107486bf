package agent

import (
	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/session"
	"posagent/ledger"
)

// newSessions is cashier sign-in at the page, on the ledger's cashiers.
func newSessions(cfg config.Config, led *ledger.Ledger) (*session.Manager, error) {
	return session.New(session.Options{Store: led, Idle: cfg.Cashiers.IdleTimeout,
		MaxTries: cfg.Cashiers.MaxPINTries, Lockout: cfg.Cashiers.Lockout})
}

// supervisorRules maps the config's supervisor section to the API's rules.
func supervisorRules(cfg config.Config) api.SupervisorRules {
	s := cfg.Cashiers.Supervisor
	return api.SupervisorRules{TopUpOver: s.TopUpLimit(), Voids: s.NeedsForVoids(),
		RefundsWithoutReceipt: s.NeedsForRefundsWithoutReceipt(), ManualCardEntry: s.ManualCardEntry}
}

// warnCashiers tells the store IT admin at start what a till without
// cashiers needs: nobody can sign in at the page, and the POS's writes are
// refused unless the config lets them through for now.
func (a *Agent) warnCashiers() {
	cs, err := a.led.Cashiers()
	if err != nil || len(cs) > 0 {
		return
	}
	if a.cfg.HQ.URL != "" {
		a.log.Warn("no cashiers on this till yet: they come from HQ with the next sync (add them there: posagent hq cashier add)")
		return
	}
	a.log.Warn("no cashiers on this till: add the first with posagent cashier add --id <id> --name <name> --role supervisor",
		"pos_writes", map[bool]string{true: "allowed without a cashier (cashiers.allow_pos_without_cashier)", false: "refused until a cashier exists"}[a.cfg.Cashiers.AllowPOSWithoutCashier])
}
