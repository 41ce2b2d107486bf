package entry

import "fmt"

// The id rule of the till: store, till and cashier ids, and the ids a POS
// gives a write (receipt, refund, top-up and enrolment ids), are letters,
// digits, '.', '_' and '-', starting with a letter or digit. Such ids are
// safe in file names, log lines, CSV cells and composite keys (no NUL, no
// control or bidirectional characters that would make one id look like
// another).
const (
	MaxIDLen  = 64  // store, till and cashier ids
	MaxKeyLen = 128 // receipt, refund, top-up and enrolment ids (the POS's own ids)
)

// ValidID reports whether id is a valid store, till or cashier id.
func ValidID(id string) bool { return validName(id, MaxIDLen) }

// ValidKey reports whether k is a valid receipt, refund, top-up or
// enrolment id.
func ValidKey(k string) bool { return validName(k, MaxKeyLen) }

// IDRule says what the id rule allows, for messages.
func IDRule(max int) string {
	return fmt.Sprintf("letters, digits, '.', '_' or '-', starting with a letter or digit, at most %d characters", max)
}

func validName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}
