package wire

import "time"

// Member-code paths (store credential). A till claims each member code it
// accepts, so a code used at another till is answered as a repeat; a till
// that accepted codes while HQ was unreachable uploads their claims later,
// and HQ records any repeat among them for review. A typed short code has
// no signature: the till asks HQ to check it (and claim it).
const (
	PathMemberCodeClaims = "/v1/member-codes/claim" // POST MemberCodeClaims → MemberCodeClaimAnswer
	PathMemberCodeShort  = "/v1/member-codes/short" // POST MemberCodeShort → MemberCodeShortAnswer
)

// MemberCodeClaim is one use of a member code at a till.
type MemberCodeClaim struct {
	Code    string    `json:"code"` // the code's id (membercode.Claim.ID), never the code itself
	Member  string    `json:"member"`
	Till    string    `json:"till"`
	SeenAt  time.Time `json:"seen_at"` // the till's clock when it was scanned
	Expires time.Time `json:"expires"`
	// Late: the till accepted the code offline; a repeat can only be
	// recorded, not refused.
	Late bool `json:"late,omitempty"`
}

// MemberCodeClaims is a till's upload of claims (at most 500).
type MemberCodeClaims struct {
	Claims []MemberCodeClaim `json:"claims"`
}

// MemberCodeClaimResult answers one claim. Repeat: another till claimed
// the code first (First* say where and when).
type MemberCodeClaimResult struct {
	Code        string    `json:"code"`
	Repeat      bool      `json:"repeat"`
	FirstStore  string    `json:"first_store,omitempty"`
	FirstTill   string    `json:"first_till,omitempty"`
	FirstSeenAt time.Time `json:"first_seen_at,omitzero"`
}

// MemberCodeClaimAnswer answers MemberCodeClaims, one result per claim in order.
type MemberCodeClaimAnswer struct {
	Results []MemberCodeClaimResult `json:"results"`
}

// MemberCodeShort asks HQ to check a typed short code and claim it for the till.
type MemberCodeShort struct {
	Short  string    `json:"short"`
	Till   string    `json:"till"`
	SeenAt time.Time `json:"seen_at"`
}

// MemberCodeShortAnswer: the member the short code belongs to, and the
// claim's result. A wrong or expired short code is answered 422 with
// code "member_code_wrong" or "member_code_expired".
type MemberCodeShortAnswer struct {
	Member  string                `json:"member"`
	Expires time.Time             `json:"expires"`
	Claim   MemberCodeClaimResult `json:"claim"`
}
