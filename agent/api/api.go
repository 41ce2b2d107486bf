// Package api is the agent's local HTTP API for POS software and the
// cashier page: member lookup, quote, sale, refund, void, enrolment, top-up,
// the event stream, health, readiness and metrics.
//
// Every /v1 call needs "Authorization: Bearer <token>" (the install's API
// token, for POS software) or the session cookie of a cashier signed in at
// the cashier page (auth.go). Bodies and answers
// are JSON; errors are {"code","message","message_zh","detail"} with a
// message a cashier can act on. Money is integer fen, points integers.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/agent/session"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// Ledger is what the API needs from the till ledger (*ledger.Ledger).
type Ledger interface {
	Quote(ctx context.Context, r ledger.SaleRequest) (loyalty.Quote, error)
	CommitSale(ctx context.Context, r ledger.SaleRequest) (*entry.Entry, error)
	Refund(ctx context.Context, r ledger.RefundRequest) (*entry.Entry, error)
	Void(ctx context.Context, r ledger.VoidRequest) (*entry.Entry, error)
	TopUp(ctx context.Context, r ledger.TopUpRequest) (*entry.Entry, error)
	Enrol(ctx context.Context, r ledger.EnrolRequest) ([]*entry.Entry, error)
	Member(id string) (ledger.MemberView, error)
	MemberByToken(tokenHash string) (ledger.MemberView, error)
	MemberByMobile(mobile string) (ledger.MemberView, error)
	Backlog() (count int, oldest time.Time, err error)
	Programs() loyalty.Programs
}

// DeviceStatus is one reader as shown by /v1/status and /readyz.
type DeviceStatus struct {
	Name      string    `json:"name"`
	Till      string    `json:"till"`
	Transport string    `json:"transport,omitempty"`
	Online    bool      `json:"online"`
	State     string    `json:"state,omitempty"` // enabled | offline | claimed | unsupported | not_answering
	Detail    string    `json:"detail,omitempty"`
	Since     time.Time `json:"since,omitzero"`
}

// SyncStatus is the HQ link as shown by /v1/status.
type SyncStatus struct {
	Configured    bool      `json:"configured"`
	Online        bool      `json:"online"` // last exchange with HQ worked
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	Backlog       int       `json:"backlog"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}

// Options configures the API. Ledger, Hub and APIToken are required.
type Options struct {
	Ledger  Ledger
	Hub     *events.Hub
	Metrics *Metrics // nil: a private registry
	Store   string
	Till    string   // default till of requests that name none
	Tills   []string // tills this agent serves (default: Till)
	// TokenKey is the card token hash key; Card checks typed card numbers.
	TokenKey []byte
	Card     config.CardRule
	APIToken string
	// Sessions signs cashiers in at the page (nil: bearer token only).
	Sessions *session.Manager
	// Cashiers are the store's accounts; with it every write names a known,
	// enabled cashier (nil: the cashier is recorded as sent).
	Cashiers Cashiers
	// CashiersFromHQ: the till takes its cashiers from HQ and refuses local
	// changes.
	CashiersFromHQ bool
	// POSCashierOptional lets the POS write without naming a cashier
	// (cashiers.allow_pos_without_cashier, for the install period).
	POSCashierOptional bool
	// Supervisor names what a cashier at the page may not do alone.
	Supervisor SupervisorRules
	// DataDir is where the readiness probe writes; MinFreeBytes is the
	// free space below which the agent is not ready.
	DataDir      string
	MinFreeBytes uint64
	MaxBodyBytes int64
	// BodyTimeout bounds how long a request body may take to arrive
	// (0: DefaultBodyTimeout); a body still incomplete then is answered 408.
	BodyTimeout time.Duration
	// AllowRemote turns off the loopback Host check (DNS rebinding guard).
	AllowRemote bool
	Devices     func() []DeviceStatus // nil: no readers
	Sync        func() SyncStatus     // nil: no HQ
	// SyncNow uploads and pulls at once (nil: no HQ).
	SyncNow func(ctx context.Context) error
	// SyncDetail is the sync client's full status for /v1/sync/status.
	SyncDetail func() any
	// OnCommit is called after every ledger write (nudges the sync client).
	OnCommit func()
	// Offline reports whether the till is cut off from HQ (sales then use
	// the offline redemption cap).
	Offline func() bool
	// BalancesConfirmed tells a sale or quote that redeems points, with the
	// till online, whether the member's balances are HQ's of late (asking
	// HQ if need be); when not, the offline cap applies to it too, since
	// the till's figure may be days old. Nil: no such check.
	BalancesConfirmed func(ctx context.Context, memberID string) bool
	// MemberCode takes a typed member code (LookupRequest.MemberCode) for
	// the till; a refusal is a *MemberCodeError. Nil: not offered.
	MemberCode func(ctx context.Context, till, code string) (ledger.MemberView, error)
	// RefreshMember gives a member a look-up identified the balances HQ
	// holds now, or v itself when HQ cannot say in time (nil: v).
	RefreshMember func(ctx context.Context, v ledger.MemberView) ledger.MemberView
	// Page serves the cashier page at "/" (nil: none).
	Page     http.Handler
	Location *time.Location
	Now      func() time.Time
	Log      *slog.Logger
}

// Server is the API handler.
type Server struct {
	o     Options
	mux   *http.ServeMux
	tills map[string]bool
	m     *Metrics
	log   *slog.Logger
}

// New builds the API handler.
func New(o Options) (*Server, error) {
	if o.Ledger == nil || o.Hub == nil {
		return nil, errors.New("api: Ledger and Hub are required")
	}
	if len(o.APIToken) < 16 {
		return nil, errors.New("api: an API token of at least 16 characters is required")
	}
	if len(o.TokenKey) == 0 {
		return nil, errors.New("api: the card token hash key is required")
	}
	if o.Till == "" {
		return nil, errors.New("api: the default till is required")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = config.DefaultMaxBodyBytes
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(o.Ledger.Backlog)
	}
	s := &Server{o: o, mux: http.NewServeMux(), tills: map[string]bool{o.Till: true}, m: o.Metrics, log: o.Log}
	for _, t := range o.Tills {
		s.tills[t] = true
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	auth := s.auth
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /v1/openapi.json", OpenAPI)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.m.Handler())
	s.mux.HandleFunc("POST /v1/session", s.signIn)
	s.mux.Handle("GET /v1/session", auth(http.HandlerFunc(s.sessionInfo)))
	s.mux.Handle("DELETE /v1/session", auth(http.HandlerFunc(s.signOut)))
	s.mux.Handle("GET /v1/cashiers", auth(http.HandlerFunc(s.listCashiers)))
	s.mux.Handle("PUT /v1/cashiers/{id}", auth(http.HandlerFunc(s.putCashier)))
	s.mux.Handle("POST /v1/cashiers/{id}/disable", auth(http.HandlerFunc(s.disableCashier)))
	s.mux.Handle("POST /v1/cashiers/{id}/enable", auth(http.HandlerFunc(s.enableCashier)))
	s.mux.Handle("POST /v1/cashiers/{id}/pin", auth(http.HandlerFunc(s.setPIN)))
	// Only the POS (API token) gets payment codes; a cashier page never.
	s.mux.Handle("GET /v1/events", auth(s.o.Hub.Handler(events.SSEOptions{POS: func(r *http.Request) bool { return principalOf(r).pos }})))
	s.mux.Handle("GET /v1/status", auth(http.HandlerFunc(s.status)))
	s.mux.Handle("POST /v1/members/lookup", auth(http.HandlerFunc(s.lookup)))
	s.mux.Handle("GET /v1/members", auth(http.HandlerFunc(s.membersQuery)))
	s.mux.Handle("GET /v1/members/{id}", auth(http.HandlerFunc(s.memberByID)))
	s.mux.Handle("POST /v1/members", auth(http.HandlerFunc(s.enrol)))
	s.mux.Handle("POST /v1/quote", auth(http.HandlerFunc(s.quote)))
	s.mux.Handle("POST /v1/sales", auth(http.HandlerFunc(s.sale)))
	s.mux.Handle("POST /v1/refunds", auth(http.HandlerFunc(s.refund)))
	s.mux.Handle("POST /v1/voids", auth(http.HandlerFunc(s.void)))
	s.mux.Handle("POST /v1/topups", auth(http.HandlerFunc(s.topUp)))
	s.mux.Handle("GET /v1/sync/status", auth(http.HandlerFunc(s.syncStatus)))
	s.mux.Handle("POST /v1/sync/now", auth(http.HandlerFunc(s.syncNow)))
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "not_found", "unknown API path "+r.Method+" "+r.URL.Path+"; see docs/api.md", "未知的接口路径", nil)
	})
	if s.o.Page != nil {
		s.mux.Handle("/", s.o.Page)
	}
}

// ServeHTTP applies the loopback Host guard and body limit, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.o.AllowRemote {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		// A web page elsewhere could point a DNS name at 127.0.0.1 and talk
		// to the agent as same-origin; a loopback-only agent answers only
		// to loopback host names.
		if !config.IsLoopbackHost(host) {
			s.fail(w, r, http.StatusMisdirectedRequest, "wrong_host",
				"open the agent as http://127.0.0.1:<port>/ (this agent only answers on loopback)", "请使用 http://127.0.0.1:<端口>/ 访问", nil)
			return
		}
	}
	if r.Body != nil {
		if r.Body != http.NoBody {
			r.Body = deadlineBody(w, r.Body, s.o.BodyTimeout)
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// DefaultBodyTimeout is how long a request body may take to arrive. A body
// of the default 1 MiB limit takes milliseconds on a till's loopback or LAN.
const DefaultBodyTimeout = 15 * time.Second

// deadlineBody sets a read deadline on the connection for the body of one
// request, so a client that sends headers and then stalls gets 408 (see
// decode) instead of holding the request open forever. The deadline is
// lifted once the body has been read whole: net/http then reads the idle
// connection in the background to notice a client that goes away, and a
// deadline left there would cancel a long request (a sync) that is fine.
// Per request rather than http.Server.ReadTimeout/WriteTimeout, which would
// also cut the long-lived event stream.
func deadlineBody(w http.ResponseWriter, body io.ReadCloser, d time.Duration) io.ReadCloser {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return body // not a net/http connection (a test recorder)
	}
	return &timedBody{ReadCloser: body, rc: rc}
}

type timedBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// bearer returns the credentials of an "Authorization: Bearer <token>"
// header. The scheme name is case-insensitive (RFC 9110 §11.1) and may be
// followed by more than one space.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	return tok, tok != ""
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Error is the body of every error answer.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	MessageZH string `json:"message_zh,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg, zh string, err error) {
	e := Error{Code: code, Message: msg, MessageZH: zh}
	if err != nil {
		e.Detail = err.Error()
	}
	if status >= 500 {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","message":"the agent could not encode its answer; report this to support"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads a JSON body strictly: unknown fields, trailing data, wrong
// types and oversize bodies are 400/413 answers that say what is wrong.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			err = errors.New("extra data after the JSON object")
		} else if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("extra data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
		msg string
	)
	switch {
	case errors.As(err, &mbe):
		s.fail(w, r, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), "请求内容过大", nil)
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection cannot carry another request after a cut body.
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within %s; send the whole body at once, then retry with the same id", s.o.BodyTimeout),
			"请求内容未按时到达，请用同一单号重试", nil)
		return false
	case errors.Is(err, io.EOF):
		msg = "the request body is empty; send a JSON object"
	case errors.As(err, &syn):
		msg = fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		msg = fmt.Sprintf("field %q must be a JSON %s, not %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		msg = "the JSON body ends too early"
	default:
		msg = strings.TrimPrefix(err.Error(), "json: ")
	}
	s.fail(w, r, http.StatusBadRequest, "bad_json", msg, "请求格式错误", nil)
	return false
}

// invalid answers 400 for a request that is well-formed JSON but wrong.
func (s *Server) invalid(w http.ResponseWriter, r *http.Request, msg, zh string) {
	s.fail(w, r, http.StatusBadRequest, "invalid", msg, zh, nil)
}

// ledgerError maps a ledger error to an answer the cashier can act on.
func (s *Server) ledgerError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	// The coupon cases come before the broad sentinels they also match.
	case errors.Is(err, ledger.ErrCouponNotFound):
		s.fail(w, r, http.StatusNotFound, "coupon_not_found",
			"this member holds no coupon with that id (an unknown id, or another member's coupon): check the coupon, or take it off the sale",
			"该会员没有这张优惠券（券号不存在或属于其他会员）：请核对券号，或不使用此券", err)
	case errors.Is(err, ledger.ErrCouponUsed):
		s.fail(w, r, http.StatusUnprocessableEntity, "coupon_used",
			"this coupon was already used on an earlier sale: take it off the sale",
			"这张优惠券已在之前的交易中使用：请不使用此券", err)
	case errors.Is(err, ledger.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "not_found", "not found: check the number, or enrol the customer", "未找到，请核对号码或为顾客办理入会", err)
	case errors.Is(err, ledger.ErrKeyConflict):
		s.fail(w, r, http.StatusConflict, "conflict",
			"this id was already used for a different transaction; use a new receipt/refund id, or resend exactly the first request",
			"该单号已用于另一笔不同的交易，请换新单号或原样重发", err)
	case errors.Is(err, ledger.ErrInsufficientStoredValue):
		s.fail(w, r, http.StatusUnprocessableEntity, "insufficient_stored_value",
			"the member's stored value is not enough; take the rest in cash or card", "储值余额不足，请用其他方式支付余款", err)
	case errors.Is(err, ledger.ErrOfflineCap):
		var ce *ledger.OfflineCapError
		if !errors.As(err, &ce) {
			ce = &ledger.OfflineCapError{}
		}
		var ue unconfirmedError
		en, zh := offlineCapMessages(ce, errors.As(err, &ue))
		s.fail(w, r, http.StatusUnprocessableEntity, "offline_redeem_limit", en, zh, err)
	case errors.Is(err, ledger.ErrInsufficientPoints):
		s.fail(w, r, http.StatusUnprocessableEntity, "insufficient_points",
			"not enough points to redeem that many; lower the points to redeem", "积分不足，请减少抵扣积分", err)
	case errors.Is(err, ledger.ErrInvalid):
		s.fail(w, r, http.StatusBadRequest, "invalid", "the request is not valid: "+err.Error(), "请求无效", err)
	case errors.Is(err, ledger.ErrDiskFull):
		s.fail(w, r, http.StatusInsufficientStorage, "disk_full",
			"the till's disk is full: nothing was recorded; call support to free space, then retry", "收银机磁盘已满，未记录，请联系技术支持", err)
	case errors.Is(err, ledger.ErrClosed), errors.Is(err, ledger.ErrLocked), errors.Is(err, ledger.ErrCorrupt), errors.Is(err, ledger.ErrNewerSchema):
		s.fail(w, r, http.StatusServiceUnavailable, "unavailable",
			"the ledger is not available: nothing was recorded; retry, and call support if it repeats", "账本暂不可用，未记录，请重试", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.fail(w, r, http.StatusServiceUnavailable, "unavailable",
			"the request was cancelled before it finished; retry with the same id (it is applied once)", "请求已取消，请用同一单号重试", err)
	default:
		s.fail(w, r, http.StatusInternalServerError, "internal",
			"the agent failed to record this; retry with the same id, and call support if it repeats", "系统错误，请用同一单号重试", err)
	}
}

// till resolves the till of a request: the one named, or the default.
func (s *Server) till(w http.ResponseWriter, r *http.Request, t string) (string, bool) {
	if t == "" {
		return s.o.Till, true
	}
	if !s.tills[t] {
		s.invalid(w, r, fmt.Sprintf("till %q is not served by this agent (store %s); use one of %s", t, s.o.Store, strings.Join(s.tillList(), ", ")), "此收银台不属于本代理")
		return "", false
	}
	return t, true
}

func (s *Server) tillList() []string {
	out := make([]string, 0, len(s.tills))
	for t := range s.tills {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// write runs one ledger write: it is timed for the metrics and, when it
// worked, the OnCommit hook hears of it.
func write[T any](s *Server, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	s.m.ObserveCommit(op, time.Since(start), err)
	if err == nil && s.o.OnCommit != nil {
		s.o.OnCommit()
	}
	return v, err
}

// answer answers v, or the ledger error.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// decodeTill decodes the body into q and resolves the till it names (till
// points at q's till field); it answers the error itself.
func (s *Server) decodeTill(w http.ResponseWriter, r *http.Request, q any, till *string) (string, bool) {
	if !s.decode(w, r, q) {
		return "", false
	}
	return s.till(w, r, *till)
}
