package membercode_test

import (
	"crypto/ed25519"
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

// BenchmarkEd25519Verify is the bare signature check Verify is built on,
// run beside it so a loaded machine's figures can be compared: Verify's
// own work (decoding, key lookup, the code id) is the difference.
func BenchmarkEd25519Verify(b *testing.B) {
	k := key(b, 1)
	msg := make([]byte, 96)
	sig := ed25519.Sign(k.Private, msg)
	pub := k.Private.Public().(ed25519.PublicKey)
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("no")
		}
	}
}
