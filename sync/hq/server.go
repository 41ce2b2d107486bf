package hq

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// ProgramInfo is what HQ needs from a program file it publishes.
type ProgramInfo struct {
	Version       int
	EffectiveFrom time.Time
}

// Options tune the server. Zero values take the defaults in brackets.
type Options struct {
	Log *slog.Logger
	// AdminToken, if set, is accepted as an admin credential besides those
	// issued into the store (a bootstrap for the first admin).
	AdminToken string
	// RequireClientCert refuses store and admin requests that come without
	// a verified client certificate (set it with a client CA). Whenever a
	// request has one, whether or not this is set, the certificate must
	// name the credential's store or admin: see CertIdentities.
	RequireClientCert bool
	// MaxBodyBytes caps an upload as sent, MaxInflatedBytes once gunzipped
	// [16 MiB, 64 MiB]; MaxBatchEntries caps the entries of one batch [5000].
	MaxBodyBytes, MaxInflatedBytes int64
	MaxBatchEntries                int
	// MaxInFlight uploads are processed at once [64]; a further one waits
	// up to QueueWait [2s] and is then answered 503 with Retry-After
	// [RetryAfter, 1s]. An upload takes its slot only once its body is read.
	MaxInFlight int
	QueueWait   time.Duration
	RetryAfter  time.Duration
	// BodyTimeout is how long an upload's body may take to arrive, from its
	// headers on [30s, the sync client's own request timeout]; a slower one
	// is answered 408.
	BodyTimeout time.Duration
	// MaxPerCredential uploads of one credential (one store) are open at
	// once, reading their body, waiting for a slot or being stored [8]; a
	// further one is answered 429 with Retry-After at once, unread, so no
	// store can hold what the others need.
	MaxPerCredential int
	// MaxPage caps the limit of changes and export pages [5000].
	MaxPage int
	// ParseProgram validates a program file on publish and reads its version
	// and start. Required for publishing (hqcli wires the loyalty parser).
	ParseProgram func(src []byte) (ProgramInfo, error)
	// KPI settings: chain time zone for months [Asia/Shanghai], life-cycle
	// thresholds in days without a sale [60, 180].
	TimeZone                string
	AtRiskDays, DormantDays int
	// Fraud: thresholds of the enrolment fraud signals (FraudSettings
	// gives the defaults); a request's parameters override them.
	Fraud FraudSettings
	// Enrol configures self-enrolment and the card page (enrolweb.go).
	Enrol EnrolOptions
	// GatewaySecret signs the message gateway's opt-out callback
	// (POST /gateway/opt-out); none: the endpoint answers 404.
	GatewaySecret []byte
	// MemberCodeLead is how long a rotated member-code key is sent to the
	// tills before it signs codes [DefaultMemberCodeLead, 2m].
	MemberCodeLead time.Duration
	// FeedHeadEvery is how old the changes feed's head may be and still
	// answer a pull that is up to date without a query of its own
	// [DefaultFeedHeadEvery, 250ms; below 0: every pull reads the storage].
	// A change reaches every pull that starts this long after it
	// committed, through any HQ process.
	FeedHeadEvery time.Duration
	Now           func() time.Time
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxInflatedBytes <= 0 {
		o.MaxInflatedBytes = 64 << 20
	}
	if o.MaxBatchEntries <= 0 {
		o.MaxBatchEntries = 5000
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.QueueWait <= 0 {
		o.QueueWait = 2 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 30 * time.Second
	}
	if o.MaxPerCredential <= 0 {
		o.MaxPerCredential = 8
	}
	if o.MaxPage <= 0 {
		o.MaxPage = 5000
	}
	if o.TimeZone == "" {
		o.TimeZone = "Asia/Shanghai"
	}
	if o.AtRiskDays <= 0 {
		o.AtRiskDays = 60
	}
	if o.DormantDays <= 0 {
		o.DormantDays = 180
	}
	if o.MemberCodeLead <= 0 {
		o.MemberCodeLead = DefaultMemberCodeLead
	}
	if o.FeedHeadEvery == 0 {
		o.FeedHeadEvery = DefaultFeedHeadEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Server is the HQ HTTP API (an http.Handler) and the operations behind it,
// which hqcli also calls directly on a local store.
type Server struct {
	st    Store
	o     Options
	slots chan struct{}
	mux   *http.ServeMux
	loc   *time.Location

	holdMu sync.Mutex
	holds  map[string]int // open uploads per credential ("role/id")

	snaps chan struct{} // snapshots being sent (maxSnapshots)

	shortMu    sync.Mutex
	shortMin   int64          // the minute shortWrong counts
	shortWrong map[string]int // wrong short member codes per store this minute
	enrol      *enrolState

	heads feedHeads // the changes feed's head, for pulls that are up to date
}

// NewServer serves st. It does not own st: the caller closes it.
func NewServer(st Store, opts Options) *Server {
	opts.defaults()
	loc, err := time.LoadLocation(opts.TimeZone)
	if err != nil {
		opts.Log.Warn("unknown time zone, using UTC+8", "zone", opts.TimeZone, "err", err)
		loc = time.FixedZone("UTC+8", 8*3600)
	}
	s := &Server{st: st, o: opts, slots: make(chan struct{}, opts.MaxInFlight), mux: http.NewServeMux(), loc: loc, holds: map[string]int{}, snaps: make(chan struct{}, maxSnapshots)}
	s.mux.HandleFunc("POST "+wire.PathBatches, s.handleBatch)
	s.mux.HandleFunc("GET "+wire.PathChanges, s.handleChanges)
	s.mux.HandleFunc("GET "+wire.PathSnapshot, s.handleSnapshot)
	s.mux.HandleFunc("GET "+wire.PathMembers+"{id}", s.handleMemberLookup)
	s.mux.HandleFunc("GET "+wire.PathExport, s.adminAs(s.handleExport))
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /v1/openapi.json", OpenAPI)
	s.mux.HandleFunc("GET /kpi", s.admin(s.handleKPI))
	s.mux.HandleFunc("GET /kpi/fraud", s.adminAs(s.handleFraud))
	s.mux.HandleFunc("GET /admin/totals", s.admin(s.handleTotals))
	s.mux.HandleFunc("GET /admin/deadletters", s.admin(s.handleDeadLetters))
	s.mux.HandleFunc("POST /admin/deadletters/retry", s.admin(s.handleRetry))
	s.mux.HandleFunc("POST /admin/coupons/recall", s.admin(s.handleRecall))
	s.mux.HandleFunc("POST /admin/programs", s.admin(s.handlePublish))
	s.mux.HandleFunc("GET /admin/programs", s.admin(s.handlePrograms))
	s.mux.HandleFunc("GET /admin/stores", s.admin(s.handleStores))
	s.mux.HandleFunc("POST /admin/stores", s.admin(s.handleAddStore))
	s.mux.HandleFunc("DELETE /admin/stores/{id}", s.admin(s.handleRevokeStore))
	s.mux.HandleFunc("GET /admin/members/{id}", s.adminAs(s.handleMember))
	s.mux.HandleFunc("GET /admin/members", s.adminAs(s.handleFlagged))
	s.mux.HandleFunc("POST /admin/members/{id}/review", s.handleReview)
	s.mux.HandleFunc("GET /admin/cashiers", s.admin(s.handleCashiers))
	s.mux.HandleFunc("POST /admin/cashiers", s.admin(s.handleAddCashier))
	s.mux.HandleFunc("POST /admin/cashiers/{store}/{id}/disable", s.admin(s.handleCashierState(true)))
	s.mux.HandleFunc("POST /admin/cashiers/{store}/{id}/enable", s.admin(s.handleCashierState(false)))
	s.mux.HandleFunc("POST /admin/cashiers/{store}/{id}/pin", s.admin(s.handleCashierPIN))
	s.mux.HandleFunc("POST "+wire.PathMemberCodeClaims, s.handleMemberCodeClaims)
	s.mux.HandleFunc("POST "+wire.PathMemberCodeShort, s.handleMemberCodeShort)
	s.mux.HandleFunc("GET /admin/member-codes/repeats", s.admin(s.handleMemberCodeRepeats))
	s.routesEnrol()
	s.outboxRoutes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// HashToken is the stored form of a bearer token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// IssueCredential creates a credential and returns its token, which is
// shown once and never stored. Rights (RightPII) are for admins only.
func (s *Server) IssueCredential(ctx context.Context, role, id, name, tz string, rights ...string) (string, error) {
	if role != RoleStore && role != RoleAdmin {
		return "", fmt.Errorf("hq: role must be %q or %q", RoleStore, RoleAdmin)
	}
	for _, r := range rights {
		switch {
		case r != RightPII:
			return "", fmt.Errorf("hq: unknown right %q; the one right is %q (personal data unmasked)", r, RightPII)
		case role != RoleAdmin:
			return "", fmt.Errorf("hq: the %q right is for admin credentials only", r)
		}
	}
	if len(rights) > 0 {
		rights = slices.Compact(slices.Sorted(slices.Values(rights)))
	}
	if !entry.ValidID(id) {
		// The till's own rule: ids are safe in keys, paths and reports.
		return "", fmt.Errorf("hq: id %q: use %s", id, entry.IDRule(entry.MaxIDLen))
	}
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return "", fmt.Errorf("hq: time zone %q: %v (use an IANA name such as Asia/Shanghai)", tz, err)
		}
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	prefix := "hqs_"
	if role == RoleAdmin {
		prefix = "hqa_"
	}
	tok := prefix + hex.EncodeToString(b[:])
	c := Credential{Role: role, ID: id, Name: name, TimeZone: tz, TokenHash: HashToken(tok), CreatedAt: s.o.Now().UTC(), Rights: rights}
	if err := s.st.AddCredential(ctx, c); err != nil {
		return "", err
	}
	return tok, nil
}

// Revoke stops a credential from authenticating.
func (s *Server) Revoke(ctx context.Context, role, id string) error {
	return s.st.RevokeCredential(ctx, role, id)
}

// bootstrapID is the id of the credential behind Options.AdminToken.
const bootstrapID = "bootstrap"

// auth returns the credential behind the request's bearer token.
func (s *Server) auth(r *http.Request) (Credential, int, error) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimLeft(tok, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Credential{}, http.StatusUnauthorized, errors.New("send Authorization: Bearer <token>")
	}
	hash := HashToken(tok)
	if s.o.AdminToken != "" && subtle.ConstantTimeCompare([]byte(hash), []byte(HashToken(s.o.AdminToken))) == 1 {
		return Credential{Role: RoleAdmin, ID: bootstrapID}, 0, nil
	}
	c, err := s.st.CredentialByHash(r.Context(), hash)
	switch {
	case errors.Is(err, ErrNotFound):
		return Credential{}, http.StatusUnauthorized, errors.New("unknown token; ask HQ for a credential (hq store add)")
	case err != nil:
		return Credential{}, http.StatusServiceUnavailable, err
	case c.Revoked():
		return Credential{}, http.StatusUnauthorized, fmt.Errorf("credential of %s %q was revoked; ask HQ for a new one", c.Role, c.ID)
	}
	return c, 0, nil
}

// authorize checks the request's credential, unless role is "" its role,
// and that the client certificate (mutual TLS) names the credential; it
// answers 401 or 403 itself.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, role, forbidden string) (Credential, bool) {
	c, code, err := s.auth(r)
	if err != nil {
		if code == http.StatusServiceUnavailable {
			// Storage failed: the credential may be good, so say retry, not re-issue.
			s.o.Log.Error("credential check", "err", err)
			writeError(w, code, "storage", "checking the credential failed; try again")
			return c, false
		}
		writeError(w, code, "unauthorized", err.Error())
		return c, false
	}
	if role != "" && c.Role != role {
		writeError(w, http.StatusForbidden, "forbidden", forbidden)
		return c, false
	}
	// The bootstrap token is the only credential without a stored hash.
	if short, err := s.checkClientCert(r, c, c.TokenHash == "" && c.ID == bootstrapID); err != nil {
		s.o.Log.Warn("client certificate refused", "role", c.Role, "id", c.ID, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusForbidden, short, err.Error())
		return c, false
	}
	return c, true
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.authorize(w, r, RoleAdmin, "this endpoint needs an admin token"); ok {
			h(w, r)
		}
	}
}

// adminAs is admin for handlers whose answer depends on the credential's
// rights.
func (s *Server) adminAs(h func(http.ResponseWriter, *http.Request, Credential)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c, ok := s.authorize(w, r, RoleAdmin, "this endpoint needs an admin token"); ok {
			h(w, r, c)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, short, msg string) {
	writeJSON(w, code, wire.Error{Code: short, Message: msg})
}

// acquire takes an ingest slot, waiting at most QueueWait.
func (s *Server) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.o.QueueWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

type rawBatch struct {
	Store   string            `json:"store"`
	Till    string            `json:"till"`
	First   uint64            `json:"first"`
	Last    uint64            `json:"last"`
	Entries []json.RawMessage `json:"entries"`
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	// One deadline bounds every wait on this upload's body: reading it here
	// and net/http discarding what is left unread. (Only in-process test
	// recorders cannot set it.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.o.BodyTimeout))
	// An answer given before the body is read closes the connection, so it
	// goes out at once rather than after net/http has read the rest.
	w.Header().Set("Connection", "close")
	c, ok := s.authorize(w, r, RoleStore, "only a store credential uploads batches")
	if !ok {
		return
	}
	release, ok := s.hold(c)
	if !ok {
		s.setRetryAfter(w)
		writeError(w, http.StatusTooManyRequests, "too_many_uploads", fmt.Sprintf(
			"store %q already has %d uploads open at HQ; send fewer at once and retry after the Retry-After delay", c.ID, s.o.MaxPerCredential))
		return
	}
	defer release()

	// A retried upload already held is answered from the key, unread; the
	// connection stays open (net/http discards the body, within the deadline).
	if b, ok := parseIdemKey(r.Header.Get(wire.HeaderIdempotencyKey), c.ID); ok {
		if acked, err := s.st.TillAcked(r.Context(), b.Store, b.Till); err == nil && b.Last <= acked {
			w.Header().Del("Connection")
			if !s.acquireOr503(w, r) {
				return
			}
			defer func() { <-s.slots }()
			s.ingest(w, r, b)
			return
		}
	}
	// The body is read before a slot is taken: a slow one holds only its
	// own store's share.
	data, status, short, msg := s.readBody(w, r)
	if status != 0 {
		if status == http.StatusRequestTimeout {
			s.o.Log.Warn("upload body too slow", "store", c.ID, "timeout", s.o.BodyTimeout)
		}
		writeError(w, status, short, msg)
		return
	}
	w.Header().Del("Connection")
	if !s.acquireOr503(w, r) {
		return
	}
	defer func() { <-s.slots }()
	var rb rawBatch
	if err := json.Unmarshal(data, &rb); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", "body is not a batch: "+err.Error())
		return
	}
	b, status, err := s.checkBatch(c, rb)
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, status, wire.Error{Code: "bad_id", Message: fe.msg, Field: fe.field})
		return
	case err != nil:
		writeError(w, status, "bad_batch", err.Error())
		return
	}
	s.ingest(w, r, b)
}

// readBody reads an upload's body, gunzipped, within the size limits and
// the deadline; on failure it returns the status, code and message to
// answer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (data []byte, status int, short, msg string) {
	fail := func(err error, what string) ([]byte, int, string, string) {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("upload over %d bytes; send smaller batches", s.o.MaxBodyBytes)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, http.StatusRequestTimeout, "body_timeout", fmt.Sprintf("the upload's body did not arrive within %v; check the store's link to HQ and retry (smaller batches arrive sooner)", s.o.BodyTimeout)
		}
		return nil, http.StatusBadRequest, "bad_body", what + err.Error()
	}
	body := http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	var rd io.Reader = body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		gz, err := gzip.NewReader(body)
		if err != nil {
			return fail(err, "body is not gzip: ")
		}
		defer gz.Close()
		rd = gz
	}
	data, err := io.ReadAll(io.LimitReader(rd, s.o.MaxInflatedBytes+1))
	if err != nil {
		return fail(err, "reading body: ")
	}
	if int64(len(data)) > s.o.MaxInflatedBytes {
		return nil, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("upload inflates over %d bytes; send smaller batches", s.o.MaxInflatedBytes)
	}
	return data, 0, "", ""
}

// hold counts an open upload against its credential; false when the
// credential already has MaxPerCredential open.
func (s *Server) hold(c Credential) (release func(), ok bool) {
	k := c.Role + "/" + c.ID
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	if s.holds[k] >= s.o.MaxPerCredential {
		return nil, false
	}
	s.holds[k]++
	return func() {
		s.holdMu.Lock()
		defer s.holdMu.Unlock()
		if s.holds[k]--; s.holds[k] <= 0 {
			delete(s.holds, k)
		}
	}, true
}

// acquireOr503 takes an ingest slot or answers 503 with Retry-After.
func (s *Server) acquireOr503(w http.ResponseWriter, r *http.Request) bool {
	if s.acquire(r.Context()) {
		return true
	}
	s.setRetryAfter(w)
	writeError(w, http.StatusServiceUnavailable, "overloaded", "HQ is busy; retry after the Retry-After delay")
	return false
}

func (s *Server) setRetryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int((s.o.RetryAfter+time.Second-1)/time.Second)))
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, b Batch) {
	b.ReceivedAt = s.o.Now().UTC()
	ack, err := s.st.Ingest(r.Context(), b)
	var gap *GapError
	switch {
	case errors.As(err, &gap):
		writeJSON(w, http.StatusConflict, wire.Error{Code: "gap", Message: err.Error(), Expected: gap.Expected})
	case err != nil:
		s.o.Log.Error("ingest failed", "store", b.Store, "till", b.Till, "first", b.First, "last", b.Last, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int((s.o.RetryAfter+time.Second-1)/time.Second)))
		writeError(w, http.StatusServiceUnavailable, "storage", "HQ could not store the batch; retry")
	default:
		if len(ack.DeadLettered) > 0 && !ack.Duplicate {
			s.o.Log.Warn("entries dead-lettered", "store", b.Store, "till", b.Till, "count", len(ack.DeadLettered))
		}
		writeJSON(w, http.StatusOK, ack)
	}
}

// parseIdemKey reads "store/till/first-last" for the credential's store.
func parseIdemKey(k, store string) (Batch, bool) {
	rest, ok := strings.CutPrefix(k, store+"/")
	if !ok {
		return Batch{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return Batch{}, false
	}
	f, l, ok := strings.Cut(rest[i+1:], "-")
	if !ok {
		return Batch{}, false
	}
	first, err1 := strconv.ParseUint(f, 10, 64)
	last, err2 := strconv.ParseUint(l, 10, 64)
	if err1 != nil || err2 != nil || first == 0 || last < first || last > math.MaxInt64 || !entry.ValidID(rest[:i]) {
		return Batch{}, false
	}
	return Batch{Store: store, Till: rest[:i], First: first, Last: last}, true
}

// checkBatch checks the batch's frame; entries that are wrong go to the
// dead-letter list so one bad record never stalls the till.
func (s *Server) checkBatch(c Credential, rb rawBatch) (Batch, int, error) {
	if rb.Store != c.ID {
		return Batch{}, http.StatusForbidden, fmt.Errorf("batch for store %q sent with the credential of %q; a store writes only as itself", rb.Store, c.ID)
	}
	if !entry.ValidID(rb.Store) {
		return Batch{}, http.StatusBadRequest, &fieldError{"store", fmt.Sprintf("store id %q: use %s", rb.Store, entry.IDRule(entry.MaxIDLen))}
	}
	if !entry.ValidID(rb.Till) {
		return Batch{}, http.StatusBadRequest, &fieldError{"till", fmt.Sprintf("till id %q: use %s", rb.Till, entry.IDRule(entry.MaxIDLen))}
	}
	if rb.First == 0 || rb.Last < rb.First || rb.Last > math.MaxInt64 {
		return Batch{}, http.StatusBadRequest, fmt.Errorf("batch range %d..%d: first must be ≥1 and last ≥ first, below 2^63", rb.First, rb.Last)
	}
	if n := rb.Last - rb.First + 1; n != uint64(len(rb.Entries)) {
		return Batch{}, http.StatusBadRequest, fmt.Errorf("batch range %d..%d names %d entries but carries %d", rb.First, rb.Last, n, len(rb.Entries))
	}
	if len(rb.Entries) > s.o.MaxBatchEntries {
		return Batch{}, http.StatusRequestEntityTooLarge, fmt.Errorf("batch of %d entries; send at most %d", len(rb.Entries), s.o.MaxBatchEntries)
	}
	b := Batch{Store: rb.Store, Till: rb.Till, First: rb.First, Last: rb.Last, Items: make([]Item, len(rb.Entries))}
	for i, raw := range rb.Entries {
		seq := rb.First + uint64(i)
		it := Item{Seq: seq}
		var e entry.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			it.Reason = "entry does not decode: " + err.Error()
		} else if fe := idError(&e); fe != nil {
			// A bad id is refused whole, never kept: ids end up in keys,
			// exports and reports. A till's own ledger refuses the same.
			f := fmt.Sprintf("entries[%d].%s", i, fe.Field)
			return Batch{}, http.StatusBadRequest, &fieldError{f, f + ": " + fe.Msg}
		} else {
			it.Reason = checkEntry(&e, rb.Store, rb.Till, seq)
		}
		// Reasons are stored as text: no NUL, valid UTF-8.
		it.Reason = strings.ToValidUTF8(strings.ReplaceAll(it.Reason, "\x00", `\x00`), "\uFFFD")
		if it.Reason == "" {
			it.Entry = &e
		} else {
			it.Raw = bytes.Clone(raw)
		}
		b.Items[i] = it
	}
	return b, 0, nil
}

// fieldError is an upload refused for one field, named by its JSON path.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.msg }

// idError is the entry's id that breaks the id rule, if any.
func idError(e *entry.Entry) *entry.FieldError {
	var fe *entry.FieldError
	if err := e.Validate(); errors.As(err, &fe) && fe.ID {
		return fe
	}
	return nil
}

// checkEntry is the rule an entry must pass to be applied; "" means ok.
func checkEntry(e *entry.Entry, store, till string, seq uint64) string {
	switch {
	case e.Seq != seq:
		return fmt.Sprintf("entry seq %d at the position of seq %d", e.Seq, seq)
	case e.Store != store:
		return fmt.Sprintf("entry of store %q uploaded by store %q", e.Store, store)
	case e.Till != till:
		return fmt.Sprintf("entry of till %q in a batch of till %q", e.Till, till)
	}
	if err := e.Validate(); err != nil {
		return err.Error()
	}
	return ""
}

func (s *Server) limit(r *http.Request) (int, error) {
	q := r.URL.Query().Get("limit")
	if q == "" {
		return 500, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil && !errors.Is(err, strconv.ErrRange) || n <= 0 {
		return 0, fmt.Errorf("limit %q: ask for 1 to %d entries a page (a larger number is served as %d)", q, s.o.MaxPage, s.o.MaxPage)
	}
	// A page never holds more than MaxPage, however many are asked for.
	return min(n, s.o.MaxPage), nil
}

// handleMemberLookup answers a till that identified a member with the
// member's state now and its store's acked marks (wire.MemberLookup).
func (s *Server) handleMemberLookup(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authorize(w, r, RoleStore, "members are looked up with a store's credential")
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !entry.ValidKey(id) {
		writeError(w, http.StatusBadRequest, "bad_request", "name the member by its id: "+entry.IDRule(entry.MaxKeyLen))
		return
	}
	l, err := s.st.MemberLookup(r.Context(), c.ID, id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no member "+id+" at HQ")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
	default:
		writeJSON(w, http.StatusOK, l)
	}
}

func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authorize(w, r, "", "")
	if !ok {
		return
	}
	// Read before the page: a head read after it could hold a cashier
	// generation newer than the list the page reads.
	h := s.feedHead(r.Context())
	if h != nil && s.changesFromHead(w, r, h, c) {
		return
	}
	ch, ok := page(s, w, r, s.st.Changes)
	if !ok {
		return
	}
	// The store's cashiers come with the feed, when the till asks.
	if q := r.URL.Query(); q.Has(wire.QueryCashiers) && c.Role == RoleStore {
		if err := s.attachCashiers(r.Context(), &ch, c.ID, q.Get(wire.QueryCashiers), h); err != nil {
			s.o.Log.Error("reading the store's cashiers", "store", c.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, "storage", "HQ could not read the store's cashiers; retry")
			return
		}
	}
	if h != nil {
		if !h.noKeys {
			ch.MemberCodeKeys = usableKeys(h.keys, s.o.Now())
		}
	} else if err := s.attachMemberCodeKeys(r.Context(), &ch); err != nil {
		s.o.Log.Error("reading the member-code keys", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "HQ could not read its member-code keys; retry")
		return
	}
	writeJSON(w, http.StatusOK, ch)
}

// page fetches the page that ?cursor= and ?limit= ask for; it answers the
// errors itself.
func page[T any](s *Server, w http.ResponseWriter, r *http.Request, fetch func(ctx context.Context, cursor string, limit int) (T, error)) (T, bool) {
	n, err := s.limit(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_limit", err.Error())
		var zero T
		return zero, false
	}
	p, err := fetch(r.Context(), r.URL.Query().Get("cursor"), n)
	return p, !s.pageError(w, err)
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request, c Credential) {
	p, ok := page(s, w, r, s.st.Export)
	if !ok {
		return
	}
	if p.Entries == nil {
		p.Entries = []wire.ExportedEntry{}
	}
	if !c.Has(RightPII) {
		maskExport(&p)
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) pageError(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrCursor):
		writeError(w, http.StatusBadRequest, "bad_cursor", err.Error())
	case errors.Is(err, ErrArchived): // the message says where the entries went and how to go on
		writeError(w, http.StatusGone, "archived", err.Error())
	default:
		s.o.Log.Error("page failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "HQ storage failed; retry")
	}
	return true
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.st.Ping(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "in_flight": len(s.slots)})
}

func (s *Server) handleTotals(w http.ResponseWriter, r *http.Request) {
	t, err := s.Totals(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	ds, err := s.st.DeadLetters(r.Context(), r.URL.Query().Get("all") != "")
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	if ds == nil {
		ds = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, ds)
}

// RetryRequest names dead letters to retry; none means every open one.
type RetryRequest struct {
	IDs []string `json:"ids,omitempty"`
}

// RetryResult says which dead letters were applied and which still fail.
type RetryResult struct {
	Applied []string          `json:"applied"`
	Failed  map[string]string `json:"failed"`
}

// RetryDeadLetters checks open dead letters again and applies those that
// pass now (e.g. after an HQ upgrade that knows a new entry kind).
func (s *Server) RetryDeadLetters(ctx context.Context, ids []string) (RetryResult, error) {
	res := RetryResult{Applied: []string{}, Failed: map[string]string{}}
	ds, err := s.st.DeadLetters(ctx, false)
	if err != nil {
		return res, err
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, d := range ds {
		if len(want) > 0 && !want[d.ID()] {
			continue
		}
		delete(want, d.ID())
		var e entry.Entry
		reason := ""
		if err := json.Unmarshal(d.Raw, &e); err != nil {
			reason = "entry does not decode: " + err.Error()
		} else {
			reason = checkEntry(&e, d.Store, d.Till, d.Seq)
		}
		if reason != "" {
			res.Failed[d.ID()] = reason
			continue
		}
		if err := s.st.ResolveDeadLetter(ctx, d.Store, d.Till, d.Seq, e, s.o.Now().UTC()); err != nil {
			res.Failed[d.ID()] = err.Error()
			continue
		}
		res.Applied = append(res.Applied, d.ID())
	}
	for id := range want {
		res.Failed[id] = "no open dead letter with this id"
	}
	return res, nil
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	var req RetryRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_body", "send {\"ids\":[\"store/till/seq\",...]} or {}: "+err.Error())
		return
	}
	res, err := s.RetryDeadLetters(r.Context(), req.IDs)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// PublishProgram validates a program file and publishes it to the stores.
func (s *Server) PublishProgram(ctx context.Context, src []byte) (wire.ProgramVersion, error) {
	if s.o.ParseProgram == nil {
		return wire.ProgramVersion{}, errors.New("hq: this server has no program parser configured")
	}
	info, err := s.o.ParseProgram(src)
	if err != nil {
		return wire.ProgramVersion{}, fmt.Errorf("program rejected: %w", err)
	}
	p := wire.ProgramVersion{Version: info.Version, EffectiveFrom: info.EffectiveFrom.UTC().Format(time.RFC3339), Source: string(src)}
	defer s.forgetHead()
	return p, s.st.PublishProgram(ctx, p)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	src, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	p, err := s.PublishProgram(r.Context(), src)
	switch {
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_program", err.Error())
	default:
		p.Source = ""
		writeJSON(w, http.StatusOK, p)
	}
}

func (s *Server) handlePrograms(w http.ResponseWriter, r *http.Request) {
	ps, err := s.st.Programs(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	if ps == nil {
		ps = []wire.ProgramVersion{}
	}
	writeJSON(w, http.StatusOK, ps)
}

// StoreRequest adds a store credential over the admin API.
type StoreRequest struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
	Role     string `json:"role,omitempty"` // "store" (default) or "admin"
	// Rights for an admin: ["pii"] to read personal data unmasked.
	Rights []string `json:"rights,omitempty"`
}

func (s *Server) handleAddStore(w http.ResponseWriter, r *http.Request) {
	var req StoreRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"id":"S001","name":"...","time_zone":"Asia/Shanghai"}: `+err.Error())
		return
	}
	if req.Role == "" {
		req.Role = RoleStore
	}
	tok, err := s.IssueCredential(r.Context(), req.Role, req.ID, req.Name, req.TimeZone, req.Rights...)
	switch {
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"role": req.Role, "id": req.ID, "token": tok})
	}
}

func (s *Server) handleRevokeStore(w http.ResponseWriter, r *http.Request) {
	role := r.URL.Query().Get("role")
	if role == "" {
		role = RoleStore
	}
	err := s.Revoke(r.Context(), role, r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("id")})
	}
}

func (s *Server) handleStores(w http.ResponseWriter, r *http.Request) {
	cs, err := s.st.Credentials(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	for i := range cs {
		cs[i].TokenHash = "" // no use to a reader, and one less thing to leak
	}
	if cs == nil {
		cs = []Credential{}
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) handleMember(w http.ResponseWriter, r *http.Request, c Credential) {
	m, err := s.st.Member(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no member "+r.PathValue("id"))
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
	default:
		writeJSON(w, http.StatusOK, recordFor(c, m))
	}
}

// recordFor is HQ's record of a member as the credential may see it.
func recordFor(c Credential, m Member) Member {
	if c.Has(RightPII) {
		return m
	}
	return maskRecord(m)
}

// MaxReviewNote caps the note of a review, in bytes.
const MaxReviewNote = 1000

// ReviewMember clears a flagged member's flag after review by the admin
// named by; the entries stay and the balances stand. Unknown member →
// ErrNotFound; not flagged → ErrNotFlagged.
func (s *Server) ReviewMember(ctx context.Context, id, by, note string) (Member, error) {
	switch {
	case id == "":
		return Member{}, invalidError("hq: name the member to review")
	case strings.TrimSpace(by) == "":
		return Member{}, invalidError("hq: a review needs the reviewer's name")
	case len(note) > MaxReviewNote:
		return Member{}, invalidError(fmt.Sprintf("hq: the review note is %d bytes; keep it to %d", len(note), MaxReviewNote))
	}
	return s.st.ReviewMember(ctx, id, Review{By: strings.TrimSpace(by), At: s.o.Now().UTC(), Note: note})
}

// FlaggedMembers lists the members waiting for review, by id.
func (s *Server) FlaggedMembers(ctx context.Context) ([]Member, error) {
	ms, err := s.st.FlaggedMembers(ctx)
	if ms == nil {
		ms = []Member{}
	}
	return ms, err
}

// invalidError is a request HQ refuses as it stands; it says what to change.
type invalidError string

func (e invalidError) Error() string { return string(e) }

// ReviewRequest is the body of POST /admin/members/{id}/review; the
// reviewer is the admin credential that sends it.
type ReviewRequest struct {
	Note string `json:"note,omitempty"`
}

func (s *Server) handleReview(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authorize(w, r, RoleAdmin, "this endpoint needs an admin token")
	if !ok {
		return
	}
	var req ReviewRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"note":"what was checked"} or an empty body: `+err.Error())
		return
	}
	m, err := s.ReviewMember(r.Context(), r.PathValue("id"), c.ID, req.Note)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no member "+r.PathValue("id"))
	case errors.Is(err, ErrNotFlagged):
		writeError(w, http.StatusConflict, "not_flagged", err.Error())
	case errors.As(err, new(invalidError)):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case err != nil:
		s.o.Log.Error("review failed", "member", r.PathValue("id"), "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "HQ storage failed; retry")
	default:
		s.o.Log.Info("member reviewed", "member", m.ID, "by", c.ID)
		writeJSON(w, http.StatusOK, recordFor(c, m))
	}
}

func (s *Server) handleFlagged(w http.ResponseWriter, r *http.Request, c Credential) {
	if r.URL.Query().Get("flagged") != "true" {
		writeError(w, http.StatusBadRequest, "bad_request", "HQ lists the flagged members only: GET /admin/members?flagged=true (one member: GET /admin/members/{id})")
		return
	}
	ms, err := s.FlaggedMembers(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	for i := range ms {
		ms[i] = recordFor(c, ms[i])
	}
	writeJSON(w, http.StatusOK, ms)
}
