package hq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"posagent/ledger/pin"
	"posagent/ledger/staff"
	"posagent/sync/wire"
)

// CashierStore keeps the stores' cashier accounts. Both stores implement
// it; it is its own interface so the conformance of the ledger part of
// Store stays as it is.
type CashierStore interface {
	// PutCashier adds or replaces the cashier (Store, ID).
	PutCashier(ctx context.Context, c staff.Cashier) error
	// StoreCashiers lists one store's cashiers by id, disabled ones too.
	StoreCashiers(ctx context.Context, store string) ([]staff.Cashier, error)
}

// ErrNoCashiers: the storage keeps no cashiers.
var ErrNoCashiers = errors.New("hq: this storage keeps no cashier accounts")

func (s *Server) cashierStore() (CashierStore, error) {
	cs, ok := s.st.(CashierStore)
	if !ok {
		return nil, ErrNoCashiers
	}
	return cs, nil
}

// CashierRequest adds a cashier at HQ (POST /admin/cashiers). The PIN is
// hashed at once; only the hash is kept and sent to the store's tills.
type CashierRequest struct {
	Store string `json:"store"`
	ID    string `json:"id"`
	Name  string `json:"name"`
	Role  string `json:"role,omitempty"` // default cashier
	PIN   string `json:"pin"`
}

// CashierInfo is a cashier as the admin API lists it: never the hash.
type CashierInfo struct {
	Store     string    `json:"store"`
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

func info(c staff.Cashier) CashierInfo {
	return CashierInfo{Store: c.Store, ID: c.ID, Name: c.Name, Role: c.Role, Disabled: c.Disabled, UpdatedAt: c.UpdatedAt}
}

// knownStore checks that store has a credential, so a typo does not make
// cashiers no till will ever receive.
func (s *Server) knownStore(ctx context.Context, store string) error {
	creds, err := s.st.Credentials(ctx)
	if err != nil {
		return err
	}
	for _, c := range creds {
		if c.Role == RoleStore && c.ID == store {
			return nil
		}
	}
	return fmt.Errorf("%w: store %q has no credential at this HQ; add the store first (hq store add)", ErrNotFound, store)
}

func findCashier(list []staff.Cashier, id string) (staff.Cashier, bool) {
	for _, c := range list {
		if c.ID == id {
			return c, true
		}
	}
	return staff.Cashier{}, false
}

// AddCashier adds a cashier to a store; an id the store already has →
// ErrConflict (change it with ResetCashierPIN, DisableCashier).
func (s *Server) AddCashier(ctx context.Context, r CashierRequest) (CashierInfo, error) {
	cs, err := s.cashierStore()
	if err != nil {
		return CashierInfo{}, err
	}
	if r.Role == "" {
		r.Role = staff.RoleCashier
	}
	if err := s.knownStore(ctx, r.Store); err != nil {
		return CashierInfo{}, err
	}
	if err := pin.CheckFormat(r.PIN); err != nil {
		return CashierInfo{}, fmt.Errorf("cashier %s: %w", r.ID, err)
	}
	h, err := pin.Hash(r.PIN)
	if err != nil {
		return CashierInfo{}, err
	}
	c := staff.Cashier{ID: r.ID, Name: r.Name, Role: r.Role, Store: r.Store, PINHash: h, UpdatedAt: s.o.Now().UTC()}
	if err := c.Validate(); err != nil {
		return CashierInfo{}, err
	}
	list, err := cs.StoreCashiers(ctx, r.Store)
	if err != nil {
		return CashierInfo{}, err
	}
	if _, ok := findCashier(list, r.ID); ok {
		return CashierInfo{}, fmt.Errorf("%w: store %s already has cashier %s; use reset-pin, disable or enable", ErrConflict, r.Store, r.ID)
	}
	defer s.forgetHead()
	return info(c), cs.PutCashier(ctx, c)
}

// ChangeCashier applies f to an existing cashier and stores it; the store's
// tills receive it with their next pull.
func (s *Server) ChangeCashier(ctx context.Context, store, id string, f func(*staff.Cashier) error) (CashierInfo, error) {
	cs, err := s.cashierStore()
	if err != nil {
		return CashierInfo{}, err
	}
	list, err := cs.StoreCashiers(ctx, store)
	if err != nil {
		return CashierInfo{}, err
	}
	c, ok := findCashier(list, id)
	if !ok {
		return CashierInfo{}, fmt.Errorf("%w: store %s has no cashier %s", ErrNotFound, store, id)
	}
	if err := f(&c); err != nil {
		return CashierInfo{}, err
	}
	c.UpdatedAt = s.o.Now().UTC()
	if err := c.Validate(); err != nil {
		return CashierInfo{}, err
	}
	defer s.forgetHead()
	return info(c), cs.PutCashier(ctx, c)
}

// SetCashierDisabled disables or enables a cashier.
func (s *Server) SetCashierDisabled(ctx context.Context, store, id string, disabled bool) (CashierInfo, error) {
	return s.ChangeCashier(ctx, store, id, func(c *staff.Cashier) error { c.Disabled = disabled; return nil })
}

// ResetCashierPIN sets a new PIN.
func (s *Server) ResetCashierPIN(ctx context.Context, store, id, p string) (CashierInfo, error) {
	if err := pin.CheckFormat(p); err != nil {
		return CashierInfo{}, err
	}
	h, err := pin.Hash(p)
	if err != nil {
		return CashierInfo{}, err
	}
	return s.ChangeCashier(ctx, store, id, func(c *staff.Cashier) error { c.PINHash = h; return nil })
}

// Cashiers lists a store's cashiers.
func (s *Server) Cashiers(ctx context.Context, store string) ([]CashierInfo, error) {
	cs, err := s.cashierStore()
	if err != nil {
		return nil, err
	}
	list, err := cs.StoreCashiers(ctx, store)
	out := make([]CashierInfo, 0, len(list))
	for _, c := range list {
		out = append(out, info(c))
	}
	return out, err
}

// CashiersVersion names a cashier list: a hash of its content, so a till
// holding the same list gets nothing and any change (a PIN, a disable)
// gives another version. "" for no cashiers.
func CashiersVersion(list []staff.Cashier) string {
	if len(list) == 0 {
		return ""
	}
	sorted := append([]staff.Cashier(nil), list...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	b, _ := json.Marshal(sorted)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// attachCashiers adds the store's cashier list to a changes page when the
// till holds another version.
func (s *Server) attachCashiers(ctx context.Context, ch *wire.Changes, store, have string, h *headRead) error {
	cs, ok := s.st.(CashierStore)
	if !ok {
		return nil
	}
	list, err := cs.StoreCashiers(ctx, store)
	if err != nil {
		return err
	}
	v := CashiersVersion(list)
	if h != nil {
		s.learnCashiers(h, store, v)
	}
	if v != have {
		for i := range list {
			list[i].Source = ""
		}
		ch.Cashiers, ch.CashiersVersion = list, v
	}
	return nil
}

// ---- admin API ----

func (s *Server) cashierError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ErrNoCashiers):
		writeError(w, http.StatusNotImplemented, "no_cashiers", err.Error())
	default:
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	}
}

func (s *Server) handleCashiers(w http.ResponseWriter, r *http.Request) {
	store := r.URL.Query().Get("store")
	if store == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "name the store: ?store=S001")
		return
	}
	out, err := s.Cashiers(r.Context(), store)
	if err != nil {
		s.cashierError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"cashiers": out})
}

func (s *Server) handleAddCashier(w http.ResponseWriter, r *http.Request) {
	var req CashierRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"store":"S001","id":"c07","name":"...","role":"cashier","pin":"482913"}: `+err.Error())
		return
	}
	c, err := s.AddCashier(r.Context(), req)
	if err != nil {
		s.cashierError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) handleCashierState(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.SetCashierDisabled(r.Context(), r.PathValue("store"), r.PathValue("id"), disabled)
		if err != nil {
			s.cashierError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) handleCashierPIN(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PIN string `json:"pin"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<12)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"pin":"482913"}: `+err.Error())
		return
	}
	c, err := s.ResetCashierPIN(r.Context(), r.PathValue("store"), r.PathValue("id"), req.PIN)
	if err != nil {
		s.cashierError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
