// Package token turns a decoded read into a member card token by a card
// rule, hashes it with a keyed hash and masks card numbers for display.
//
// Pure code: no I/O. The token is the only unmasked card data that should
// leave the devices layer, and only as Hash(key, token) when stored or sent.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"posagent/devices/decode"
)

// Rule says how a read becomes a member token.
type Rule struct {
	// Source: "track2_pan" (the PAN on track 2 of a swipe), "barcode_regex"
	// (a group of Regex applied to the barcode text; empty Regex takes the
	// whole text) or "uid" (the RFID UID in UIDFormat).
	Source string `yaml:"source" json:"source"`
	Regex  string `yaml:"regex" json:"regex"`
	// Group is the regex group that holds the token; 0 is the whole match.
	Group int `yaml:"group" json:"group"`
	// UIDFormat: hex (default), hex_rev, 8h10d (dec10), 8h10d_rev, 10h13d,
	// 6h8d or w26 (see decode.UIDFormats).
	UIDFormat string `yaml:"uid_format" json:"uid_format"`
	// Prefix: the token must start with one of these comma-separated
	// prefixes (e.g. the program's card BIN); empty accepts any.
	Prefix string `yaml:"prefix" json:"prefix"`
	// Luhn: the token must be digits with a valid Luhn check digit.
	Luhn bool `yaml:"luhn" json:"luhn"`
}

// Sources of a rule.
const (
	SourceTrack2PAN    = "track2_pan"
	SourceBarcodeRegex = "barcode_regex"
	SourceUID          = "uid"
)

// Validate checks the rule itself, so a config error shows at start-up
// rather than at the first read.
func (r Rule) Validate() error {
	switch r.Source {
	case SourceTrack2PAN:
	case SourceBarcodeRegex:
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return fmt.Errorf("token: rule regex does not compile: %v", err)
		}
		if r.Group < 0 || r.Group > re.NumSubexp() {
			return fmt.Errorf("token: rule group %d but the regex has %d groups", r.Group, re.NumSubexp())
		}
	case SourceUID:
		if f := strings.ToLower(r.UIDFormat); f != "" && !decode.ValidUIDFormat(f) {
			return fmt.Errorf("token: rule uid_format %q unknown; use one of %s", r.UIDFormat, strings.Join(decode.UIDFormats, ", "))
		}
	default:
		return fmt.Errorf("token: rule source %q unknown; use track2_pan, barcode_regex or uid", r.Source)
	}
	return nil
}

// Token extracts the member card token from rd. Errors are *decode.Error
// (code "rule" for reads the rule rejects, with the Hint/HintZH pair of one
// of Hints) and never contain card data.
func (r Rule) Token(rd decode.Read) (string, error) {
	if err := r.Validate(); err != nil {
		return "", ruleError(HintSetup, "%v", err)
	}
	var tok string
	switch r.Source {
	case SourceTrack2PAN:
		if rd.Kind != "msr" {
			return "", ruleError(HintSetup, "the rule expects a card swipe; the read is %s, not msr", rd.Kind)
		}
		t, ok := rd.Track(2)
		if !ok || t.Status != decode.StatusOK {
			// A track read with errors is a misread; a missing track 2
			// is a misread or a card that has none (not ours).
			st, h := decode.StatusMissing, HintAgainOrForeign
			if ok {
				st = t.Status
			}
			if st == decode.StatusError || st == decode.StatusLRC {
				h = HintAgain
			}
			return "", ruleError(h, "track 2 is %s", st)
		}
		pan, err := decode.Track2PAN(t.Data)
		if err != nil {
			return "", withHint(err, HintForeign)
		}
		tok = pan
	case SourceBarcodeRegex:
		if rd.Kind != "barcode" {
			return "", ruleError(HintSetup, "the rule expects a barcode; the read is %s, not barcode", rd.Kind)
		}
		if r.Regex == "" {
			tok = rd.Data
			break
		}
		re := regexp.MustCompile(r.Regex) // validated above
		m := re.FindStringSubmatch(rd.Data)
		if m == nil || m[r.Group] == "" {
			return "", ruleError(HintForeign, "barcode does not match the member code pattern")
		}
		tok = m[r.Group]
	case SourceUID:
		if len(rd.UID) == 0 {
			return "", ruleError(HintSetup, "the rule expects an RFID card; the read has no UID")
		}
		s, err := decode.FormatUID(rd.UID, r.UIDFormat)
		if err != nil {
			return "", withHint(err, HintForeign) // a UID too short for the format
		}
		tok = s
	}
	if tok == "" {
		return "", ruleError(HintForeign, "empty card token")
	}
	if r.Prefix != "" {
		ok := false
		for _, p := range strings.Split(r.Prefix, ",") {
			if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(tok, p) {
				ok = true
				break
			}
		}
		if !ok {
			return "", ruleError(HintForeign, "card number prefix not accepted")
		}
	}
	if r.Luhn && !decode.Luhn(tok) {
		// A misread digit and a number that is not ours both fail it.
		return "", ruleError(HintAgainOrForeign, "card number fails the Luhn check")
	}
	return tok, nil
}

// Hash is the keyed hash stored and sent instead of the token:
// lower-case hex HMAC-SHA256(key, token).
func Hash(key []byte, token string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// Mask hides a card number for display and logs: 13+ characters keep the
// first 6 and last 4 (6222********1234), 5–12 keep the last 4, shorter are
// fully masked.
func Mask(s string) string { return decode.Mask(s) }
