package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"posagent/ledger"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

// CashierAdmin changes the till's own cashiers (*ledger.Ledger); the
// `posagent cashier` commands use it through /v1/cashiers.
type CashierAdmin interface {
	Cashiers
	PutCashier(ctx context.Context, c staff.Cashier) error
	CashierLockout(id string) (ledger.Lockout, error)
	ClearLockout(ctx context.Context, id string) error
}

// CashierView is a cashier as the admin commands list it: never the hash.
type CashierView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Disabled    bool      `json:"disabled,omitempty"`
	Source      string    `json:"source"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// CashierList answers GET /v1/cashiers.
type CashierList struct {
	Cashiers []CashierView `json:"cashiers"`
}

// PutCashierRequest adds or replaces a cashier. The PIN travels only as
// its hash (the command hashes it).
type PutCashierRequest struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	PINHash  string `json:"pin_hash"`
	Disabled bool   `json:"disabled,omitempty"`
}

// PINRequest sets a cashier's PIN hash.
type PINRequest struct {
	PINHash string `json:"pin_hash"`
}

// admin admits only the POS token: cashier accounts are not managed from
// the cashier page.
func (s *Server) admin(w http.ResponseWriter, r *http.Request) (CashierAdmin, bool) {
	if !principalOf(r).pos {
		s.fail(w, r, http.StatusForbidden, "forbidden",
			"cashier accounts are managed with posagent cashier … on the till (the API token), not from the cashier page",
			"收银员账户需在收银机上用 posagent cashier 命令管理", nil)
		return nil, false
	}
	a, ok := s.o.Cashiers.(CashierAdmin)
	if !ok {
		s.fail(w, r, http.StatusNotFound, "not_found", "this agent keeps no cashier accounts", "本代理没有收银员账户", nil)
		return nil, false
	}
	return a, true
}

func (s *Server) view(a CashierAdmin, c staff.Cashier) CashierView {
	v := CashierView{ID: c.ID, Name: c.Name, Role: c.Role, Disabled: c.Disabled, Source: c.Source}
	if lo, err := a.CashierLockout(c.ID); err == nil && lo.Locked(s.o.Now()) {
		v.LockedUntil = lo.LockedUntil
	}
	return v
}

func (s *Server) listCashiers(w http.ResponseWriter, r *http.Request) {
	a, ok := s.admin(w, r)
	if !ok {
		return
	}
	cs, err := a.Cashiers()
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	out := CashierList{Cashiers: []CashierView{}}
	for _, c := range cs {
		out.Cashiers = append(out.Cashiers, s.view(a, c))
	}
	writeJSON(w, http.StatusOK, out)
}

// fromHQ refuses a change on a till that takes its cashiers from HQ.
func (s *Server) fromHQ(w http.ResponseWriter, r *http.Request) bool {
	if !s.o.CashiersFromHQ {
		return false
	}
	s.fail(w, r, http.StatusConflict, "managed_by_hq",
		"this till takes its cashiers from HQ: change them there (posagent hq cashier …); they arrive with the next sync",
		"本收银机的收银员由总部管理，请在总部修改", nil)
	return true
}

func (s *Server) putCashier(w http.ResponseWriter, r *http.Request) {
	a, ok := s.admin(w, r)
	if !ok {
		return
	}
	var q PutCashierRequest
	if !s.decode(w, r, &q) || s.fromHQ(w, r) {
		return
	}
	c := staff.Cashier{ID: r.PathValue("id"), Name: q.Name, Role: q.Role, PINHash: q.PINHash, Disabled: q.Disabled, UpdatedAt: s.o.Now().UTC()}
	if err := a.PutCashier(r.Context(), c); err != nil {
		s.ledgerError(w, r, err)
		return
	}
	s.log.Info("cashier saved", "cashier", c.ID, "role", c.Role, "disabled", c.Disabled)
	s.answerCashier(w, r, a, c.ID)
}

func (s *Server) answerCashier(w http.ResponseWriter, r *http.Request, a CashierAdmin, id string) {
	c, err := a.Cashier(id)
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(a, c))
}

// changeCashier applies f to an existing cashier of the till's own.
func (s *Server) changeCashier(w http.ResponseWriter, r *http.Request, f func(*staff.Cashier) error, pinReset bool) {
	a, ok := s.admin(w, r)
	if !ok || s.fromHQ(w, r) {
		return
	}
	id := r.PathValue("id")
	c, err := a.Cashier(id)
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	if err := f(&c); err != nil {
		s.invalid(w, r, err.Error(), "请求无效")
		return
	}
	c.UpdatedAt = s.o.Now().UTC()
	if err := a.PutCashier(r.Context(), c); err != nil {
		s.ledgerError(w, r, err)
		return
	}
	if pinReset {
		// A new PIN ends a lock earned with the old one.
		if err := a.ClearLockout(r.Context(), id); err != nil {
			s.ledgerError(w, r, err)
			return
		}
	}
	s.log.Info("cashier changed", "cashier", id, "disabled", c.Disabled, "pin_reset", pinReset)
	s.answerCashier(w, r, a, id)
}

func (s *Server) disableCashier(w http.ResponseWriter, r *http.Request) {
	s.changeCashier(w, r, func(c *staff.Cashier) error { c.Disabled = true; return nil }, false)
}

func (s *Server) enableCashier(w http.ResponseWriter, r *http.Request) {
	s.changeCashier(w, r, func(c *staff.Cashier) error { c.Disabled = false; return nil }, false)
}

func (s *Server) setPIN(w http.ResponseWriter, r *http.Request) {
	var q PINRequest
	if !s.decode(w, r, &q) {
		return
	}
	s.changeCashier(w, r, func(c *staff.Cashier) error {
		if err := pin.Valid(q.PINHash); err != nil {
			return errors.New("pin_hash: " + err.Error())
		}
		c.PINHash = q.PINHash
		return nil
	}, true)
}
