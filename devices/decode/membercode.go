package decode

import (
	"log/slog"
	"strings"
)

// Member code shape: the signed, expiring member code a member's phone
// shows (sync/membercode): "M1" and RFC 4648 base32 without padding, 119
// to 322 characters. Only the shape is checked here; the agent verifies
// the signature and the time with HQ's keys. The numbers must follow
// sync/membercode (a test holds them to it).
const (
	memberCodePrefix = "M1"
	memberCodeMin    = 119
	memberCodeMax    = 322
)

// MemberCode is the text of a scanned member code. It is good for about a
// minute, and whoever holds it within that minute can be taken for the
// member, so String and LogValue show only its length.
type MemberCode struct{ text string }

// Text is the code as scanned, for the verifier.
func (m MemberCode) Text() string { return m.text }

// String shows no code.
func (m MemberCode) String() string { return "member code (redacted)" }

// LogValue redacts for log/slog.
func (m MemberCode) LogValue() slog.Value { return slog.StringValue(m.String()) }

// MemberCodeOf reports whether a scanned barcode has the shape of a member
// code. Case is ignored: some scanners lower what they read.
func MemberCodeOf(r Read) (MemberCode, bool) {
	if r.Kind != "barcode" {
		return MemberCode{}, false
	}
	s := r.Data
	if len(s) < memberCodeMin || len(s) > memberCodeMax || !strings.EqualFold(s[:len(memberCodePrefix)], memberCodePrefix) {
		return MemberCode{}, false
	}
	for i := len(memberCodePrefix); i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return MemberCode{}, false
		}
	}
	return MemberCode{text: s}, true
}
