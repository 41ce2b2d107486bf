package hq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/membercode"
)

// TestIssueMemberCode: HQ makes its key on first use, signs codes that
// verify with the key's public half for the member they were issued to,
// refuses unknown members, and after a rotation codes of the old key keep
// verifying until they expire.
func TestIssueMemberCode(t *testing.T) {
	now := hqtest.T0
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	ctx := context.Background()
	till := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err := e.st.Ingest(ctx, hqtest.Batch(till.Enrol("M7", now)))
	require.NoError(t, err)

	_, err = e.srv.IssueMemberCode(ctx, "M404")
	require.ErrorIs(t, err, hq.ErrNotFound)

	c, err := e.srv.IssueMemberCode(ctx, "M7")
	require.NoError(t, err)
	ms := e.st.(hq.MemberCodeStore)
	keys, err := ms.MemberCodeKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	pub := []membercode.VerifyKey{keys[0].Verify()}
	cl, err := membercode.Verify(pub, c.Text, now)
	require.NoError(t, err)
	require.Equal(t, "M7", cl.MemberID)
	require.True(t, c.Expires.After(now))
	sc, err := membercode.VerifyShort([][]byte{keys[0].ShortSecret}, c.Short, now)
	require.NoError(t, err)
	require.Equal(t, cl.ID, sc.ID)

	c2, err := e.srv.IssueMemberCode(ctx, "M7")
	require.NoError(t, err)
	require.Equal(t, c.Text, c2.Text, "same member and step: the same code")

	newID, err := e.srv.RotateMemberCodeKey(ctx)
	require.NoError(t, err)
	require.NotEqual(t, keys[0].ID, newID)
	keys, err = ms.MemberCodeKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	var vks []membercode.VerifyKey
	for _, k := range keys {
		vks = append(vks, k.Verify())
	}
	_, err = membercode.Verify(vks, c.Text, now.Add(30*time.Second))
	require.NoError(t, err, "the old key's code within its lifetime")
	c3, err := e.srv.IssueMemberCode(ctx, "M7")
	require.NoError(t, err)
	cl3, err := membercode.Verify(vks, c3.Text, now)
	require.NoError(t, err)
	require.Equal(t, newID, cl3.KeyID)
	_, err = membercode.Verify(vks, c.Text, now.Add(membercode.Lifetime+membercode.Skew))
	require.ErrorIs(t, err, membercode.ErrExpired)
}
