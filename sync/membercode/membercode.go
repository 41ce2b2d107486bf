// Package membercode is the member code a member's phone shows: a short
// QR payload, signed by HQ with Ed25519, that names the member and a 30 s
// time step, so a till verifies it offline with HQ's public keys alone and
// a screenshot stops working within about a minute. A short typed number
// goes under the QR for a scanner that fails; it carries no signature and
// is checked by HQ only (VerifyShort).
//
// The package is pure: no I/O, no clock of its own (every call takes now),
// no imports of the project's packages. The design and its threat model are
// in docs/membercode.md.
package membercode

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Timing. A code names one step; tills accept the current and the previous
// step, and a code up to Skew early or late, for clocks that disagree.
const (
	Step = 30 * time.Second
	// Lifetime is how long after its step starts a code is accepted (the
	// current and the previous step), before Skew.
	Lifetime = 2 * Step
	// Skew is how far the till's clock may be from HQ's or the phone's.
	Skew = 15 * time.Second
)

// Prefix starts every code's text; the rest is RFC 4648 base32 without
// padding, so the whole text is in the QR alphanumeric set.
const Prefix = "M1"

// Sizes of the binary payload: key id, step, member id, signature.
const (
	keyIDLen = 4
	stepLen  = 4
	sigLen   = ed25519.SignatureSize
	fixedLen = keyIDLen + stepLen + sigLen
	// MaxMemberLen is the longest member id a code carries (the ledger's
	// id rule allows 128).
	MaxMemberLen = 128
)

// MinLen and MaxLen bound the length of a code's text (prefix included),
// for a scanner's read to be recognised by its shape.
var (
	MinLen = len(Prefix) + b32.EncodedLen(fixedLen+1)
	MaxLen = len(Prefix) + b32.EncodedLen(fixedLen+MaxMemberLen)
)

// ShortDigits is the length of the check number of a short code.
const ShortDigits = 8

// Errors of Verify; wrapped with detail, errors.Is works.
var (
	ErrMalformed    = errors.New("membercode: not a member code")
	ErrForeign      = errors.New("membercode: signed by a key this chain does not hold")
	ErrBadSignature = errors.New("membercode: signature does not match")
	ErrExpired      = errors.New("membercode: code expired")
	// ErrNoKeys: the verifier holds no key at all (a new till before its
	// first sync), so no code can be checked.
	ErrNoKeys = errors.New("membercode: no member code keys yet; sync with HQ first")
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// domain separates code signatures from anything else the key could sign.
const domain = "posagent member code v1\x00"

// SigningKey is HQ's private key for codes. ID is derived from the public
// key (8 hex digits), so the same key always has the same id.
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
}

// VerifyKey is a public key tills verify with. NotAfter, when set, is the
// last instant any code signed with it is accepted (a retired key).
type VerifyKey struct {
	ID       string
	Public   ed25519.PublicKey
	NotAfter time.Time // zero: open
}

// Code is an issued code.
type Code struct {
	Text    string    // the QR payload
	Short   string    // typed fallback, checked online by HQ: "<member>-<8 digits>"
	Expires time.Time // the end of its lifetime (tills allow Skew more)
}

// Claim is what a valid code says.
type Claim struct {
	KeyID    string
	MemberID string
	Step     int64     // Unix time / Step
	Issued   time.Time // the start of Step
	Expires  time.Time // Issued + Lifetime
	// ID names the code for repeat detection: the same member, step and
	// key give the same ID (Ed25519 signatures are deterministic).
	ID string
}

// KeyID is the id of a public key: the first 4 bytes of its SHA-256, hex.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:keyIDLen])
}

// NewSigningKey makes a key from 32 bytes of r (crypto/rand.Reader).
func NewSigningKey(r io.Reader) (SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return SigningKey{}, fmt.Errorf("membercode: generating a key: %w", err)
	}
	return SigningKey{ID: KeyID(pub), Private: priv}, nil
}

// Public is the key tills verify with.
func (k SigningKey) Public() VerifyKey {
	return VerifyKey{ID: k.ID, Public: k.Private.Public().(ed25519.PublicKey)}
}

// StepOf is the step now falls in.
func StepOf(now time.Time) int64 { return floorDiv(now.Unix(), int64(Step/time.Second)) }

// StepStart is when step begins.
func StepStart(step int64) time.Time { return time.Unix(step*int64(Step/time.Second), 0).UTC() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Issue signs a code for memberID at now; shortSecret keys the short code.
func Issue(k SigningKey, shortSecret []byte, memberID string, now time.Time) (Code, error) {
	if len(k.Private) != ed25519.PrivateKeySize {
		return Code{}, errors.New("membercode: the signing key is not an Ed25519 private key")
	}
	if len(k.ID) != 2*keyIDLen {
		return Code{}, fmt.Errorf("membercode: key id %q is not %d hex digits", k.ID, 2*keyIDLen)
	}
	kid, err := hex.DecodeString(k.ID)
	if err != nil {
		return Code{}, fmt.Errorf("membercode: key id %q is not hex", k.ID)
	}
	if err := checkMember(memberID); err != nil {
		return Code{}, err
	}
	if len(shortSecret) < 16 {
		return Code{}, errors.New("membercode: the short-code secret must be at least 16 bytes")
	}
	step := StepOf(now)
	if step < 0 || step > 0xFFFFFFFF {
		return Code{}, fmt.Errorf("membercode: time %s is outside what a code can carry", now)
	}
	body := make([]byte, 0, fixedLen+len(memberID))
	body = append(body, kid...)
	body = binary.BigEndian.AppendUint32(body, uint32(step))
	body = append(body, memberID...)
	sig := ed25519.Sign(k.Private, signed(body))
	text := Prefix + b32.EncodeToString(append(body, sig...))
	return Code{Text: text, Short: memberID + "-" + shortCheck(shortSecret, memberID, step), Expires: StepStart(step).Add(Lifetime)}, nil
}

func signed(body []byte) []byte {
	m := make([]byte, 0, len(domain)+len(body))
	return append(append(m, domain...), body...)
}

// checkMember applies the ledger's id rule: letters, digits, '.', '_', '-',
// starting with a letter or digit.
func checkMember(id string) error {
	if id == "" || len(id) > MaxMemberLen {
		return fmt.Errorf("membercode: member id must be 1 to %d characters", MaxMemberLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return fmt.Errorf("membercode: member id %q has a character outside letters, digits, '.', '_', '-'", id)
		}
	}
	return nil
}

// Parsed is a code's content before its signature is checked.
type Parsed struct {
	KeyID    string
	MemberID string
	Step     int64
	body     []byte // key id, step, member: what was signed
	sig      []byte
}

// Looks reports whether text has a code's shape (prefix, alphabet,
// length), without decoding it: what a reader's decoder checks.
func Looks(text string) bool {
	if len(text) < MinLen || len(text) > MaxLen || !strings.EqualFold(text[:len(Prefix)], Prefix) {
		return false
	}
	for i := len(Prefix); i < len(text); i++ {
		c := text[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// Parse decodes a code's text (either case: some scanners lower it) without
// checking its signature. Anything that is not a code → ErrMalformed.
func Parse(text string) (Parsed, error) {
	if !Looks(text) {
		return Parsed{}, fmt.Errorf("%w: wrong prefix, characters or length", ErrMalformed)
	}
	raw, err := b32.DecodeString(strings.ToUpper(text[len(Prefix):]))
	if err != nil {
		return Parsed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// A canonical encoding only: the same payload has one text, so the
	// text (and the code id) cannot be varied by its padding bits.
	if b32.EncodeToString(raw) != strings.ToUpper(text[len(Prefix):]) {
		return Parsed{}, fmt.Errorf("%w: non-canonical encoding", ErrMalformed)
	}
	if len(raw) <= fixedLen {
		return Parsed{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	n := len(raw) - sigLen
	body, sig := raw[:n], raw[n:]
	member := string(body[keyIDLen+stepLen:])
	if err := checkMember(member); err != nil {
		return Parsed{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return Parsed{
		KeyID:    hex.EncodeToString(body[:keyIDLen]),
		MemberID: member,
		Step:     int64(binary.BigEndian.Uint32(body[keyIDLen:])),
		body:     body,
		sig:      sig,
	}, nil
}

// Verify checks a code's text against keys at now. Errors, in the order
// they are checked: ErrMalformed, ErrNoKeys, ErrForeign (no key with its
// id), ErrBadSignature, ErrExpired (also for a key past its NotAfter, and
// for a code from further in the future than Skew: a wrong clock).
func Verify(keys []VerifyKey, text string, now time.Time) (Claim, error) {
	p, err := Parse(text)
	if err != nil {
		return Claim{}, err
	}
	if len(keys) == 0 {
		return Claim{}, ErrNoKeys
	}
	var key *VerifyKey
	for i := range keys {
		if keys[i].ID == p.KeyID {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		return Claim{}, fmt.Errorf("%w (key %s)", ErrForeign, p.KeyID)
	}
	if len(key.Public) != ed25519.PublicKeySize || !ed25519.Verify(key.Public, signed(p.body), p.sig) {
		return Claim{}, fmt.Errorf("%w (key %s)", ErrBadSignature, p.KeyID)
	}
	c := p.claim()
	switch {
	case !key.NotAfter.IsZero() && now.After(key.NotAfter):
		return c, fmt.Errorf("%w: key %s retired at %s", ErrExpired, p.KeyID, key.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Issued.Add(-Skew)):
		return c, fmt.Errorf("%w: issued %s, ahead of this clock (%s); check the till's clock", ErrExpired,
			c.Issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !now.Before(c.Expires.Add(Skew)):
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

func (p Parsed) claim() Claim {
	c := claimFor(p.MemberID, p.Step)
	c.KeyID = p.KeyID
	return c
}

// claimFor is the claim of member at step. Its ID does not depend on the
// form (QR or short code) or the key, so a screenshot used once scanned and
// once typed is still one code.
func claimFor(member string, step int64) Claim {
	issued := StepStart(step)
	m := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step))
	m.Write([]byte("code\x00"))
	m.Write(b[:])
	m.Write([]byte(member))
	return Claim{MemberID: member, Step: step, Issued: issued, Expires: issued.Add(Lifetime), ID: hex.EncodeToString(m.Sum(nil)[:12])}
}

// shortCheck is the short code's number: an HMAC of member and step,
// reduced to ShortDigits decimal digits.
func shortCheck(secret []byte, member string, step int64) string {
	m := hmac.New(sha256.New, secret)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(step))
	m.Write([]byte("short\x00"))
	m.Write(b[:])
	m.Write([]byte(member))
	v := binary.BigEndian.Uint64(m.Sum(nil)[:8]) % 100_000_000
	return fmt.Sprintf("%0*d", ShortDigits, v)
}

// ParseShort splits a typed short code into member id and check number.
// Spaces the cashier typed between groups are ignored.
func ParseShort(short string) (member, check string, err error) {
	s := strings.ReplaceAll(strings.TrimSpace(short), " ", "")
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || len(s)-i-1 != ShortDigits {
		return "", "", fmt.Errorf("%w: a short code is the member id, '-', and %d digits", ErrMalformed, ShortDigits)
	}
	member, check = s[:i], s[i+1:]
	for _, c := range []byte(check) {
		if c < '0' || c > '9' {
			return "", "", fmt.Errorf("%w: a short code ends in %d digits", ErrMalformed, ShortDigits)
		}
	}
	if err := checkMember(member); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return member, check, nil
}

// VerifyShort checks a typed short code against the secrets HQ holds (the
// current key's and those of retired keys still in their lifetime), for
// the current and previous step with the same Skew as Verify. It returns
// the claim (KeyID empty: a short code names no key); a wrong number, or
// one outside its lifetime, → ErrBadSignature or ErrExpired.
func VerifyShort(secrets [][]byte, short string, now time.Time) (Claim, error) {
	member, check, err := ParseShort(short)
	if err != nil {
		return Claim{}, err
	}
	if len(secrets) == 0 {
		return Claim{}, ErrNoKeys
	}
	lo, hi := StepOf(now.Add(-Lifetime-Skew))+1, StepOf(now.Add(Skew))
	old := false
	for _, sec := range secrets {
		// Steps within reach of now, newest first; then a few older ones,
		// only to tell "expired" from "wrong".
		for step := hi; step >= lo-4; step-- {
			if !hmac.Equal([]byte(shortCheck(sec, member, step)), []byte(check)) {
				continue
			}
			if step < lo {
				old = true
				continue
			}
			return claimFor(member, step), nil
		}
	}
	if old {
		return Claim{}, fmt.Errorf("%w: the short code is older than %s", ErrExpired, Lifetime)
	}
	return Claim{}, fmt.Errorf("%w: the short code does not match", ErrBadSignature)
}
