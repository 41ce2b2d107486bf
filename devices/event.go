package devices

import (
	"time"

	"posagent/devices/decode"
)

// Event kinds.
const (
	KindData   = "data"
	KindError  = "error"
	KindStatus = "status"
	// KindPayment: a customer's payment code was scanned (Payment).
	KindPayment = "payment"
	// KindMemberCode: a signed member code was scanned (MemberCode).
	KindMemberCode = "member_code"
)

// Event is one thing a device did. Exactly one of Data, Error, Status,
// Payment, MemberCode is set.
type Event struct {
	Device string    // Config.Name
	Till   string    // the till the device belongs to
	At     time.Time // when the last byte of the read arrived
	Kind   string    // data | error | status
	Data   *Data
	Error  *Error
	Status *Status
	// Payment is a payment code; it never becomes Data (no token, no
	// hash, no member lookup).
	Payment *Payment
	// MemberCode is a member code from a phone, for the agent to verify;
	// it never goes through the card rule.
	MemberCode *MemberCode
}

// MemberCode is a scanned member code (decode.MemberCode prints redacted).
type MemberCode struct {
	Code      decode.MemberCode
	Symbology string
}

// Payment is a customer's payment code read by a scanner. Code prints as
// its scheme only (decode.PayCode); it is the zero PayCode when the
// device's payment_codes setting is drop, so the digits leave the device
// layer only for the POS.
type Payment struct {
	Scheme    decode.PayScheme
	Code      decode.PayCode
	Dropped   bool   // payment_codes: drop
	Symbology string // barcode symbology, when the scanner names it
}

// Data is a good read. It never holds a full card number or track:
// Masked and the track data are masked, TokenHash is keyed.
type Data struct {
	Kind      string         // msr | rfid | barcode
	Symbology string         // barcode symbology ("EAN-13", "QR", …)
	TokenHash string         // token.Hash(key, token): what the ledger looks up
	Masked    string         // the token, masked (6222********1234)
	Tracks    []decode.Track // MSR per-track status; Data masked
	RawLen    int            // bytes in the frame
	Duration  time.Duration  // first byte to last byte of the read
}

// Error is a failed read: Code is stable (checksum, format, bad_read,
// rule, framing, too_long, report), Hint is what to tell the cashier and
// HintZH the same in Chinese where the devices layer has it (the card
// rule's errors; empty for others).
type Error struct {
	Code    string
	Message string
	Hint    string
	HintZH  string
}

// Device states (UnifiedPOS-style life cycle).
const (
	StateClosed      = "closed"      // not opened yet
	StateEnabled     = "enabled"     // opened, claimed, reads flow
	StateOffline     = "offline"     // not connected / unplugged; retrying
	StateClaimed     = "claimed"     // claimed by another process; retrying
	StateUnsupported = "unsupported" // transport not available in this build/OS
	StateReleased    = "released"    // closed at shutdown
	// StateNotAnswering: the port is open but the reader behind it does
	// not answer (a PN532 without power, on a loose cable or not in HSU
	// mode); the host keeps trying and reports enabled once it answers.
	StateNotAnswering = "not_answering"
)

// Status is a device state change.
type Status struct {
	Online bool
	State  string // one of the State* constants
	Detail string // why, what to do
}

// DeviceStatus is a device's current state, for health pages.
type DeviceStatus struct {
	Name, Till, Transport string
	Path                  string // resolved path when known
	State                 string
	Online                bool
	Detail                string
	Since                 time.Time // of the current state
	Reads, Errors         uint64
	LastRead              time.Time
}
