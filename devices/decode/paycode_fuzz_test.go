package decode

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParsePayCode: never panics; whatever it accepts is digits of a
// published length and prefix, given back unchanged by Reveal and never by
// String.
func FuzzParsePayCode(f *testing.F) {
	for _, s := range []string{"134567890123456789", "2512345678901234", "6227001234567890123", "6222021234567890", "", "MEMBER:1", "1345678901234567８"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParsePayCode(s)
		if !ok {
			if p.Valid() || p.Scheme() != "" {
				t.Fatalf("rejected %q but returned %v", s, p.Scheme())
			}
			return
		}
		if p.Reveal() != s || !allDigits(s) {
			t.Fatalf("accepted %q, reveals %q", s, p.Reveal())
		}
		n := len(s)
		switch p.Scheme() {
		case PayWeChat:
			if n != 18 || s[0] != '1' || s[1] > '5' {
				t.Fatalf("not a WeChat code: %q", s)
			}
		case PayAlipay:
			if n < 16 || n > 24 || s[:2] < "25" || s[:2] > "30" {
				t.Fatalf("not an Alipay code: %q", s)
			}
		case PayUnionPay:
			if n != 19 || s[:2] != "62" {
				t.Fatalf("not a UnionPay code: %q", s)
			}
		default:
			t.Fatalf("unknown scheme %q", p.Scheme())
		}
		if strings.Contains(p.String(), s) || strings.Contains(fmt.Sprintf("%v %+v %#v %s", p, p, p, p), s) {
			t.Fatalf("String shows the code")
		}
	})
}
