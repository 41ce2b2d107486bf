package hq

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"posagent/sync/membercode"
	"posagent/sync/wire"
)

// MemberCodeKey is one of HQ's member-code keys: the Ed25519 key that signs
// the QR codes and the secret of the short typed codes. One key is active
// (RetiredAt zero); a retired one stays until its codes have expired.
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
	// and makes k active, in one transaction; keys whose codes expired
	// before k.CreatedAt are deleted.
	RotateMemberCodeKey(ctx context.Context, k MemberCodeKey) error
	// ClaimMemberCode records c. The first claim of a code id is kept and
	// returned with repeat false; the same store and till claiming again
	// (a retried upload) changes nothing and is no repeat; another till
	// is a repeat, recorded once per till, and the first claim comes back.
	ClaimMemberCode(ctx context.Context, c MemberCodeClaim) (first MemberCodeClaim, repeat bool, err error)
	// MemberCodeRepeats lists the repeats recorded since (by Again.At), oldest first.
	MemberCodeRepeats(ctx context.Context, since time.Time) ([]MemberCodeRepeat, error)
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
	for _, k := range keys {
		if k.RetiredAt.IsZero() {
			return k, nil
		}
	}
	k, err := NewMemberCodeKey(s.o.Now())
	if err != nil {
		return MemberCodeKey{}, err
	}
	return ms.EnsureMemberCodeKey(ctx, k)
}

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

// RotateMemberCodeKey makes a new active key; the old one keeps verifying
// until its codes have expired. It returns the new key's id.
func (s *Server) RotateMemberCodeKey(ctx context.Context) (string, error) {
	ms, err := s.memberCodeStore()
	if err != nil {
		return "", err
	}
	k, err := NewMemberCodeKey(s.o.Now())
	if err != nil {
		return "", err
	}
	if err := ms.RotateMemberCodeKey(ctx, k); err != nil {
		return "", err
	}
	return k.ID, nil
}

// memberCodePublicKeys are the public keys tills verify with: the active
// key (made if there is none yet) and the retired ones still in use.
func (s *Server) memberCodePublicKeys(ctx context.Context) ([]wire.MemberCodeKey, error) {
	if _, err := s.activeMemberCodeKey(ctx); err != nil {
		return nil, err
	}
	ms, _ := s.memberCodeStore()
	keys, err := ms.MemberCodeKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
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
