// Package session signs cashiers in at the till: it checks a cashier's PIN
// against the hash in the ledger, locks the account after repeated wrong
// PINs (durably, so a restart or being offline does not reset the count),
// and keeps the signed-in sessions of the cashier page in memory.
//
// A session is a random token carried in an HttpOnly, SameSite=Strict
// cookie, with a second random token (CSRF) the page holds in memory and
// sends as a header on every write. Neither is ever written into the page,
// so a local user who fetches the page gets nothing that authorises a write.
// A restart signs every cashier out.
package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"posagent/ledger"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

// Store is where cashiers and their lockouts live (*ledger.Ledger).
type Store interface {
	Cashier(id string) (staff.Cashier, error)
	Cashiers() ([]staff.Cashier, error)
	CashierLockout(id string) (ledger.Lockout, error)
	RecordSignIn(ctx context.Context, id string, ok bool, now time.Time, maxTries int, lockFor time.Duration) (ledger.Lockout, error)
}

// Defaults of Options.
const (
	DefaultIdle     = 15 * time.Minute
	DefaultMaxTries = 5
	DefaultLockout  = 15 * time.Minute
	// CookieName is the session cookie.
	CookieName = "posagent_session"
	// CSRFHeader carries the session's CSRF token on every write.
	CSRFHeader = "X-CSRF-Token"
)

// Options configures a Manager.
type Options struct {
	Store    Store
	Idle     time.Duration // a session unused this long ends (0: DefaultIdle)
	MaxTries int           // wrong PINs in a row that lock a cashier (0: DefaultMaxTries)
	Lockout  time.Duration // how long a lock lasts (0: DefaultLockout)
	Now      func() time.Time
}

// Errors of sign-in and approval; each says what to do.
var (
	ErrUnknown    = errors.New("unknown cashier id")
	ErrDisabled   = errors.New("cashier account is disabled")
	ErrWrongPIN   = errors.New("wrong PIN")
	ErrLocked     = errors.New("cashier locked after too many wrong PINs")
	ErrNotAllowed = errors.New("not a supervisor")
	ErrNoCashiers = errors.New("no cashiers are set up on this till")
)

// Error is a sign-in or approval refused, with the state the cashier needs.
type Error struct {
	Err       error
	ID        string
	TriesLeft int       // with ErrWrongPIN
	Until     time.Time // with ErrLocked
}

func (e *Error) Error() string {
	switch e.Err {
	case ErrWrongPIN:
		return fmt.Sprintf("%v for cashier %s (%d tries left before a lock)", e.Err, e.ID, e.TriesLeft)
	case ErrLocked:
		return fmt.Sprintf("%v: cashier %s can sign in again at %s, or a PIN reset ends the lock", e.Err, e.ID, e.Until.Format("15:04"))
	}
	return fmt.Sprintf("%v: %s", e.Err, e.ID)
}

func (e *Error) Unwrap() error { return e.Err }

// Session is one signed-in cashier page.
type Session struct {
	Token   string // the cookie's value
	CSRF    string
	Cashier staff.Cashier
	Started time.Time
	seen    time.Time
}

// Manager holds the sessions of the till.
type Manager struct {
	o  Options
	mu sync.Mutex
	by map[string]*Session
	// checking serialises PIN checks per cashier, so parallel guesses
	// cannot all pass the lockout test before the first failure is stored.
	checking sync.Map // id → *sync.Mutex
}

// New makes a Manager.
func New(o Options) (*Manager, error) {
	if o.Store == nil {
		return nil, errors.New("session: Store is required")
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.MaxTries <= 0 {
		o.MaxTries = DefaultMaxTries
	}
	if o.Lockout <= 0 {
		o.Lockout = DefaultLockout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{o: o, by: map[string]*Session{}}, nil
}

// Idle is how long an unused session lasts.
func (m *Manager) Idle() time.Duration { return m.o.Idle }

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Check verifies a cashier's PIN, counting a wrong one towards the lock. It
// returns the cashier when the PIN is right and the account usable.
func (m *Manager) Check(ctx context.Context, id, p string) (staff.Cashier, error) {
	c, err := m.o.Store.Cashier(id)
	if errors.Is(err, ledger.ErrNotFound) {
		if all, lerr := m.o.Store.Cashiers(); lerr == nil && len(all) == 0 {
			return staff.Cashier{}, &Error{Err: ErrNoCashiers, ID: id}
		}
		return staff.Cashier{}, &Error{Err: ErrUnknown, ID: id}
	}
	if err != nil {
		return staff.Cashier{}, err
	}
	mu, _ := m.checking.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	now := m.o.Now()
	lo, err := m.o.Store.CashierLockout(id)
	if err != nil {
		return staff.Cashier{}, err
	}
	if lo.Locked(now) {
		return staff.Cashier{}, &Error{Err: ErrLocked, ID: id, Until: lo.LockedUntil}
	}
	perr := pin.Check(c.PINHash, p)
	if perr != nil && !errors.Is(perr, pin.ErrMismatch) {
		return staff.Cashier{}, fmt.Errorf("cashier %s: the stored PIN hash is unusable (%v); reset the PIN", id, perr)
	}
	ok := perr == nil
	lo, err = m.o.Store.RecordSignIn(ctx, id, ok, now, m.o.MaxTries, m.o.Lockout)
	if err != nil {
		return staff.Cashier{}, err
	}
	switch {
	case !ok && lo.Locked(now):
		m.end(id)
		return staff.Cashier{}, &Error{Err: ErrLocked, ID: id, Until: lo.LockedUntil}
	case !ok:
		return staff.Cashier{}, &Error{Err: ErrWrongPIN, ID: id, TriesLeft: m.o.MaxTries - lo.Failures}
	case c.Disabled:
		// Checked after the PIN so the answer does not tell a guesser
		// which ids exist but are disabled.
		return staff.Cashier{}, &Error{Err: ErrDisabled, ID: id}
	}
	return c, nil
}

// SignIn checks the PIN and starts a session.
func (m *Manager) SignIn(ctx context.Context, id, p string) (*Session, error) {
	c, err := m.Check(ctx, id, p)
	if err != nil {
		return nil, err
	}
	now := m.o.Now()
	s := &Session{Token: token(), CSRF: token(), Cashier: c, Started: now, seen: now}
	m.Sweep()
	m.mu.Lock()
	m.by[s.Token] = s
	m.mu.Unlock()
	return s, nil
}

// Approve checks a supervisor's PIN for one action.
func (m *Manager) Approve(ctx context.Context, id, p string) (staff.Cashier, error) {
	c, err := m.Check(ctx, id, p)
	if err != nil {
		return c, err
	}
	if !c.Supervisor() {
		return staff.Cashier{}, &Error{Err: ErrNotAllowed, ID: id}
	}
	return c, nil
}

// Lookup finds the live session of a cookie value and, with touch, marks
// it used: a cashier's own actions keep a session alive, background reads
// of the page (status, the event stream) do not. A session idle too long,
// or whose cashier was disabled or removed since, is ended.
func (m *Manager) Lookup(tok string, touch bool) (*Session, bool) {
	if tok == "" {
		return nil, false
	}
	now := m.o.Now()
	m.mu.Lock()
	s, ok := m.by[tok]
	if ok && now.Sub(s.seen) >= m.o.Idle {
		delete(m.by, tok)
		ok = false
	}
	if ok && touch {
		s.seen = now
	}
	m.mu.Unlock()
	if !ok {
		return nil, false
	}
	c, err := m.o.Store.Cashier(s.Cashier.ID)
	if err != nil || c.Disabled {
		m.SignOut(tok)
		return nil, false
	}
	return s, true
}

// Alive reports whether the session is still live, without marking it used
// (a long request, the event stream, checks it while it runs).
func (m *Manager) Alive(tok string) bool {
	_, ok := m.Lookup(tok, false)
	return ok
}

// CSRFOK reports whether h is the session's CSRF token.
func (s *Session) CSRFOK(h string) bool {
	return h != "" && subtle.ConstantTimeCompare([]byte(h), []byte(s.CSRF)) == 1
}

// SignOut ends a session.
func (m *Manager) SignOut(tok string) {
	m.mu.Lock()
	delete(m.by, tok)
	m.mu.Unlock()
}

// end ends every session of a cashier (locked out).
func (m *Manager) end(id string) {
	m.mu.Lock()
	for t, s := range m.by {
		if s.Cashier.ID == id {
			delete(m.by, t)
		}
	}
	m.mu.Unlock()
}

// Sweep drops sessions idle too long (memory only; Lookup refuses them anyway).
func (m *Manager) Sweep() {
	now := m.o.Now()
	m.mu.Lock()
	for t, s := range m.by {
		if now.Sub(s.seen) >= m.o.Idle {
			delete(m.by, t)
		}
	}
	m.mu.Unlock()
}
