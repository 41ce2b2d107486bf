package decode_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/devices/decode"
	"posagent/sync/membercode"
)

// The decoder recognises exactly what sync/membercode issues and parses,
// by shape alone: its bounds are the codec's.
func TestMemberCodeShapeFollowsCodec(t *testing.T) {
	k, err := membercode.NewSigningKey(bytes.NewReader(bytes.Repeat([]byte{3}, 32)))
	require.NoError(t, err)
	secret := bytes.Repeat([]byte{1}, 16)
	now := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
	for _, m := range []string{"1", "M10024", strings.Repeat("z", membercode.MaxMemberLen)} {
		c, err := membercode.Issue(k, secret, m, now)
		require.NoError(t, err)
		for _, text := range []string{c.Text, strings.ToLower(c.Text)} {
			mc, ok := decode.MemberCodeOf(decode.Read{Kind: "barcode", Data: text, Symbology: "QR"})
			require.True(t, ok, "member id %q", m)
			require.Equal(t, text, mc.Text())
			require.NotContains(t, mc.String(), text[2:12])
		}
		_, ok := decode.MemberCodeOf(decode.Read{Kind: "rfid", Data: c.Text})
		require.False(t, ok, "only a scanned barcode")
	}
	require.Equal(t, 119, membercode.MinLen)
	require.Equal(t, 322, membercode.MaxLen)
	for _, n := range []int{membercode.MinLen - 1, membercode.MaxLen + 1} {
		_, ok := decode.MemberCodeOf(decode.Read{Kind: "barcode", Data: "M1" + strings.Repeat("A", n-2)})
		require.False(t, ok, "length %d", n)
	}
	for _, n := range []int{membercode.MinLen, membercode.MaxLen} {
		_, ok := decode.MemberCodeOf(decode.Read{Kind: "barcode", Data: "M1" + strings.Repeat("A", n-2)})
		require.True(t, ok, "length %d", n)
	}
	for _, s := range []string{"MEMBER:10024", "134567890123456789", "M1" + strings.Repeat("A", 150) + "1", "X1" + strings.Repeat("A", 150), "M1" + strings.Repeat("A", 150) + "="} {
		_, ok := decode.MemberCodeOf(decode.Read{Kind: "barcode", Data: s})
		require.False(t, ok, s)
	}
}

// FuzzMemberCodeOf: whatever has a member code's shape to the decoder is
// exactly what the codec's Looks accepts; nothing else panics or passes.
func FuzzMemberCodeOf(f *testing.F) {
	f.Add("M1" + strings.Repeat("AB", 70))
	f.Add("MEMBER:1")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		_, ok := decode.MemberCodeOf(decode.Read{Kind: "barcode", Data: s})
		if ok != membercode.Looks(s) {
			t.Fatalf("decoder %v, codec %v for %q", ok, membercode.Looks(s), s)
		}
	})
}
