// Package staff is the cashier account shared by HQ, the wire and the till:
// who may sign in at a store's tills, in which role, with which PIN hash.
// A PIN itself is never stored or sent, only its argon2id hash (ledger/pin).
package staff

import (
	"fmt"
	"time"
	"unicode/utf8"

	"posagent/ledger/entry"
	"posagent/ledger/pin"
)

// Roles. A supervisor can do what a cashier can, and approve the actions a
// cashier may not take alone.
const (
	RoleCashier    = "cashier"
	RoleSupervisor = "supervisor"
)

// Sources of a cashier on a till.
const (
	SourceHQ    = "hq"    // received with the HQ feed; changed only at HQ
	SourceLocal = "local" // added on a till with no HQ (posagent cashier add)
)

// MaxNameLen bounds a cashier's display name, in bytes.
const MaxNameLen = 100

// Cashier is one staff account of a store.
type Cashier struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Store    string `json:"store"`
	Disabled bool   `json:"disabled,omitempty"`
	PINHash  string `json:"pin_hash"`
	// Source is where a till got the account (SourceHQ or SourceLocal);
	// empty at HQ.
	Source    string    `json:"source,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Supervisor reports whether c may approve supervisor-only actions.
func (c Cashier) Supervisor() bool { return c.Role == RoleSupervisor }

// Validate checks every field, naming the one that is wrong.
func (c Cashier) Validate() error {
	if !entry.ValidID(c.ID) {
		return fmt.Errorf("cashier id %q: use letters, digits, '.', '_', '-' (at most %d)", c.ID, entry.MaxIDLen)
	}
	if !entry.ValidID(c.Store) {
		return fmt.Errorf("cashier %s: store id %q is not valid", c.ID, c.Store)
	}
	if c.Name == "" || len(c.Name) > MaxNameLen || !utf8.ValidString(c.Name) {
		return fmt.Errorf("cashier %s: name must be 1 to %d bytes of UTF-8 text", c.ID, MaxNameLen)
	}
	for _, r := range c.Name {
		if r < 0x20 || r == 0x7f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Errorf("cashier %s: name holds a control character (%U)", c.ID, r)
		}
	}
	switch c.Role {
	case RoleCashier, RoleSupervisor:
	default:
		return fmt.Errorf("cashier %s: role %q: use %s or %s", c.ID, c.Role, RoleCashier, RoleSupervisor)
	}
	switch c.Source {
	case "", SourceHQ, SourceLocal:
	default:
		return fmt.Errorf("cashier %s: source %q: use %s or %s", c.ID, c.Source, SourceHQ, SourceLocal)
	}
	if err := pin.Valid(c.PINHash); err != nil {
		return fmt.Errorf("cashier %s: %v", c.ID, err)
	}
	return nil
}
