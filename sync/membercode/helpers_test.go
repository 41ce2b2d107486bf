package membercode_test

import (
	"encoding/base32"
	"testing"

	"posagent/sync/membercode"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func rawLen(text string) int { return b32.DecodedLen(len(text) - len(membercode.Prefix)) }

// flip flips bit i of the code's binary payload and encodes it again.
func flip(t testing.TB, text string, i int) string {
	raw, err := b32.DecodeString(text[len(membercode.Prefix):])
	if err != nil {
		t.Fatal(err)
	}
	raw[i/8] ^= 1 << (i % 8)
	return membercode.Prefix + b32.EncodeToString(raw)
}
