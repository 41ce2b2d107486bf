// Package wire is the store↔HQ protocol: the JSON bodies both sides exchange.
// Entries travel as the shared ledger entry type, so HQ stores exactly what
// the till wrote.
package wire

import (
	"time"

	"posagent/ledger/entry"
	"posagent/ledger/staff"
)

// Paths of the HQ API for stores. Every request carries the store's
// credential as "Authorization: Bearer <token>"; HQ takes the store id from
// the credential, never from the body alone.
const (
	PathBatches = "/v1/batches" // POST Batch → Ack
	PathChanges = "/v1/changes" // GET ?cursor=&limit= → Changes
	PathExport  = "/v1/export"  // GET ?cursor=&limit= → ExportPage (HQ systems, admin token)
	// PathSnapshot: GET → every member as of one point, a stream of
	// SnapshotLine (newline-delimited JSON, gzip), for a till with no cursor.
	PathSnapshot = "/v1/snapshot"
)

// HeaderIdempotencyKey carries "store/till/first-last" on every upload, so a
// retried request is recognised even before its body is read.
const HeaderIdempotencyKey = "Idempotency-Key"

// Batch is a run of consecutive entries of one till, First..Last inclusive.
// Bodies are sent gzip-compressed (Content-Encoding: gzip).
type Batch struct {
	Store   string        `json:"store"`
	Till    string        `json:"till"`
	First   uint64        `json:"first"`
	Last    uint64        `json:"last"`
	Entries []entry.Entry `json:"entries"`
}

// Ack answers an upload. Acked is the highest sequence of the till HQ holds
// with no gap before it; the client marks everything up to it as synced.
// A duplicate upload gets the same Ack as the first. On a gap (First is
// beyond Acked+1) HQ answers 409 with Expected = Acked+1 and the client
// rewinds to it.
type Ack struct {
	Store     string `json:"store"`
	Till      string `json:"till"`
	Acked     uint64 `json:"acked"`
	Expected  uint64 `json:"expected"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// DeadLettered lists entries HQ accepted into its dead-letter list
	// instead of applying (malformed or refused by a rule); they count as
	// received so one bad record never stalls the till.
	DeadLettered []DeadLetter `json:"dead_lettered,omitempty"`
}

// DeadLetter names an entry set aside, and why.
type DeadLetter struct {
	Store  string `json:"store"`
	Till   string `json:"till"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Expected is set with code "gap".
	Expected uint64 `json:"expected,omitempty"`
	// Field names the field refused, as a JSON path (code "bad_id": e.g.
	// "till" or "entries[3].cashier").
	Field string `json:"field,omitempty"`
}

// MemberState is HQ's truth for one member: the data, the balances HQ has
// applied from every store, and the coupons the member holds.
type MemberState struct {
	Member      entry.Member         `json:"member"`
	Points      int64                `json:"points"`
	StoredValue int64                `json:"stored_value"`
	Coupons     []entry.MemberCoupon `json:"coupons,omitempty"`
	// Flagged is set when offline spending at several stores drove a
	// balance below zero; kept for review, never dropped.
	Flagged bool `json:"flagged,omitempty"`
	// LastSale is the UTC time of the member's last sale anywhere (RFC 3339).
	LastSale string `json:"last_sale,omitempty"`
}

// ProgramVersion is a loyalty program published by HQ, as its YAML source.
type ProgramVersion struct {
	Version       int    `json:"version"`
	EffectiveFrom string `json:"effective_from"` // RFC 3339
	Source        string `json:"source"`
}

// Changes is one page of what changed at HQ since a cursor. Cursors are
// opaque; a client stores the last one and sends it back.
type Changes struct {
	Members  []MemberState    `json:"members,omitempty"`
	Programs []ProgramVersion `json:"programs,omitempty"`
	Cursor   string           `json:"cursor"`
	More     bool             `json:"more"`
	// Cashiers is the store's whole cashier list (PIN hashes, never PINs)
	// as of CashiersVersion, sent when the till asked (QueryCashiers) with
	// another version. No CashiersVersion: the till's list is current.
	Cashiers        []staff.Cashier `json:"cashiers,omitempty"`
	CashiersVersion string          `json:"cashiers_version,omitempty"`
	// MemberCodeKeys are the public keys member codes are verified with,
	// all of them, on every page; absent: keep the keys held.
	MemberCodeKeys []MemberCodeKey `json:"member_code_keys,omitempty"`
}

// MemberCodeKey is a public key of HQ's member codes (sync/membercode).
// NotAfter (RFC 3339), when set, is the last instant its codes are accepted.
type MemberCodeKey struct {
	ID       string    `json:"id"`
	Public   []byte    `json:"public"` // Ed25519, 32 bytes, base64 in JSON
	NotAfter time.Time `json:"not_after,omitzero"`
}

// ExportedEntry is an entry as HQ systems pull it, with when HQ stored it.
type ExportedEntry struct {
	entry.Entry
	ReceivedAt string `json:"received_at"`
}

// ExportPage is one page of the HQ pull API.
type ExportPage struct {
	Entries []ExportedEntry `json:"entries"`
	Cursor  string          `json:"cursor"`
	More    bool            `json:"more"`
}

// SnapshotLine is one line of a snapshot stream: a member's state, or, as
// the last line, the end. A stream without its end line was cut and must
// be thrown away: take a new snapshot.
type SnapshotLine struct {
	Member *MemberState `json:"m,omitempty"`
	End    *SnapshotEnd `json:"end,omitempty"`
}

// SnapshotEnd closes a snapshot: how many members it held and the changes
// cursor that continues exactly after it (nothing skipped, nothing
// repeated).
type SnapshotEnd struct {
	Members int64  `json:"members"`
	Cursor  string `json:"cursor"`
}
