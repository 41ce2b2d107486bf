package membercode_test

import (
	"testing"

	"posagent/sync/membercode"
)

// BenchmarkVerify is the till's cost of one scan (target < 100 µs).
func BenchmarkVerify(b *testing.B) {
	k := key(b, 1)
	c, err := membercode.Issue(k, secret, "M10024", t0)
	if err != nil {
		b.Fatal(err)
	}
	keys := []membercode.VerifyKey{key(b, 2).Public(), k.Public()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := membercode.Verify(keys, c.Text, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssue is HQ's cost of one code.
func BenchmarkIssue(b *testing.B) {
	k := key(b, 1)
	for b.Loop() {
		if _, err := membercode.Issue(k, secret, "M10024", t0); err != nil {
			b.Fatal(err)
		}
	}
}
