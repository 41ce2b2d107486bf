package hq_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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

	newID, from, err := e.srv.RotateMemberCodeKey(ctx, time.Nanosecond)
	require.NoError(t, err)
	now = from
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

// TestMemberCodeRotationLead: a rotated key goes to the tills at once but
// signs only after the lead time; until then every HQ process on the
// storage signs with the old key, which keeps verifying until its last
// codes have expired. On bbolt and PostgreSQL.
func TestMemberCodeRotationLead(t *testing.T) {
	for name, open := range outboxStores(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			ctx := context.Background()
			var clock atomic.Int64
			clock.Store(hqtest.T0.UnixNano())
			now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
			// Two HQ processes on one storage: what one decides the other reads.
			a := hq.NewServer(st, hq.Options{Now: now, AdminToken: adminToken})
			b := hq.NewServer(st, hq.Options{Now: now, AdminToken: adminToken})
			till := &hqtest.Till{Store: "S1", Till: "T1"}
			_, err := st.Ingest(ctx, hqtest.Batch(till.Enrol("M7", hqtest.T0)))
			require.NoError(t, err)
			tok, err := a.IssueCredential(ctx, hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
			require.NoError(t, err)
			feedKeys := func(srv *hq.Server) []string {
				req := httptest.NewRequest("GET", "/v1/changes?limit=1", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				var ch wire.Changes
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ch))
				var ids []string
				for _, k := range ch.MemberCodeKeys {
					ids = append(ids, k.ID)
				}
				return ids
			}
			signer := func(srv *hq.Server) string {
				c, err := srv.IssueMemberCode(ctx, "M7")
				require.NoError(t, err)
				// Verified with what a till holds after one pull now.
				keys, err := st.(hq.MemberCodeStore).MemberCodeKeys(ctx)
				require.NoError(t, err)
				var vks []membercode.VerifyKey
				for _, k := range keys {
					vks = append(vks, k.Verify())
				}
				cl, err := membercode.Verify(vks, c.Text, now())
				require.NoError(t, err)
				return cl.KeyID
			}
			old := signer(a)
			require.Equal(t, []string{old}, feedKeys(b))

			newID, from, err := b.RotateMemberCodeKey(ctx, 0)
			require.NoError(t, err)
			require.True(t, from.Equal(now().Add(hq.DefaultMemberCodeLead)), "signs from %s", from)
			require.ElementsMatch(t, []string{old, newID}, feedKeys(a), "the new public key is sent at once")
			for _, srv := range []*hq.Server{a, b} {
				require.Equal(t, old, signer(srv), "the old key signs during the lead time")
			}
			clock.Store(from.Add(-time.Nanosecond).UnixNano())
			require.Equal(t, old, signer(a))
			lastOld, err := a.IssueMemberCode(ctx, "M7")
			require.NoError(t, err)

			clock.Store(from.UnixNano())
			for _, srv := range []*hq.Server{a, b} {
				require.Equal(t, newID, signer(srv), "the new key signs once the lead time has passed")
			}
			// The old key's last code works to its end; the old key is sent
			// as long as that, then dropped.
			keys, err := st.(hq.MemberCodeStore).MemberCodeKeys(ctx)
			require.NoError(t, err)
			var vks []membercode.VerifyKey
			for _, k := range keys {
				vks = append(vks, k.Verify())
			}
			_, err = membercode.Verify(vks, lastOld.Text, lastOld.Expires.Add(-time.Second))
			require.NoError(t, err, "the old key's last code within its lifetime")
			clock.Store(from.Add(membercode.Lifetime + membercode.Skew).UnixNano())
			require.ElementsMatch(t, []string{old, newID}, feedKeys(a))
			clock.Store(from.Add(membercode.Lifetime + membercode.Skew + time.Second).UnixNano())
			require.Equal(t, []string{newID}, feedKeys(b))

			// A second rotation while one is pending: each key signs in turn.
			id3, from3, err := a.RotateMemberCodeKey(ctx, time.Minute)
			require.NoError(t, err)
			require.Equal(t, newID, signer(b))
			clock.Store(from3.UnixNano())
			require.Equal(t, id3, signer(b))
			_, _, err = a.RotateMemberCodeKey(ctx, -time.Second)
			require.Error(t, err)
		})
	}
}
