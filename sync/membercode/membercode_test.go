package membercode_test

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/membercode"
)

// t0 is the start of a step.
var t0 = membercode.StepStart(membercode.StepOf(time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)))

var secret = bytes.Repeat([]byte{7}, 32)

func key(t testing.TB, seed byte) membercode.SigningKey {
	k, err := membercode.NewSigningKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	require.NoError(t, err)
	return k
}

func TestIssueVerify(t *testing.T) {
	k := key(t, 1)
	c, err := membercode.Issue(k, secret, "M10024", t0.Add(5*time.Second))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c.Text, membercode.Prefix))
	require.True(t, membercode.Looks(c.Text))
	require.Equal(t, t0.Add(membercode.Lifetime), c.Expires)
	require.Regexp(t, `^M10024-[0-9]{8}$`, c.Short)
	keys := []membercode.VerifyKey{key(t, 9).Public(), k.Public()}

	tests := []struct {
		name string
		at   time.Duration // after t0
		err  error
	}{
		{"at issue", 5 * time.Second, nil},
		{"start of its step", 0, nil},
		{"till clock behind, within skew", -membercode.Skew, nil},
		{"till clock behind, beyond skew", -membercode.Skew - time.Second, membercode.ErrExpired},
		{"next step", 45 * time.Second, nil},
		{"last instant", membercode.Lifetime + membercode.Skew - time.Nanosecond, nil},
		{"expired", membercode.Lifetime + membercode.Skew, membercode.ErrExpired},
		{"an hour later", time.Hour, membercode.ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := membercode.Verify(keys, c.Text, t0.Add(tc.at))
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "M10024", cl.MemberID)
			require.Equal(t, k.ID, cl.KeyID)
			require.Equal(t, t0, cl.Issued)
			require.Len(t, cl.ID, 24)
		})
	}

	// Scanners that lower the case.
	_, err = membercode.Verify(keys, strings.ToLower(c.Text), t0)
	require.NoError(t, err)

	_, err = membercode.Verify([]membercode.VerifyKey{key(t, 9).Public()}, c.Text, t0)
	require.ErrorIs(t, err, membercode.ErrForeign)
	_, err = membercode.Verify(nil, c.Text, t0)
	require.ErrorIs(t, err, membercode.ErrNoKeys)
	// Same id, other key: a forgery.
	forged := key(t, 9).Public()
	forged.ID = k.ID
	_, err = membercode.Verify([]membercode.VerifyKey{forged}, c.Text, t0)
	require.ErrorIs(t, err, membercode.ErrBadSignature)
	// A retired key.
	retired := k.Public()
	retired.NotAfter = t0.Add(10 * time.Second)
	_, err = membercode.Verify([]membercode.VerifyKey{retired}, c.Text, t0.Add(5*time.Second))
	require.NoError(t, err)
	_, err = membercode.Verify([]membercode.VerifyKey{retired}, c.Text, t0.Add(11*time.Second))
	require.ErrorIs(t, err, membercode.ErrExpired)

	for _, bad := range []string{"", "MEMBER:123", "M1", c.Text[:len(c.Text)-1], c.Text + "A", "X1" + c.Text[2:], c.Text[:40] + "1" + c.Text[41:], "134567890123456789"} {
		_, err := membercode.Verify(keys, bad, t0)
		require.Error(t, err, bad)
		require.False(t, errors.Is(err, membercode.ErrExpired), bad)
	}
}

func TestIssueRefuses(t *testing.T) {
	k := key(t, 1)
	for _, m := range []string{"", "-M1", "M 1", "M1\n", strings.Repeat("9", membercode.MaxMemberLen+1), "会员"} {
		_, err := membercode.Issue(k, secret, m, t0)
		require.Error(t, err, "%q", m)
	}
	_, err := membercode.Issue(k, secret[:8], "M1", t0)
	require.Error(t, err)
	_, err = membercode.Issue(membercode.SigningKey{ID: k.ID}, secret, "M1", t0)
	require.Error(t, err)
}

// The length of a code grows with the member id only; state it.
func TestLength(t *testing.T) {
	k := key(t, 1)
	for _, m := range []string{"M1", "M10024", "1000000001", strings.Repeat("x", membercode.MaxMemberLen)} {
		c, err := membercode.Issue(k, secret, m, t0)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(c.Text), membercode.MinLen)
		require.LessOrEqual(t, len(c.Text), membercode.MaxLen)
		t.Logf("member id of %d chars: code of %d chars", len(m), len(c.Text))
	}
}

func TestShort(t *testing.T) {
	c, err := membercode.Issue(key(t, 1), secret, "M10024", t0.Add(3*time.Second))
	require.NoError(t, err)
	other := bytes.Repeat([]byte{8}, 32)
	cl, err := membercode.VerifyShort([][]byte{other, secret}, c.Short, t0.Add(50*time.Second))
	require.NoError(t, err)
	require.Equal(t, "M10024", cl.MemberID)
	qr, err := membercode.Verify([]membercode.VerifyKey{key(t, 1).Public()}, c.Text, t0)
	require.NoError(t, err)
	require.Equal(t, qr.ID, cl.ID, "scanned and typed are one code")
	// Typed with spaces.
	_, err = membercode.VerifyShort([][]byte{secret}, " M10024-"+c.Short[7:11]+" "+c.Short[11:], t0)
	require.NoError(t, err)
	_, err = membercode.VerifyShort([][]byte{secret}, c.Short, t0.Add(membercode.Lifetime+membercode.Skew))
	require.ErrorIs(t, err, membercode.ErrExpired)
	_, err = membercode.VerifyShort([][]byte{other}, c.Short, t0)
	require.ErrorIs(t, err, membercode.ErrBadSignature)
	_, err = membercode.VerifyShort([][]byte{secret}, "M10025"+c.Short[6:], t0)
	require.ErrorIs(t, err, membercode.ErrBadSignature)
	for _, bad := range []string{"", "M10024", "M10024-1234567", "M10024-123456789", "-12345678", "M10024-1234567a"} {
		_, err := membercode.VerifyShort([][]byte{secret}, bad, t0)
		require.ErrorIs(t, err, membercode.ErrMalformed, bad)
	}
}

// No code issued for member A ever verifies as member B: random members,
// steps and keys, the code's text with one bit of its payload flipped, and
// codes verified under the wrong key.
func TestPropertyNoCrossMember(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 3))
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	member := func() string {
		b := make([]byte, 1+r.IntN(20))
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return string(b)
	}
	keys := make([]membercode.SigningKey, 4)
	var pubs []membercode.VerifyKey
	for i := range keys {
		var err error
		keys[i], err = membercode.NewSigningKey(crand.Reader)
		require.NoError(t, err)
		pubs = append(pubs, keys[i].Public())
	}
	for i := range 400 {
		k := keys[r.IntN(len(keys))]
		a := member()
		at := t0.Add(time.Duration(r.Int64N(int64(365*24*time.Hour))) - 180*24*time.Hour)
		c, err := membercode.Issue(k, secret, a, at)
		require.NoError(t, err)
		cl, err := membercode.Verify(pubs, c.Text, at)
		require.NoError(t, err)
		require.Equal(t, a, cl.MemberID)
		// Every other key refuses it outright.
		for _, o := range keys {
			if o.ID == k.ID {
				continue
			}
			wrong := o.Public()
			wrong.ID = k.ID
			_, err := membercode.Verify([]membercode.VerifyKey{wrong}, c.Text, at)
			require.ErrorIs(t, err, membercode.ErrBadSignature)
		}
		// Flip one bit of the payload: never a valid code for anyone.
		p, err := membercode.Parse(c.Text)
		require.NoError(t, err)
		raw := flip(t, c.Text, r.IntN(8*rawLen(c.Text)))
		cl2, err := membercode.Verify(pubs, raw, at)
		require.Error(t, err, "iteration %d: a flipped bit verified as %q (was %q)", i, cl2.MemberID, p.MemberID)
	}
}
