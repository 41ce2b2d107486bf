// Package hq is the HQ side of store sync: it takes every store's ledger
// entries exactly once, keeps the chain-wide member balances, sends member
// states and program versions back to the stores, lets HQ systems pull the
// synced entries, and reports KPIs.
//
// Storage sits behind the Store interface; sync/hq/store/bolt (embedded, the
// default) and sync/hq/store/pg (PostgreSQL) implement it and pass the same
// conformance suite (sync/hq/hqtest).
package hq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

// Errors stores return; wrap with context, errors.Is works.
var (
	ErrNotFound = errors.New("hq: not found")
	ErrConflict = errors.New("hq: already exists with other content")
	ErrRevoked  = errors.New("hq: credential revoked")
	ErrCursor   = errors.New("hq: bad cursor; start again with an empty cursor")
	// ErrNotFlagged: a review of a member that is not flagged.
	ErrNotFlagged = errors.New("hq: member is not flagged")
)

// GapError is returned by Store.Ingest when a batch starts beyond the next
// sequence HQ expects for the till; the client rewinds to Expected.
type GapError struct{ Expected uint64 }

func (e *GapError) Error() string {
	return fmt.Sprintf("hq: gap in sequence, expected %d", e.Expected)
}

// Roles of a credential.
const (
	RoleStore = "store" // a store uploading its own entries
	RoleAdmin = "admin" // HQ systems: export, KPIs, admin endpoints
)

// RightPII lets an admin credential read members' personal data (name,
// mobile, birth year, card tokens) unmasked: in the export and the member
// records. It is given when the credential is issued, to admins only.
const RightPII = "pii"

// Credential is a bearer token holder. Only the SHA-256 of the token is kept.
type Credential struct {
	Role      string    `json:"role"`
	ID        string    `json:"id"` // store id, or admin name
	Name      string    `json:"name,omitempty"`
	TimeZone  string    `json:"time_zone,omitempty"` // store's zone, for reports
	TokenHash string    `json:"token_hash"`          // hex SHA-256 of the token
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Rights beyond the role's, fixed at issue (RightPII).
	Rights []string `json:"rights,omitempty"`
}

// Revoked reports whether the credential no longer authenticates.
func (c Credential) Revoked() bool { return !c.RevokedAt.IsZero() }

// Has reports whether the credential was issued with the right.
func (c Credential) Has(right string) bool { return slices.Contains(c.Rights, right) }

// Item is one position of an uploaded batch: a valid entry, or a dead
// letter (Entry nil, Raw and Reason set).
type Item struct {
	Seq    uint64
	Entry  *entry.Entry
	Raw    []byte
	Reason string
}

// Batch is an upload checked by the server: Items[i] has Seq First+i.
type Batch struct {
	Store, Till string
	First, Last uint64
	Items       []Item
	ReceivedAt  time.Time
}

// DeadLetter is an entry set aside at ingest.
type DeadLetter struct {
	Store      string    `json:"store"`
	Till       string    `json:"till"`
	Seq        uint64    `json:"seq"`
	Reason     string    `json:"reason"`
	Raw        []byte    `json:"raw"`
	ReceivedAt time.Time `json:"received_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// ID names a dead letter as "store/till/seq".
func (d DeadLetter) ID() string { return fmt.Sprintf("%s/%s/%d", d.Store, d.Till, d.Seq) }

// CouponState is a coupon a member holds, with how often stores used it.
type CouponState struct {
	entry.MemberCoupon
	Known    bool `json:"known"`    // issue seen (a use may arrive first)
	Uses     int  `json:"uses"`     // sales that used it
	Restores int  `json:"restores"` // refunds/voids that gave it back
}

// Used reports whether the coupon is spent.
func (c CouponState) Used() bool { return c.Uses-c.Restores > 0 }

// Member is HQ's record of one member.
type Member struct {
	ID          string        `json:"id"`
	Data        *entry.Member `json:"data,omitempty"` // nil until the enrolment arrives
	Points      int64         `json:"points"`
	StoredValue int64         `json:"stored_value"`
	// Flagged: a balance went below zero (offline spending at several
	// stores) or a coupon was used twice; kept until an admin reviews it
	// (ReviewMember), and set again by a later entry that does the same.
	Flagged  bool          `json:"flagged"`
	LastSale time.Time     `json:"last_sale,omitzero"`
	TierAt   time.Time     `json:"tier_at,omitzero"` // when Data.Tier was last set by a tier change
	Coupons  []CouponState `json:"coupons,omitempty"`
	// Reviews are the reviews that cleared the flag, oldest first.
	Reviews []Review `json:"reviews,omitempty"`
}

// Review is an admin's review of a flagged member. It clears the flag and
// nothing else: the entries stay and the balances stand as they are (they
// are recorded here as they stood when reviewed).
type Review struct {
	By          string    `json:"by"` // the admin credential's id, or who ran hq on the storage
	At          time.Time `json:"at"`
	Note        string    `json:"note,omitempty"`
	Points      int64     `json:"points"`
	StoredValue int64     `json:"stored_value"`
}

// Review clears the flag and records r with the balances as they stand;
// the stores call it inside their transaction.
func (m *Member) Review(r Review) error {
	if !m.Flagged {
		return fmt.Errorf("%w (%s); nothing to review", ErrNotFlagged, m.ID)
	}
	r.Points, r.StoredValue = m.Points, m.StoredValue
	m.Flagged = false
	m.Reviews = append(m.Reviews, r)
	return nil
}

// State is the member as sent to stores.
func (m Member) State() wire.MemberState {
	s := wire.MemberState{Points: m.Points, StoredValue: m.StoredValue, Flagged: m.Flagged}
	if m.Data != nil {
		s.Member = *m.Data
	}
	s.Member.ID = m.ID
	for _, c := range m.Coupons {
		if c.Known && !c.Used() {
			s.Coupons = append(s.Coupons, c.MemberCoupon)
		}
	}
	if !m.LastSale.IsZero() {
		s.LastSale = m.LastSale.UTC().Format(time.RFC3339)
	}
	return s
}

// Stored is an entry as kept by HQ.
type Stored struct {
	Entry      entry.Entry
	ReceivedAt time.Time
}

// Store is HQ's storage. Every method is safe for concurrent use.
type Store interface {
	// AddCredential stores a new credential; (Role, ID) taken → ErrConflict.
	AddCredential(ctx context.Context, c Credential) error
	// RevokeCredential marks it revoked; unknown → ErrNotFound.
	RevokeCredential(ctx context.Context, role, id string) error
	// CredentialByHash finds a credential by token hash (revoked ones too);
	// unknown → ErrNotFound.
	CredentialByHash(ctx context.Context, tokenHash string) (Credential, error)
	Credentials(ctx context.Context) ([]Credential, error)

	// TillAcked is the highest sequence of the till held with no gap before.
	TillAcked(ctx context.Context, store, till string) (uint64, error)
	// Ingest stores the batch atomically: entries beyond the till's acked
	// sequence are stored (valid ones applied to member balances with
	// ApplyEntries, the rest kept as dead letters) and the till acked to
	// Last. A batch wholly at or below acked changes nothing and is answered
	// as a duplicate. A batch starting beyond acked+1 → *GapError. The Ack
	// is AckFor(batch, dead letters in First..Last).
	Ingest(ctx context.Context, b Batch) (wire.Ack, error)

	// DeadLetters lists dead letters, oldest first; resolved ones only if all.
	DeadLetters(ctx context.Context, all bool) ([]DeadLetter, error)
	// ResolveDeadLetter stores e (now valid) in place of the dead letter and
	// applies it; unknown or already resolved → ErrNotFound.
	ResolveDeadLetter(ctx context.Context, store, till string, seq uint64, e entry.Entry, at time.Time) error

	// Changes pages member states (snapshot, then those changed since the
	// cursor) and program versions published since the cursor.
	Changes(ctx context.Context, cursor string, limit int) (wire.Changes, error)
	// Snapshot calls fn for every member's state as of one consistent
	// point, streaming (memory does not grow with the members), and returns
	// the Changes cursor that continues exactly after it: every member
	// change the snapshot did not hold comes with the feed, and none it
	// held comes again. The cursor covers members only; programs come with
	// the feed from its start.
	Snapshot(ctx context.Context, fn func(wire.MemberState) error) (cursor string, err error)
	// Export pages stored entries in an order that never skips one even
	// when ingest transactions commit out of order.
	Export(ctx context.Context, cursor string, limit int) (wire.ExportPage, error)
	// Scan calls fn for every stored entry.
	Scan(ctx context.Context, fn func(Stored) error) error

	// Member returns HQ's record; unknown → ErrNotFound.
	Member(ctx context.Context, id string) (Member, error)
	// MemberLookup returns a member's state and the acked marks of the
	// store's tills, read at one point, so the state holds exactly those
	// tills' entries up to the marks; unknown member → ErrNotFound.
	MemberLookup(ctx context.Context, store, id string) (wire.MemberLookup, error)
	// Members calls fn for every member.
	Members(ctx context.Context, fn func(Member) error) error
	// ApplyDeltas applies HQ-originated changes (e.g. recall coupons).
	ApplyDeltas(ctx context.Context, ds []Delta) error
	// FlaggedMembers lists the flagged members by id.
	FlaggedMembers(ctx context.Context) ([]Member, error)
	// ReviewMember clears a flagged member's flag and appends r (Points and
	// StoredValue filled in from the member) to its reviews, in one
	// transaction; entries and balances stay, and the member goes out with
	// the next changes. Unknown → ErrNotFound; not flagged → ErrNotFlagged.
	ReviewMember(ctx context.Context, id string, r Review) (Member, error)

	// PublishProgram stores a program version. Versions must increase; the
	// same version with the same source again is a no-op, with another
	// source → ErrConflict; an older version than the newest → ErrConflict.
	PublishProgram(ctx context.Context, p wire.ProgramVersion) error
	Programs(ctx context.Context) ([]wire.ProgramVersion, error)

	// Aggregator keeps the KPI aggregates in the ingest transaction.
	Aggregator

	Ping(ctx context.Context) error
	Close() error
}

// AckFor is the acknowledgement of a batch: the same for the first upload
// and every duplicate (bar the Duplicate flag), so a retry after a lost
// answer gives the client exactly what the first answer said.
func AckFor(b Batch, dead []DeadLetter, duplicate bool) wire.Ack {
	a := wire.Ack{Store: b.Store, Till: b.Till, Acked: b.Last, Expected: b.Last + 1, Duplicate: duplicate}
	for _, d := range dead {
		if d.Seq >= b.First && d.Seq <= b.Last {
			a.DeadLettered = append(a.DeadLettered, wire.DeadLetter{Store: d.Store, Till: d.Till, Seq: d.Seq, Reason: d.Reason})
		}
	}
	return a
}

// Fresh returns the items of b beyond acked, split into entries to apply
// and dead letters to keep.
func Fresh(b Batch, acked uint64) (entries []entry.Entry, dead []DeadLetter) {
	for _, it := range b.Items {
		if it.Seq <= acked {
			continue
		}
		if it.Entry != nil {
			entries = append(entries, *it.Entry)
			continue
		}
		dead = append(dead, DeadLetter{Store: b.Store, Till: b.Till, Seq: it.Seq, Reason: it.Reason, Raw: it.Raw, ReceivedAt: b.ReceivedAt})
	}
	return entries, dead
}
