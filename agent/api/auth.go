package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"posagent/agent/session"
	"posagent/ledger"
	"posagent/ledger/staff"
)

// Cashiers is what the API needs to know of the store's cashiers
// (*ledger.Ledger).
type Cashiers interface {
	Cashier(id string) (staff.Cashier, error)
	Cashiers() ([]staff.Cashier, error)
}

// SupervisorRules name the actions a cashier signed in at the page may not
// take alone: the request must carry a supervisor's id and PIN
// (HeaderSupervisor, HeaderSupervisorPIN), and the supervisor is recorded
// in the entry as its approver.
type SupervisorRules struct {
	TopUpOver             int64 // fen; a larger top-up needs a supervisor (0: none does)
	Voids                 bool
	RefundsWithoutReceipt bool
	ManualCardEntry       bool // a card number typed instead of swiped
}

// Headers of a supervisor's approval, sent with the request it approves.
const (
	HeaderSupervisor    = "X-Supervisor-Id"
	HeaderSupervisorPIN = "X-Supervisor-Pin"
)

// addCommand is what a store IT admin runs on a till with no cashiers.
const addCommand = "posagent cashier add --id <id> --name <name> --role supervisor (or add them at HQ: posagent hq cashier add)"

// principal is who made a request: the POS (API token) or a signed-in
// cashier page.
type principal struct {
	pos  bool
	sess *session.Session
}

type principalKey struct{}

func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// auth admits the POS by its bearer token, or a signed-in cashier page by
// its session cookie; a page's writes must also carry the session's CSRF
// token, which a page of another site cannot read.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			tok, ok := bearer(h)
			if !ok || !equal(tok, s.o.APIToken) {
				s.unauthorized(w, r)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{pos: true})))
			return
		}
		// A cashier's own actions keep the session alive; the page's
		// background reads (status, the event stream) do not.
		touch := !safeMethod(r.Method) || r.URL.Path == "/v1/session"
		sess, ok := s.session(r, touch)
		if !ok {
			s.unauthorized(w, r)
			return
		}
		if !safeMethod(r.Method) && !s.sameOrigin(r, sess) {
			s.fail(w, r, http.StatusForbidden, "csrf",
				"this request did not come from the signed-in cashier page; reload the page and sign in again",
				"请求不是来自已登录的收银页面，请刷新页面并重新登录", nil)
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, principal{sess: sess})
		if r.URL.Path == "/v1/events" {
			// The stream must stop at sign-out or idle expiry, or a page
			// left open would go on showing members.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			go s.watchSession(ctx, cancel, sess.Token)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// sessionPoll is how often a running event stream checks its session.
var sessionPoll = time.Second

func (s *Server) watchSession(ctx context.Context, cancel context.CancelFunc, tok string) {
	t := time.NewTicker(sessionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !s.o.Sessions.Alive(tok) {
				cancel()
				return
			}
		}
	}
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="posagent"`)
	s.fail(w, r, http.StatusUnauthorized, "unauthorized",
		"not signed in: at the cashier page sign in with your cashier id and PIN; POS software sends Authorization: Bearer <token> (the token is in the agent's data directory, file api.token)",
		"未登录：请在收银页面用收银员编号和密码登录", nil)
}

func (s *Server) session(r *http.Request, touch bool) (*session.Session, bool) {
	if s.o.Sessions == nil {
		return nil, false
	}
	c, err := r.Cookie(session.CookieName)
	if err != nil {
		return nil, false
	}
	return s.o.Sessions.Lookup(c.Value, touch)
}

// sameOrigin checks a page write: the CSRF header, and the Origin the
// browser names, when it names one, is this agent.
func (s *Server) sameOrigin(r *http.Request, sess *session.Session) bool {
	if !sess.CSRFOK(r.Header.Get(session.CSRFHeader)) {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// SessionInfo answers sign-in and GET /v1/session: who is signed in, the
// CSRF token the page sends on writes, and the idle time that ends it.
type SessionInfo struct {
	Cashier     CashierInfo `json:"cashier"`
	CSRF        string      `json:"csrf"`
	IdleSeconds int64       `json:"idle_seconds"`
}

// CashierInfo is a cashier as the page shows it.
type CashierInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

// SignInRequest is a cashier's id and PIN.
type SignInRequest struct {
	Cashier string `json:"cashier"`
	PIN     string `json:"pin"`
}

func (s *Server) info(sess *session.Session) SessionInfo {
	c := sess.Cashier
	return SessionInfo{Cashier: CashierInfo{ID: c.ID, Name: c.Name, Role: c.Role}, CSRF: sess.CSRF,
		IdleSeconds: int64(s.o.Sessions.Idle() / time.Second)}
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if s.o.Sessions == nil {
		s.fail(w, r, http.StatusNotFound, "not_found", "this agent has no cashier sign-in", "本代理没有收银员登录", nil)
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		// A page of another site must not sign the till in as anyone
		// (login CSRF); a browser names the page's origin.
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			s.fail(w, r, http.StatusForbidden, "csrf",
				"sign in from the cashier page of this till", "请在本收银机的收银页面登录", nil)
			return
		}
	}
	var q SignInRequest
	if !s.decode(w, r, &q) {
		return
	}
	if q.Cashier == "" || q.PIN == "" {
		s.invalid(w, r, "enter your cashier id and PIN", "请输入收银员编号和密码")
		return
	}
	sess, err := s.o.Sessions.SignIn(r.Context(), q.Cashier, q.PIN)
	if err != nil {
		s.cashierError(w, r, err, "")
		return
	}
	if old, ok := s.session(r, false); ok {
		s.o.Sessions.SignOut(old.Token)
	}
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: sess.Token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.log.Info("cashier signed in", "cashier", sess.Cashier.ID)
	writeJSON(w, http.StatusOK, s.info(sess))
}

func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	if p.sess == nil {
		s.invalid(w, r, "this is the POS token, not a cashier session; sign in at the cashier page", "这不是收银员会话")
		return
	}
	writeJSON(w, http.StatusOK, s.info(p.sess))
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if p := principalOf(r); p.sess != nil {
		s.o.Sessions.SignOut(p.sess.Token)
		s.log.Info("cashier signed out", "cashier", p.sess.Cashier.ID)
	}
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// cashierError answers a refused sign-in or approval. role is "supervisor"
// for an approval, so the message says whose PIN was wrong.
func (s *Server) cashierError(w http.ResponseWriter, r *http.Request, err error, role string) {
	var se *session.Error
	if !errors.As(err, &se) {
		s.ledgerError(w, r, err)
		return
	}
	who, whoZH := "cashier", "收银员"
	if role != "" {
		who, whoZH = "supervisor", "主管"
	}
	switch se.Err {
	case session.ErrNoCashiers:
		s.fail(w, r, http.StatusForbidden, "no_cashiers",
			"no cashiers are set up on this till yet; the store IT admin adds the first one: "+addCommand,
			"本收银机尚未设置收银员，请IT管理员先添加："+addCommand, nil)
	case session.ErrUnknown:
		s.fail(w, r, http.StatusForbidden, "unknown_cashier",
			fmt.Sprintf("there is no %s %q on this till: check the id, or ask for the account to be added", who, se.ID),
			fmt.Sprintf("本收银机没有编号为 %s 的%s，请核对编号", se.ID, whoZH), nil)
	case session.ErrDisabled:
		s.fail(w, r, http.StatusForbidden, "cashier_disabled",
			fmt.Sprintf("%s %s is disabled; ask a manager", who, se.ID),
			fmt.Sprintf("%s %s 已停用，请联系店长", whoZH, se.ID), nil)
	case session.ErrWrongPIN:
		s.fail(w, r, http.StatusForbidden, "wrong_pin",
			fmt.Sprintf("wrong PIN for %s %s; %d tries left before the account is locked", who, se.ID, se.TriesLeft),
			fmt.Sprintf("%s %s 密码错误，再错 %d 次将锁定", whoZH, se.ID, se.TriesLeft), nil)
	case session.ErrLocked:
		until := se.Until.In(s.o.Location).Format("15:04")
		s.fail(w, r, http.StatusLocked, "cashier_locked",
			fmt.Sprintf("%s %s is locked after too many wrong PINs until %s; wait, or have the PIN reset", who, se.ID, until),
			fmt.Sprintf("%s %s 因密码错误次数过多已锁定至 %s，请稍后再试或重置密码", whoZH, se.ID, until), nil)
	case session.ErrNotAllowed:
		s.fail(w, r, http.StatusForbidden, "not_supervisor",
			fmt.Sprintf("%s is not a supervisor; a supervisor must approve this", se.ID),
			fmt.Sprintf("%s 不是主管，此操作需主管批准", se.ID), nil)
	default:
		s.fail(w, r, http.StatusForbidden, "forbidden", se.Error(), "操作被拒绝", nil)
	}
}

// actor is who a write is recorded as: the cashier, and the supervisor who
// approved it ("" none).
type actor struct{ cashier, approver string }

// actor resolves the cashier of a write and, when need names a
// supervisor-only action, its approval; it answers the error itself. A
// page's writes are the signed-in cashier's (a body naming another is
// refused). The POS names the cashier in the body; it must be a known,
// enabled cashier of this till. need applies to the page: the POS runs its
// own supervisor flow, and an approval it sends is checked and recorded.
func (s *Server) actor(w http.ResponseWriter, r *http.Request, bodyCashier, need string) (actor, bool) {
	p := principalOf(r)
	var a actor
	if p.sess != nil {
		c := p.sess.Cashier
		if bodyCashier != "" && bodyCashier != c.ID {
			s.fail(w, r, http.StatusForbidden, "cashier_mismatch",
				fmt.Sprintf("cashier %s is signed in, but the request names %s; sign out and let %s sign in", c.ID, bodyCashier, bodyCashier),
				fmt.Sprintf("已登录的收银员是 %s，请求中的是 %s", c.ID, bodyCashier), nil)
			return a, false
		}
		a.cashier = c.ID
		if need == "" {
			return s.approval(w, r, a, false)
		}
		if c.Supervisor() {
			a.approver = c.ID
			return a, true
		}
		return s.approval(w, r, a, need != "" && r.Header.Get(HeaderSupervisor) == "", need)
	}
	if s.o.Cashiers == nil {
		a.cashier = bodyCashier
		return a, true
	}
	if bodyCashier == "" {
		if s.o.POSCashierOptional {
			return s.approval(w, r, a, false)
		}
		all, err := s.o.Cashiers.Cashiers()
		if err != nil {
			s.ledgerError(w, r, err)
			return a, false
		}
		if len(all) == 0 {
			s.cashierError(w, r, &session.Error{Err: session.ErrNoCashiers}, "")
			return a, false
		}
		s.fail(w, r, http.StatusBadRequest, "cashier_required",
			"name the cashier at the register: send \"cashier\": \"<cashier id>\" in the body",
			"请在请求中注明收银员编号", nil)
		return a, false
	}
	c, err := s.o.Cashiers.Cashier(bodyCashier)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		all, lerr := s.o.Cashiers.Cashiers()
		if lerr == nil && len(all) == 0 && s.o.POSCashierOptional {
			a.cashier = bodyCashier // no accounts yet: the POS's id is recorded as sent
			return s.approval(w, r, a, false)
		}
		if lerr == nil && len(all) == 0 {
			s.cashierError(w, r, &session.Error{Err: session.ErrNoCashiers, ID: bodyCashier}, "")
			return a, false
		}
		s.cashierError(w, r, &session.Error{Err: session.ErrUnknown, ID: bodyCashier}, "")
		return a, false
	case err != nil:
		s.ledgerError(w, r, err)
		return a, false
	case c.Disabled:
		s.cashierError(w, r, &session.Error{Err: session.ErrDisabled, ID: bodyCashier}, "")
		return a, false
	}
	a.cashier = c.ID
	return s.approval(w, r, a, false)
}

// approval checks the supervisor headers when present; missing is set
// when the action needs them and they are absent.
func (s *Server) approval(w http.ResponseWriter, r *http.Request, a actor, missing bool, need ...string) (actor, bool) {
	if missing {
		what := need[0]
		s.fail(w, r, http.StatusForbidden, "supervisor_required",
			"a supervisor must approve this ("+what+"): enter the supervisor's id and PIN",
			"此操作（"+supervisorNeedZH[what]+"）需主管批准：请输入主管编号和密码", nil)
		return a, false
	}
	id := r.Header.Get(HeaderSupervisor)
	if id == "" {
		return a, true
	}
	if s.o.Sessions == nil {
		s.invalid(w, r, "this agent has no cashier accounts to approve with", "本代理没有收银员账户")
		return a, false
	}
	if a.cashier == "" {
		s.invalid(w, r, "an approval needs the cashier it approves: send \"cashier\" too", "批准需同时注明收银员")
		return a, false
	}
	sup, err := s.o.Sessions.Approve(r.Context(), id, r.Header.Get(HeaderSupervisorPIN))
	if err != nil {
		s.cashierError(w, r, err, "supervisor")
		return a, false
	}
	a.approver = sup.ID
	s.log.Info("supervisor approved", "cashier", a.cashier, "supervisor", sup.ID, "path", r.URL.Path)
	return a, true
}

// What needs a supervisor, as the answer names it.
const (
	needTopUp     = "a top-up over the limit"
	needVoid      = "a void"
	needNoReceipt = "a refund without receipt"
	needCard      = "a card number typed by hand"
)

var supervisorNeedZH = map[string]string{
	needTopUp: "超过限额的充值", needVoid: "作废交易", needNoReceipt: "无小票退货", needCard: "手工输入卡号",
}

// cardNeed is needCard for a card number typed by hand when the rules say
// so ("" otherwise); a swipe arrives as card_hash.
func (s *Server) cardNeed(card string) string {
	if card != "" && s.o.Supervisor.ManualCardEntry {
		return needCard
	}
	return ""
}
