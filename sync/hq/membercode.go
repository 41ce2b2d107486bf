package hq

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/membercode"
	"posagent/sync/wire"
)

// MemberCodeKey is one of HQ's member-code keys: the Ed25519 key that signs
// the QR codes and the secret of the short typed codes. One key is active
// (RetiredAt zero); a retired one stays until its codes have expired.
// CreatedAt is when the key starts signing: a rotated key is published to
// the tills at once but signs only from CreatedAt (the rotation's lead
// time later), and its predecessor is retired at that same instant.
type MemberCodeKey struct {
	ID          string    `json:"id"`
	Private     []byte    `json:"private"`      // Ed25519 private key, 64 bytes
	ShortSecret []byte    `json:"short_secret"` // 32 bytes
	CreatedAt   time.Time `json:"created_at"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
}

// NotAfter is the last instant a till accepts the key's codes: a code
// signed just before retirement lives its lifetime and the clock skew.
func (k MemberCodeKey) NotAfter() time.Time {
	if k.RetiredAt.IsZero() {
		return time.Time{}
	}
	return k.RetiredAt.Add(membercode.Lifetime + membercode.Skew)
}

// Signing is the key as the codec takes it.
func (k MemberCodeKey) Signing() membercode.SigningKey {
	return membercode.SigningKey{ID: k.ID, Private: ed25519.PrivateKey(k.Private)}
}

// Verify is the public half, as tills hold it.
func (k MemberCodeKey) Verify() membercode.VerifyKey {
	return membercode.VerifyKey{ID: k.ID, Public: ed25519.PrivateKey(k.Private).Public().(ed25519.PublicKey), NotAfter: k.NotAfter()}
}

// NewMemberCodeKey makes a fresh key, created at now.
func NewMemberCodeKey(now time.Time) (MemberCodeKey, error) {
	sk, err := membercode.NewSigningKey(rand.Reader)
	if err != nil {
		return MemberCodeKey{}, err
	}
	sec := make([]byte, 32)
	if _, err := rand.Read(sec); err != nil {
		return MemberCodeKey{}, err
	}
	return MemberCodeKey{ID: sk.ID, Private: sk.Private, ShortSecret: sec, CreatedAt: now.UTC()}, nil
}

// MemberCodeClaim is one use of a member code at a till, as HQ keeps it.
type MemberCodeClaim struct {
	Code    string    `json:"code"` // membercode.Claim.ID
	Member  string    `json:"member"`
	Store   string    `json:"store"`
	Till    string    `json:"till"`
	SeenAt  time.Time `json:"seen_at"`  // the till's clock when scanned
	Expires time.Time `json:"expires"`  // the code's expiry
	At      time.Time `json:"received"` // HQ's clock when claimed
	Late    bool      `json:"late,omitempty"`
}

// MemberCodeRepeat is a code used at more than one till: the first use and
// this one. Late: this use reached HQ after the till had accepted it
// offline (the member got the sale; HQ can only report it).
type MemberCodeRepeat struct {
	First MemberCodeClaim `json:"first"`
	Again MemberCodeClaim `json:"again"`
}

// MemberCodeStore keeps the member-code keys and claims. Both stores
// implement it; it is its own interface, like CashierStore.
type MemberCodeStore interface {
	// MemberCodeKeys lists every key kept, oldest first.
	MemberCodeKeys(ctx context.Context) ([]MemberCodeKey, error)
	// EnsureMemberCodeKey returns the active key; if there is none it
	// stores k as the active key and returns it. Atomic: several HQ
	// processes racing on first use end up with the same key.
	EnsureMemberCodeKey(ctx context.Context, k MemberCodeKey) (MemberCodeKey, error)
	// RotateMemberCodeKey retires the active key (if any) at k.CreatedAt
	// (when k starts signing, which may be later than now) and makes k
	// active, in one transaction; keys whose codes expired before now are
	// deleted.
	RotateMemberCodeKey(ctx context.Context, k MemberCodeKey, now time.Time) error
	// ClaimMemberCode records c. The first claim of a code id is kept and
	// returned with repeat false; the same store and till claiming again
	// (a retried upload) changes nothing and is no repeat; another till
	// is a repeat, recorded once per till, and the first claim comes back.
	ClaimMemberCode(ctx context.Context, c MemberCodeClaim) (first MemberCodeClaim, repeat bool, err error)
	// MemberCodeRepeats lists the repeats recorded from since up to
	// before until (by Again.At; a zero until has no end), oldest first.
	// It reads by a time index, so a month costs that month's repeats.
	MemberCodeRepeats(ctx context.Context, since, until time.Time) ([]MemberCodeRepeat, error)
}

// ErrNoMemberCodes: the storage keeps no member-code keys.
var ErrNoMemberCodes = errors.New("hq: this storage keeps no member-code keys")

func (s *Server) memberCodeStore() (MemberCodeStore, error) {
	ms, ok := s.st.(MemberCodeStore)
	if !ok {
		return nil, ErrNoMemberCodes
	}
	return ms, nil
}

// activeMemberCodeKey is the key codes are signed with now, made on first
// use.
func (s *Server) activeMemberCodeKey(ctx context.Context) (MemberCodeKey, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return MemberCodeKey{}, err
	}
	keys, err := ms.MemberCodeKeys(ctx)
	if err != nil {
		return MemberCodeKey{}, err
	}
	now := s.o.Now()
	if k, ok := SigningMemberCodeKey(keys, now); ok {
		return k, nil
	}
	k, err := NewMemberCodeKey(now)
	if err != nil {
		return MemberCodeKey{}, err
	}
	return ms.EnsureMemberCodeKey(ctx, k)
}

// SigningMemberCodeKey is the key that signs codes at now: of the keys
// that have started signing, the latest. A rotated key waiting for its
// lead time is not it yet; its predecessor is. It is read from the
// storage each time, so every HQ process switches at the same instant.
func SigningMemberCodeKey(keys []MemberCodeKey, now time.Time) (MemberCodeKey, bool) {
	var best MemberCodeKey
	found := false
	for _, k := range keys {
		if k.CreatedAt.After(now) {
			continue
		}
		if !found || k.CreatedAt.After(best.CreatedAt) {
			best, found = k, true
		}
	}
	return best, found
}

// DefaultMemberCodeLead is how long a rotated key is published before it
// signs: four of a till's default 30-second pulls, so a till that misses
// one or two pulls still holds the key before it sees its first code.
const DefaultMemberCodeLead = 2 * time.Minute

// IssueMemberCode signs a member code for the member at HQ's clock: the QR
// text, the short typed code, and when it expires. Unknown member →
// ErrNotFound.
func (s *Server) IssueMemberCode(ctx context.Context, memberID string) (membercode.Code, error) {
	if _, err := s.st.Member(ctx, memberID); err != nil {
		return membercode.Code{}, fmt.Errorf("member code for %q: %w", memberID, err)
	}
	k, err := s.activeMemberCodeKey(ctx)
	if err != nil {
		return membercode.Code{}, fmt.Errorf("member code key: %w", err)
	}
	return membercode.Issue(k.Signing(), k.ShortSecret, memberID, s.o.Now())
}

// RotateMemberCodeKey makes a new key, published to the tills with their
// next pull, which starts signing after lead (0: Options.MemberCodeLead);
// until then the old key signs, and it keeps verifying until its last codes
// have expired. With no key yet the new one signs at once. It returns the
// new key's id and when it starts signing.
func (s *Server) RotateMemberCodeKey(ctx context.Context, lead time.Duration) (id string, signsFrom time.Time, err error) {
	if lead < 0 {
		return "", time.Time{}, fmt.Errorf("lead %s: give a duration of 0 or more (0: %s)", lead, s.o.MemberCodeLead)
	}
	if lead == 0 {
		lead = s.o.MemberCodeLead
	}
	ms, err := s.memberCodeStore()
	if err != nil {
		return "", time.Time{}, err
	}
	keys, err := ms.MemberCodeKeys(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.o.Now().UTC()
	from := now
	if len(keys) > 0 {
		from = now.Add(lead)
	}
	k, err := NewMemberCodeKey(from)
	if err != nil {
		return "", time.Time{}, err
	}
	defer s.forgetHead()
	if err := ms.RotateMemberCodeKey(ctx, k, now); err != nil {
		return "", time.Time{}, err
	}
	return k.ID, from, nil
}

// memberCodePublicKeys are the public keys tills verify with: the active
// key (made if there is none yet) and the retired ones still in use.
func (s *Server) memberCodePublicKeys(ctx context.Context) ([]wire.MemberCodeKey, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return nil, err
	}
	keys, err := ms.MemberCodeKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	if _, ok := SigningMemberCodeKey(keys, now); !ok {
		// None signs yet: make the first, then read them all again.
		if _, err := s.activeMemberCodeKey(ctx); err != nil {
			return nil, err
		}
		if keys, err = ms.MemberCodeKeys(ctx); err != nil {
			return nil, err
		}
	}
	out := []wire.MemberCodeKey{}
	for _, k := range keys {
		v := k.Verify()
		if !v.NotAfter.IsZero() && now.After(v.NotAfter) {
			continue
		}
		out = append(out, wire.MemberCodeKey{ID: v.ID, Public: v.Public, NotAfter: v.NotAfter})
	}
	return out, nil
}

// maxClaims bounds one claims upload.
const maxClaims = 500

// Wrong short codes a store may send per minute before HQ answers 429: a
// short code's 8 digits are guessable only by trying, so trying is slowed.
const shortTriesPerMinute = 20

// ClaimMemberCodes records the uses of member codes at a store's till and
// answers, for each, whether another till claimed the code first.
func (s *Server) ClaimMemberCodes(ctx context.Context, store string, cs []wire.MemberCodeClaim) ([]wire.MemberCodeClaimResult, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return nil, err
	}
	now := s.o.Now().UTC()
	out := make([]wire.MemberCodeClaimResult, 0, len(cs))
	for _, c := range cs {
		first, repeat, err := ms.ClaimMemberCode(ctx, MemberCodeClaim{Code: c.Code, Member: c.Member, Store: store, Till: c.Till,
			SeenAt: c.SeenAt.UTC(), Expires: c.Expires.UTC(), At: now, Late: c.Late})
		if err != nil {
			return nil, err
		}
		res := wire.MemberCodeClaimResult{Code: c.Code, Repeat: repeat}
		if repeat {
			res.FirstStore, res.FirstTill, res.FirstSeenAt = first.Store, first.Till, first.SeenAt
			s.o.Log.Warn("member code used at a second till", "member", c.Member, "code", c.Code,
				"store", store, "till", c.Till, "first_store", first.Store, "first_till", first.Till, "late", c.Late)
		}
		out = append(out, res)
	}
	return out, nil
}

// CheckShortCode verifies a typed short code and claims it for the till.
// Wrong → membercode.ErrBadSignature, too old → membercode.ErrExpired.
func (s *Server) CheckShortCode(ctx context.Context, store string, req wire.MemberCodeShort) (wire.MemberCodeShortAnswer, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return wire.MemberCodeShortAnswer{}, err
	}
	keys, err := ms.MemberCodeKeys(ctx)
	if err != nil {
		return wire.MemberCodeShortAnswer{}, err
	}
	now := s.o.Now()
	var secrets [][]byte
	for _, k := range keys {
		if na := k.NotAfter(); na.IsZero() || !now.After(na) {
			secrets = append(secrets, k.ShortSecret)
		}
	}
	cl, err := membercode.VerifyShort(secrets, req.Short, now)
	if err != nil {
		return wire.MemberCodeShortAnswer{}, err
	}
	seen := req.SeenAt
	if seen.IsZero() {
		seen = now
	}
	res, err := s.ClaimMemberCodes(ctx, store, []wire.MemberCodeClaim{{Code: cl.ID, Member: cl.MemberID, Till: req.Till, SeenAt: seen, Expires: cl.Expires}})
	if err != nil {
		return wire.MemberCodeShortAnswer{}, err
	}
	return wire.MemberCodeShortAnswer{Member: cl.MemberID, Expires: cl.Expires.UTC(), Claim: res[0]}, nil
}

// MemberCodeRepeats lists codes used at more than one till since.
func (s *Server) MemberCodeRepeats(ctx context.Context, since time.Time) ([]MemberCodeRepeat, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return nil, err
	}
	return ms.MemberCodeRepeats(ctx, since, time.Time{})
}

func (s *Server) memberCodeError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, ErrNoMemberCodes) {
		writeError(w, http.StatusNotImplemented, "no_member_codes", err.Error())
		return
	}
	s.o.Log.Error(what, "err", err)
	writeError(w, http.StatusServiceUnavailable, "storage", "HQ storage failed; retry")
}

func (s *Server) handleMemberCodeClaims(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authorize(w, r, RoleStore, "member codes are claimed with a store's credential")
	if !ok {
		return
	}
	var req wire.MemberCodeClaims
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"claims":[{"code":"…","member":"…","till":"T01","seen_at":"…","expires":"…"}]}: `+err.Error())
		return
	}
	if len(req.Claims) > maxClaims {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("at most %d claims an upload; send the rest next", maxClaims))
		return
	}
	for i, cl := range req.Claims {
		if cl.Code == "" || len(cl.Code) > 64 || !entry.ValidKey(cl.Member) || !entry.ValidID(cl.Till) {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("claims[%d]: code (1–64 characters), member and till (%s) are required", i, entry.IDRule(entry.MaxIDLen)))
			return
		}
	}
	res, err := s.ClaimMemberCodes(r.Context(), c.ID, req.Claims)
	if err != nil {
		s.memberCodeError(w, "claiming member codes", err)
		return
	}
	writeJSON(w, http.StatusOK, wire.MemberCodeClaimAnswer{Results: res})
}

func (s *Server) handleMemberCodeShort(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authorize(w, r, RoleStore, "short codes are checked with a store's credential")
	if !ok {
		return
	}
	var req wire.MemberCodeShort
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<12))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"short":"M10024-12345678","till":"T01"}: `+err.Error())
		return
	}
	if !entry.ValidID(req.Till) {
		writeError(w, http.StatusBadRequest, "bad_request", "till: "+entry.IDRule(entry.MaxIDLen))
		return
	}
	if !s.shortTry(c.ID, false) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too_many_tries", fmt.Sprintf("more than %d wrong short codes from this store in a minute; wait a minute, or scan the QR code", shortTriesPerMinute))
		return
	}
	ans, err := s.CheckShortCode(r.Context(), c.ID, req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, ans)
	case errors.Is(err, membercode.ErrMalformed):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, membercode.ErrExpired):
		s.shortTry(c.ID, true)
		writeError(w, http.StatusUnprocessableEntity, "member_code_expired", "the short code has expired; ask the member to refresh the code on the phone")
	case errors.Is(err, membercode.ErrBadSignature), errors.Is(err, membercode.ErrNoKeys):
		s.shortTry(c.ID, true)
		writeError(w, http.StatusUnprocessableEntity, "member_code_wrong", "the short code does not match; check the digits, or scan the QR code")
	default:
		s.memberCodeError(w, "checking a short code", err)
	}
}

// shortTry counts a wrong short code of store (wrong) or asks whether the
// store may try another; the count is per minute and per HQ process.
func (s *Server) shortTry(store string, wrong bool) bool {
	s.shortMu.Lock()
	defer s.shortMu.Unlock()
	minute := s.o.Now().Unix() / 60
	if s.shortMin != minute {
		s.shortMin, s.shortWrong = minute, map[string]int{}
	}
	if wrong {
		s.shortWrong[store]++
	}
	return s.shortWrong[store] < shortTriesPerMinute
}

func (s *Server) handleMemberCodeRepeats(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "since: an RFC 3339 time such as 2026-03-01T00:00:00+08:00")
			return
		}
		since = t
	}
	reps, err := s.MemberCodeRepeats(r.Context(), since)
	if err != nil {
		s.memberCodeError(w, "listing member-code repeats", err)
		return
	}
	if reps == nil {
		reps = []MemberCodeRepeat{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"repeats": reps})
}

// attachMemberCodeKeys puts every public key in use on a changes page; a
// storage without member codes sends none.
func (s *Server) attachMemberCodeKeys(ctx context.Context, ch *wire.Changes) error {
	keys, err := s.memberCodePublicKeys(ctx)
	if errors.Is(err, ErrNoMemberCodes) {
		return nil
	}
	ch.MemberCodeKeys = keys
	return err
}
