// Package messages decides which reminders HQ sends to members (after a
// sale, before a birthday, before points expire, a recall gift, a tier
// upgrade) and renders them in zh and en. It is pure: functions over
// values, no I/O. HQ's stores keep the messages in an outbox written in
// the transaction of the change that caused them, and a sender hands them
// to the chain's gateway (see sync/hq's outbox).
package messages

import "time"

// Kind is what a message is about.
type Kind string

const (
	KindAfterSale      Kind = "after_sale"      // points now pay for at least a set amount
	KindBirthday       Kind = "birthday"        // N days before the birthday
	KindPointsExpiring Kind = "points_expiring" // points expire within N days
	KindRecall         Kind = "recall"          // turned at-risk or dormant; carries the recall coupon
	KindTierUpgrade    Kind = "tier_upgrade"    // reached a higher tier
)

// Message is one reminder to one member. ID is stable: the same cause
// always yields the same ID (e.g. "birthday/<member>/2027"), so writing it
// twice stores it once and a gateway can drop a repeat by ID.
type Message struct {
	ID     string `json:"id"`
	Kind   Kind   `json:"kind"`
	Member string `json:"member"`
	Store  string `json:"store"` // the member's home store: its time zone sets quiet hours and dates
	// To is where the gateway sends it (the member's mobile). Personal
	// data: never logged.
	To   string `json:"to"`
	Lang string `json:"lang"` // zh | en
	Text string `json:"text"` // rendered from the kind's template
	// CreatedAt is when the cause happened; NotBefore holds delivery back
	// (quiet hours are applied by the sender on top).
	CreatedAt time.Time `json:"created_at"`
	NotBefore time.Time `json:"not_before,omitzero"`
}
