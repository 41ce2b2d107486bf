package membercode_test

import (
	"bytes"
	"testing"
	"time"

	"posagent/sync/membercode"
)

// FuzzParse: any text either parses into a code that re-encodes to itself
// (its upper-case form) or is refused as malformed; Verify never panics and
// never accepts text under a key that did not sign it.
func FuzzParse(f *testing.F) {
	k, err := membercode.NewSigningKey(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	c, err := membercode.Issue(k, secret, "M10024", t0)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{c.Text, c.Short, "", "M1", "MEMBER:12", "134567890123456789", c.Text[:60]} {
		f.Add(s)
	}
	other, _ := membercode.NewSigningKey(bytes.NewReader(bytes.Repeat([]byte{2}, 32)))
	wrong := other.Public()
	wrong.ID = k.ID
	f.Fuzz(func(t *testing.T, s string) {
		p, err := membercode.Parse(s)
		if err == nil {
			if !membercode.Looks(s) || p.MemberID == "" || len(p.KeyID) != 8 {
				t.Fatalf("parsed %q into %+v", s, p)
			}
		}
		if _, err := membercode.Verify([]membercode.VerifyKey{wrong}, s, t0.Add(time.Second)); err == nil {
			t.Fatalf("%q verified under a key that did not sign it", s)
		}
		_, _, _ = membercode.ParseShort(s)
		_, _ = membercode.VerifyShort([][]byte{secret}, s, t0)
	})
}
