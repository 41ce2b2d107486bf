package hq

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// WebTill is the till id under which HQ writes the enrolments customers
// make on their phones: a virtual till of the store the QR names, with its
// own gapless sequence kept by HQ, so those entries go through Ingest like
// any till's.
const WebTill = "WEB"

// Pending is a self-enrolment waiting for its one-time code: what the form
// said and the code's hash. It is keyed by mobile.
type Pending struct {
	Mobile   string `json:"mobile"`
	Name     string `json:"name"`
	Birthday string `json:"birthday,omitempty"`
	Store    string `json:"store"`
	Cashier  string `json:"cashier,omitempty"`
	Referrer string `json:"referrer,omitempty"`
	Lang     string `json:"lang,omitempty"`
	// ConsentAt is when the customer ticked the consent line (required).
	ConsentAt time.Time `json:"consent_at"`
	// Messages: consent to member messages as well (optional).
	Messages bool `json:"messages,omitempty"`
	// CodeHash is hex SHA-256 of salt and code; the code itself is never kept.
	CodeHash string    `json:"code_hash"`
	Salt     string    `json:"salt"`
	Expires  time.Time `json:"expires"`
	Attempts int       `json:"attempts"`
	// Sends counts codes sent to this mobile since WindowStart (rate limit).
	Sends       int       `json:"sends"`
	WindowStart time.Time `json:"window_start"`
}

// Stale reports whether the record is of no more use: its code expired
// before expiredBefore (a sign-up never confirmed, or what is left of one
// confirmed) and its send window started before windowBefore, so the
// per-mobile send limit, which reads Sends and WindowStart, counts it no
// longer.
func (p Pending) Stale(expiredBefore, windowBefore time.Time) bool {
	return p.Expires.Before(expiredBefore) && p.WindowStart.Before(windowBefore)
}

// CardLink is a link to a member's card page; only its token's hash is
// kept. Revoked links stop working at once.
type CardLink struct {
	TokenHash string    `json:"token_hash"`
	Member    string    `json:"member"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// WebEnrolment records a self-enrolment: who consented to what and when,
// and where it was credited.
type WebEnrolment struct {
	Member    string    `json:"member"`
	Mobile    string    `json:"mobile"`
	Store     string    `json:"store"`
	Cashier   string    `json:"cashier,omitempty"`
	Referrer  string    `json:"referrer,omitempty"`
	ConsentAt time.Time `json:"consent_at"`
	Consent   string    `json:"consent"` // the consent line as shown
	Messages  bool      `json:"messages,omitempty"`
	At        time.Time `json:"at"`
}

// EnrolStore is the storage of self-enrolment: pending codes, card links
// and the consent records. Both HQ stores implement it.
type EnrolStore interface {
	// UpdatePending runs fn on the mobile's pending enrolment (found false
	// and a zero Pending when there is none) in one transaction; fn returns
	// the record to keep, or del to remove it. An error from fn writes
	// nothing and is returned as is.
	UpdatePending(ctx context.Context, mobile string, fn func(p Pending, found bool) (next Pending, del bool, err error)) error
	// PurgePending deletes the pending records that are Stale at
	// expiredBefore and windowBefore, each judged under the lock that
	// deletes it, so one renewed meanwhile (by this or another HQ process)
	// stays; it says how many went.
	PurgePending(ctx context.Context, expiredBefore, windowBefore time.Time) (int, error)
	// AddCardLink stores a new link.
	AddCardLink(ctx context.Context, l CardLink) error
	// CardLink finds a link by token hash (revoked ones too); unknown →
	// ErrNotFound.
	CardLink(ctx context.Context, tokenHash string) (CardLink, error)
	// RevokeCardLinks revokes every live link of the member and says how
	// many.
	RevokeCardLinks(ctx context.Context, member string, at time.Time) (int, error)
	// AddWebEnrolment records a self-enrolment (one per member; again →
	// no-op).
	AddWebEnrolment(ctx context.Context, e WebEnrolment) error
	// WebEnrolment reads it; unknown → ErrNotFound.
	WebEnrolment(ctx context.Context, member string) (WebEnrolment, error)
}

// ErrNoEnrolStore: the storage keeps no self-enrolment records.
var ErrNoEnrolStore = errors.New("hq: this storage does not support self-enrolment")

func (s *Server) enrolStore() (EnrolStore, error) {
	es, ok := s.st.(EnrolStore)
	if !ok {
		return nil, ErrNoEnrolStore
	}
	return es, nil
}

// EnrolEntries are the entries a till writes for one enrolment under
// program p (ledger.Ledger.Enrol): the enrol entry, the welcome coupon and,
// with a referrer, the referrer's points, the new member's points and the
// new member's referral coupon. They are stamped for store, till and
// cashier at at, numbered from first, the member id being store-till-first
// as at a till. Points expired on the referrer's lots are left to the
// tills, which keep the lots.
func EnrolEntries(p *loyalty.Program, store, till, cashier, key string, m entry.Member, referrer string, at time.Time, first uint64) []entry.Entry {
	var out []entry.Entry
	add := func(e entry.Entry) {
		e.Store, e.Till, e.Cashier, e.Key = store, till, cashier, key
		e.Seq = first + uint64(len(out))
		e.At = at.UTC()
		e.Local = at.In(p.Location()).Format(time.RFC3339)
		e.ProgramVersion = p.Version
		out = append(out, e)
	}
	m.ID = fmt.Sprintf("%s-%s-%d", store, till, first)
	if m.Tier == "" {
		m.Tier = p.EnrolTier
	}
	m.ReferrerID = referrer
	m.EnrolledAt = at.UTC().Format(time.RFC3339)
	add(entry.Entry{Kind: entry.KindEnrol, MemberID: m.ID, Enrol: &entry.Enrol{Member: m, ReferrerID: referrer}})
	add(entry.Entry{Kind: entry.KindCouponIssued, MemberID: m.ID,
		Coupon: &entry.CouponIssued{Coupon: memberCoupon(p.WelcomeCoupon(m.ID, at), m.ID), Reason: "welcome"}})
	if referrer == "" {
		return out
	}
	rp, np, _ := p.ReferralBonus()
	if rp > 0 {
		add(entry.Entry{Kind: entry.KindPointsAdjust, MemberID: referrer, PointsDelta: rp,
			Points: &entry.PointsChange{Reason: "referral", Points: rp}})
	}
	if np > 0 {
		add(entry.Entry{Kind: entry.KindPointsAdjust, MemberID: m.ID, PointsDelta: np,
			Points: &entry.PointsChange{Reason: "referred", Points: np}})
	}
	if rc := p.ReferralCoupon(m.ID, at); rc.Value > 0 {
		add(entry.Entry{Kind: entry.KindCouponIssued, MemberID: m.ID,
			Coupon: &entry.CouponIssued{Coupon: memberCoupon(rc, m.ID), Reason: "referral"}})
	}
	return out
}

// memberCoupon is the coupon as a ledger entry holds it (as the till's).
func memberCoupon(c loyalty.Coupon, member string) entry.MemberCoupon {
	mc := entry.MemberCoupon{ID: c.ID, MemberID: member, Name: c.Name, Threshold: c.Threshold, Value: c.Value, SKUs: c.SKUs}
	if !c.ValidFrom.IsZero() {
		mc.ValidFrom = c.ValidFrom.UTC().Format(time.RFC3339)
	}
	if !c.ValidUntil.IsZero() {
		mc.ValidUntil = c.ValidUntil.UTC().Format(time.RFC3339)
	}
	return mc
}

// ValidMobile reports whether m is a mainland mobile number (11 digits
// starting 1[3-9]), the form HQ sends codes to.
func ValidMobile(m string) bool {
	if len(m) != 11 || m[0] != '1' || m[1] < '3' || m[1] > '9' {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] < '0' || m[i] > '9' {
			return false
		}
	}
	return true
}

// ValidBirthday reports whether b is YYYY-MM-DD, a real date not after
// today and not before 1900 ("" is allowed: the field is optional).
func ValidBirthday(b string, today time.Time) bool {
	if b == "" {
		return true
	}
	t, err := time.Parse("2006-01-02", b)
	if err != nil || t.Year() < 1900 {
		return false
	}
	y, mo, d := today.Date()
	return !t.After(time.Date(y, mo, d, 0, 0, 0, 0, time.UTC))
}

// newOTP is a six-digit code with its salt and salted hash.
func newOTP() (code, salt, hash string, err error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", "", "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", "", err
	}
	code = fmt.Sprintf("%06d", n.Int64())
	salt = hex.EncodeToString(b[:])
	return code, salt, otpHash(salt, code), nil
}

func otpHash(salt, code string) string {
	h := sha256.Sum256([]byte(salt + "\x00" + code))
	return hex.EncodeToString(h[:])
}

// checkOTP compares in constant time.
func checkOTP(p Pending, code string) bool {
	return hmac.Equal([]byte(otpHash(p.Salt, code)), []byte(p.CodeHash))
}

// newCardToken is a card link token: 32 random bytes, URL-safe.
func newCardToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// EnrolLink is what an enrolment QR carries: the store it credits and,
// optionally, the cashier and the referring member.
type EnrolLink struct {
	Store, Cashier, Referrer string
}

// enrolSig is the link's signature: the first 80 bits of HMAC-SHA256 over
// its fields, so a customer cannot move the credit to another store,
// cashier or referrer by editing the URL.
func enrolSig(key []byte, l EnrolLink) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("enrol\x00" + l.Store + "\x00" + l.Cashier + "\x00" + l.Referrer))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:10])
}

// EnrolURL is the signed enrolment URL under the public base URL.
func EnrolURL(base string, key []byte, l EnrolLink) (string, error) {
	if len(key) < 16 {
		return "", errors.New("hq: the enrolment key must be at least 16 bytes (set HQ_ENROL_KEY)")
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("hq: public URL %q: give HQ's address as customers' phones reach it, e.g. https://hq.example.com", base)
	}
	for what, id := range map[string]string{"store": l.Store, "cashier": l.Cashier, "referrer": l.Referrer} {
		if (id != "" || what == "store") && !entry.ValidID(id) {
			return "", fmt.Errorf("hq: %s id %q: use %s", what, id, entry.IDRule(entry.MaxIDLen))
		}
	}
	q := url.Values{"s": {l.Store}}
	if l.Cashier != "" {
		q.Set("c", l.Cashier)
	}
	if l.Referrer != "" {
		q.Set("r", l.Referrer)
	}
	q.Set("k", enrolSig(key, l))
	u.Path += "/m/enrol"
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// parseEnrolLink reads and checks a link's query.
func parseEnrolLink(key []byte, q url.Values) (EnrolLink, bool) {
	l := EnrolLink{Store: q.Get("s"), Cashier: q.Get("c"), Referrer: q.Get("r")}
	if len(key) == 0 || !entry.ValidID(l.Store) {
		return l, false
	}
	if (l.Cashier != "" && !entry.ValidID(l.Cashier)) || (l.Referrer != "" && !entry.ValidID(l.Referrer)) {
		return l, false
	}
	return l, hmac.Equal([]byte(enrolSig(key, l)), []byte(q.Get("k")))
}

// windowLimiter counts events per key in a fixed window, in memory: the per
// client address limit (the per mobile one is kept with the pending
// record, so it holds across HQ processes).
type windowLimiter struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	hits   map[string]*limitWindow
}

type limitWindow struct {
	start time.Time
	n     int
}

func newWindowLimiter(n int, w time.Duration) *windowLimiter {
	return &windowLimiter{n: n, window: w, hits: map[string]*limitWindow{}}
}

// allow counts one event for key at now, false when over the limit.
func (l *windowLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.hits) > 100_000 { // bound memory: drop windows that are over
		for k, w := range l.hits {
			if now.Sub(w.start) >= l.window {
				delete(l.hits, k)
			}
		}
	}
	w := l.hits[key]
	if w == nil || now.Sub(w.start) >= l.window {
		w = &limitWindow{start: now}
		l.hits[key] = w
	}
	if w.n >= l.n {
		return false
	}
	w.n++
	return true
}
