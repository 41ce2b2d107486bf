package hq_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/membercode"
	"posagent/sync/wire"
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

// TestMemberCodeEndpoints: the changes feed carries the public keys; claims
// from two stores' tills make a repeat, answered at once and listed for
// admins; a typed short code is checked and claimed, a wrong one refused,
// and a store that keeps guessing is slowed.
func TestMemberCodeEndpoints(t *testing.T) {
	now := hqtest.T0
	e := newEnv(t, hq.Options{Now: func() time.Time { return now }}, nil)
	ctx := context.Background()
	till := &hqtest.Till{Store: "S1", Till: "T1"}
	_, err := e.st.Ingest(ctx, hqtest.Batch(till.Enrol("M7", now)))
	require.NoError(t, err)

	code, raw, _ := e.do("GET", wire.PathChanges, e.store["S2"], nil, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	var ch wire.Changes
	require.NoError(t, json.Unmarshal(raw, &ch))
	require.Len(t, ch.MemberCodeKeys, 1, "a till gets a key before any code was issued")
	vk := []membercode.VerifyKey{{ID: ch.MemberCodeKeys[0].ID, Public: ch.MemberCodeKeys[0].Public}}

	c, err := e.srv.IssueMemberCode(ctx, "M7")
	require.NoError(t, err)
	cl, err := membercode.Verify(vk, c.Text, now)
	require.NoError(t, err, "the key from the feed verifies HQ's codes")

	claim := func(store, tillID string, late bool) wire.MemberCodeClaimResult {
		t.Helper()
		b, _ := json.Marshal(wire.MemberCodeClaims{Claims: []wire.MemberCodeClaim{{Code: cl.ID, Member: "M7", Till: tillID, SeenAt: now, Expires: cl.Expires, Late: late}}})
		code, raw, _ := e.do("POST", wire.PathMemberCodeClaims, e.store[store], b, nil)
		require.Equal(t, http.StatusOK, code, string(raw))
		var a wire.MemberCodeClaimAnswer
		require.NoError(t, json.Unmarshal(raw, &a))
		require.Len(t, a.Results, 1)
		return a.Results[0]
	}
	require.False(t, claim("S1", "T1", false).Repeat)
	require.False(t, claim("S1", "T1", false).Repeat, "the same till again (a retry)")
	r := claim("S2", "T5", false)
	require.True(t, r.Repeat)
	require.Equal(t, "S1", r.FirstStore)
	require.Equal(t, "T1", r.FirstTill)
	now = now.Add(time.Second)
	require.True(t, claim("S1", "T2", true).Repeat)

	code, _, _ = e.do("POST", wire.PathMemberCodeClaims, adminToken, []byte(`{"claims":[]}`), nil)
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = e.do("POST", wire.PathMemberCodeClaims, e.store["S1"], []byte(`{"claims":[{"code":"x","member":"M7","till":"bad till","seen_at":"2026-03-10T02:00:00Z","expires":"2026-03-10T02:01:00Z"}]}`), nil)
	require.Equal(t, http.StatusBadRequest, code)

	code, raw, _ = e.do("GET", "/admin/member-codes/repeats", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code, string(raw))
	var reps struct{ Repeats []hq.MemberCodeRepeat }
	require.NoError(t, json.Unmarshal(raw, &reps))
	require.Len(t, reps.Repeats, 2)
	require.Equal(t, "S2", reps.Repeats[0].Again.Store)
	require.True(t, reps.Repeats[1].Again.Late)
	code, _, _ = e.do("GET", "/admin/member-codes/repeats", e.store["S1"], nil, nil)
	require.Equal(t, http.StatusForbidden, code)

	short := func(s string) (int, []byte) {
		b, _ := json.Marshal(wire.MemberCodeShort{Short: s, Till: "T3"})
		code, raw, _ := e.do("POST", wire.PathMemberCodeShort, e.store["S2"], b, nil)
		return code, raw
	}
	now = now.Add(31 * time.Second)
	c2, err := e.srv.IssueMemberCode(ctx, "M7")
	require.NoError(t, err)
	code, raw = short(c2.Short)
	require.Equal(t, http.StatusOK, code, string(raw))
	var sa wire.MemberCodeShortAnswer
	require.NoError(t, json.Unmarshal(raw, &sa))
	require.Equal(t, "M7", sa.Member)
	require.False(t, sa.Claim.Repeat)
	cl2, err := membercode.Verify(vk, c2.Text, now)
	require.NoError(t, err)
	require.Equal(t, cl2.ID, sa.Claim.Code, "typed and scanned are one code")
	code, raw = short(c2.Short)
	require.Equal(t, http.StatusOK, code, string(raw))
	code, raw = short(c.Short)
	require.Equal(t, http.StatusOK, code, "the previous step's code is still in its lifetime: %s", raw)
	code, raw = short("M7-00000000")
	if code == http.StatusOK { // one in 10^8: the guess is right
		t.Skip("a guessed short code matched")
	}
	require.Equal(t, http.StatusUnprocessableEntity, code, string(raw))
	require.Contains(t, string(raw), "member_code_wrong")
	code, _ = short("not a short code")
	require.Equal(t, http.StatusBadRequest, code)
	now = now.Add(2 * time.Minute)
	code, raw = short(c2.Short)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, string(raw), "member_code_expired")
	for range 30 {
		code, _ = short("M7-00000001")
	}
	require.Equal(t, http.StatusTooManyRequests, code)
	now = now.Add(time.Minute)
	code, _ = short("M7-00000001")
	require.Equal(t, http.StatusUnprocessableEntity, code, "the next minute the store may try again")
}
