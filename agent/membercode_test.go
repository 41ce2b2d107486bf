//go:build linux

package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/membercode"
	"posagent/sync/wire"
)

// codeHQ is a real HQ on loopback whose clock a test can move, and which
// can refuse one store's requests as if the network were down.
type codeHQ struct {
	srv  *hq.Server
	url  string
	skew atomic.Int64 // added to HQ's clock
	down atomic.Pointer[string]
	// claimDelay holds each claim this long before HQ answers it, like a
	// slow HQ; claimed is told when a claim has arrived.
	claimDelay atomic.Int64
	claimed    chan struct{}
	tok        map[string]string
}

func startCodeHQ(t *testing.T) *codeHQ {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	h := &codeHQ{tok: map[string]string{}, claimed: make(chan struct{}, 16)}
	h.srv = hq.NewServer(st, hq.Options{Now: func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) }})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := h.down.Load(); d != nil && r.Header.Get("Authorization") == "Bearer "+*d {
			// Cut like a dead link: no answer at all.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/v1/member-codes/claim" {
			select {
			case h.claimed <- struct{}{}:
			default:
			}
			time.Sleep(time.Duration(h.claimDelay.Load()))
		}
		h.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	h.url = ts.URL
	ctx := context.Background()
	for _, s := range []string{"S1", "S2"} {
		tok, err := h.srv.IssueCredential(ctx, hq.RoleStore, s, "Store "+s, "Asia/Shanghai")
		require.NoError(t, err)
		h.tok[s] = tok
	}
	// The members, enrolled at another till of S1 and known at HQ.
	till := &hqtest.Till{Store: "S1", Till: "T9"}
	_, err = st.Ingest(ctx, hqtest.Batch(till.Enrol("M7", time.Now().Add(-time.Hour)), till.Enrol("M8", time.Now().Add(-time.Hour))))
	require.NoError(t, err)
	return h
}

func (h *codeHQ) issue(t *testing.T, member string, at time.Duration) string {
	t.Helper()
	return h.issueCode(t, member, at).Text
}

func (h *codeHQ) issueCode(t *testing.T, member string, at time.Duration) membercode.Code {
	t.Helper()
	h.skew.Store(int64(at))
	defer h.skew.Store(0)
	c, err := h.srv.IssueMemberCode(context.Background(), member)
	require.NoError(t, err)
	return c
}

// lookupCode sends a typed member code to the till's lookup, as the
// cashier page does; it returns the status and the error code or member id.
func lookupCode(t *testing.T, rn *running, code string) (int, string) {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"member_code": code})
	req, _ := http.NewRequest("POST", rn.base+"/v1/members/lookup", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Code, Message, MessageZH string `json:",omitempty"`
		Member                   struct{ ID string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, body.Code
	}
	return resp.StatusCode, body.Member.ID
}

// startCodeTill runs an agent of store with a QR scanner on a pty, synced
// to h, and waits until it holds the members M7 and M8 and HQ's keys.
func startCodeTill(t *testing.T, h *codeHQ, store, till string, mod func(*config.Config)) (*running, *reader) {
	t.Helper()
	return startQRTill(t, h.url, h.tok[store], store, till, mod, "M7", "M8")
}

// startQRTill runs an agent of store with a QR scanner on a pty, synced to
// the HQ at url with the store's token, and waits until it holds HQ's
// member-code keys and the members named.
func startQRTill(t *testing.T, url, token, store, till string, mod func(*config.Config), members ...string) (*running, *reader) {
	t.Helper()
	r := newReader(t)
	rn := startWith(t, func(c *config.Config) {
		c.Store, c.Till = store, till
		c.HQ.URL, c.HQ.Token, c.HQ.BatchAge = url, token, 10*time.Millisecond
		c.Devices = []config.Device{{Name: "qr", Till: till, Transport: "serial", Path: r.slave.Name(), Baud: 9600,
			DataBits: 8, Decoder: "barcode"}}
		if mod != nil {
			mod(c)
		}
	})
	rn.waitOnline(t)
	rn.syncUntil(t, fmt.Sprintf("the members %v and the member-code keys at %s", members, store), func() bool {
		if ks, err := rn.a.led.MemberCodeKeys(); err != nil || len(ks) == 0 {
			return false
		}
		for _, m := range members {
			if _, err := rn.a.led.Member(m); err != nil {
				return false
			}
		}
		return true
	})
	return rn, r
}

func (rn *running) syncUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		req, _ := http.NewRequest("POST", rn.base+"/v1/sync/now", nil)
		req.Header.Set("Authorization", "Bearer "+apiTok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func memberCodeEvent(t *testing.T, e events.Event) MemberCodeEvent {
	t.Helper()
	var m MemberCodeEvent
	require.NoError(t, json.Unmarshal(e.Data, &m))
	require.NotEmpty(t, m.Message)
	require.NotEmpty(t, m.MessageZH)
	return m
}

// TestMemberCodesAtTheTill: codes from a phone, scanned over a real pty at
// tills synced to a real HQ on loopback. A valid code identifies the
// member; an expired one, one signed by another key and one used again
// (at the same till, or at a second till of another store while HQ is
// reachable) each get their own event and message; a till cut off from HQ
// accepts a code already used elsewhere, and HQ flags the repeat once the
// till's claim arrives.
func TestMemberCodesAtTheTill(t *testing.T) {
	h := startCodeHQ(t)
	a, ra := startCodeTill(t, h, "S1", "T1", nil)
	b, rb := startCodeTill(t, h, "S2", "T5", nil)
	sa, sb := a.stream(t, "T1"), b.stream(t, "T5")
	types := []string{events.TypeMember, events.TypeMemberCodeExpired, events.TypeMemberCodeForeign, events.TypeMemberCodeRepeat, events.TypeReadError}

	code := h.issue(t, "M7", 0)
	ra.write(t, "]Q1"+code+"\r")
	e := sa.next(t, types...)
	require.Equal(t, events.TypeMember, e.Type, string(e.Data))
	var me MemberEvent
	require.NoError(t, json.Unmarshal(e.Data, &me))
	require.Equal(t, "M7", me.Member.Member.ID)
	require.Equal(t, "member_code", me.Kind)
	require.Equal(t, "QR", me.Symbology)

	// The same code again at this till.
	ra.write(t, code+"\r")
	e = sa.next(t, types...)
	require.Equal(t, events.TypeMemberCodeRepeat, e.Type, string(e.Data))
	rep := memberCodeEvent(t, e)
	require.Equal(t, "T1", rep.FirstTill)
	require.Empty(t, rep.FirstStore)

	// The same code (a screenshot) at a till of another store: HQ says repeat.
	rb.write(t, strings.ToLower(code)+"\r")
	e = sb.next(t, types...)
	require.Equal(t, events.TypeMemberCodeRepeat, e.Type, string(e.Data))
	rep = memberCodeEvent(t, e)
	require.Equal(t, "S1", rep.FirstStore)
	require.Equal(t, "T1", rep.FirstTill)
	require.Equal(t, "M7", rep.Member)

	// A code of two minutes ago.
	ra.write(t, h.issue(t, "M7", -2*time.Minute)+"\r")
	e = sa.next(t, types...)
	require.Equal(t, events.TypeMemberCodeExpired, e.Type, string(e.Data))
	require.Equal(t, "expired", memberCodeEvent(t, e).Reason)
	// A code from ten minutes ahead: the till's clock is the suspect.
	ra.write(t, h.issue(t, "M7", 10*time.Minute)+"\r")
	e = sa.next(t, types...)
	require.Equal(t, events.TypeMemberCodeExpired, e.Type, string(e.Data))
	require.Equal(t, "clock", memberCodeEvent(t, e).Reason)

	// Signed by a key that is not HQ's (another chain).
	other, err := membercode.NewSigningKey(rand.Reader)
	require.NoError(t, err)
	foreign, err := membercode.Issue(other, bytes.Repeat([]byte{1}, 32), "M7", time.Now())
	require.NoError(t, err)
	ra.write(t, foreign.Text+"\r")
	e = sa.next(t, types...)
	require.Equal(t, events.TypeMemberCodeForeign, e.Type, string(e.Data))
	fe := memberCodeEvent(t, e)
	require.Equal(t, "unknown_key", fe.Reason)
	require.Empty(t, fe.Member, "an unverified code names no member")

	// HQ's key id with another key's signature: a forgery.
	keys, err := a.a.led.MemberCodeKeys()
	require.NoError(t, err)
	forged := forgeWithKeyID(t, other, keys[0].ID)
	ra.write(t, forged+"\r")
	e = sa.next(t, types...)
	require.Equal(t, events.TypeMemberCodeForeign, e.Type, string(e.Data))
	require.Equal(t, "bad_signature", memberCodeEvent(t, e).Reason)

	// Offline: S2's link to HQ is down. The till accepts a code already
	// used at S1 (it cannot know), queues the claim, and once the link is
	// back HQ records the repeat as late.
	code2 := h.issue(t, "M8", 0)
	ra.write(t, code2+"\r")
	require.Equal(t, events.TypeMember, sa.next(t, types...).Type)
	h.down.Store(ptr(h.tok["S2"]))
	rb.write(t, code2+"\r")
	e = sb.next(t, types...)
	require.Equal(t, events.TypeMember, e.Type, "offline, the code is accepted: %s", e.Data)
	pending, err := b.a.led.QueuedMemberCodeClaims(10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	reps, err := h.srv.MemberCodeRepeats(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 1, "only the online repeat so far")
	h.down.Store(nil)
	b.syncUntil(t, "the queued claim to reach HQ", func() bool {
		p, err := b.a.led.QueuedMemberCodeClaims(10)
		return err == nil && len(p) == 0
	})
	reps, err = h.srv.MemberCodeRepeats(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Len(t, reps, 2)
	late := reps[1]
	require.True(t, late.Again.Late)
	require.Equal(t, "S2", late.Again.Store)
	require.Equal(t, "T5", late.Again.Till)
	require.Equal(t, "S1", late.First.Store)
	require.Equal(t, "M8", late.Again.Member)
	require.False(t, reps[0].Again.Late)

	// Typed short codes (the number under the QR) are checked by HQ.
	sc := h.issueCode(t, "M7", -35*time.Second)
	st, got := lookupCode(t, a, sc.Short)
	require.Equal(t, http.StatusOK, st, got)
	require.Equal(t, "M7", got)
	st, got = lookupCode(t, a, sc.Short)
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, events.TypeMemberCodeRepeat, got, "typed twice at the same till")
	st, got = lookupCode(t, b, sc.Short)
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, events.TypeMemberCodeRepeat, got, "typed at another store's till")
	st, got = lookupCode(t, a, sc.Text)
	require.Equal(t, events.TypeMemberCodeRepeat, got, "the QR of the same step, pasted: %d", st)
	wrong := sc.Short[:len(sc.Short)-1] + string("0123456789"[(sc.Short[len(sc.Short)-1]-'0'+1)%10])
	st, got = lookupCode(t, a, wrong)
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, "member_code_wrong", got)
	st, got = lookupCode(t, a, "M7-12")
	require.Equal(t, http.StatusBadRequest, st)
	h.down.Store(ptr(h.tok["S2"]))
	st, got = lookupCode(t, b, h.issueCode(t, "M8", -35*time.Second).Short)
	require.Equal(t, http.StatusUnprocessableEntity, st)
	require.Equal(t, "member_code_offline", got, "offline a typed code is refused")
	h.down.Store(nil)

	// No code text in the event ring.
	sub, ring, _ := a.a.hub.Subscribe("T1", 0, true, 8)
	a.a.hub.Unsubscribe(sub)
	require.NotEmpty(t, ring)
	for _, e := range ring {
		require.NotContains(t, string(e.Data), code[2:30])
	}
}

// A till whose config refuses static member barcodes says so for an old
// MEMBER: code, and still takes the phone's code; a till with no keys yet
// (never synced) says it cannot check codes.
func TestStaticBarcodesRefusedAndTillWithoutKeys(t *testing.T) {
	h := startCodeHQ(t)
	a, ra := startCodeTill(t, h, "S1", "T1", func(c *config.Config) { c.MemberCodes.Static = "refuse" })
	sa := a.stream(t, "T1")
	ra.write(t, "MEMBER:10024\r")
	e := sa.next(t, events.TypeReadError, events.TypeCardUnknown, events.TypeMember)
	require.Equal(t, events.TypeReadError, e.Type)
	var re ReadErrorEvent
	require.NoError(t, json.Unmarshal(e.Data, &re))
	require.Equal(t, "static_refused", re.Code)
	require.Contains(t, re.HintZH, "动态会员码")
	ra.write(t, h.issue(t, "M7", 0)+"\r")
	require.Equal(t, events.TypeMember, sa.next(t, events.TypeReadError, events.TypeMember).Type)

	r := newReader(t)
	lone := startWith(t, func(c *config.Config) {
		c.Devices = []config.Device{{Name: "qr", Till: "T1", Transport: "serial", Path: r.slave.Name(), Baud: 9600, DataBits: 8, Decoder: "barcode"}}
	})
	lone.waitOnline(t)
	s := lone.stream(t, "T1")
	r.write(t, h.issue(t, "M7", 0)+"\r")
	e = s.next(t, events.TypeReadError, events.TypeMember)
	require.NoError(t, json.Unmarshal(e.Data, &re))
	require.Equal(t, "member_code_no_keys", re.Code)
	require.Contains(t, re.Hint, "not synced with HQ")
}

func ptr(s string) *string { return &s }

// forgeWithKeyID signs a code for M7 with k but names the key id given.
func forgeWithKeyID(t *testing.T, k membercode.SigningKey, id string) string {
	t.Helper()
	k.ID = id
	c, err := membercode.Issue(k, bytes.Repeat([]byte{1}, 32), "M7", time.Now())
	require.NoError(t, err)
	return c.Text
}

// TestSlowClaimHoldsOnlyItsReader: while HQ takes its time over a member
// code's claim, a card swiped on the till's other reader is answered at
// once; the code's answer comes after HQ's, and is what HQ said.
func TestSlowClaimHoldsOnlyItsReader(t *testing.T) {
	const delay = 3 * time.Second
	h := startCodeHQ(t)
	msr := newReader(t)
	a, ra := startCodeTill(t, h, "S1", "T1", func(c *config.Config) {
		c.MemberCodes.ClaimTimeout = 2 * delay
		c.Devices = append(c.Devices, config.Device{Name: "msr", Till: "T1", Transport: "serial", Path: msr.slave.Name(),
			Baud: 9600, DataBits: 8, Decoder: "msr"})
	})
	a.waitOnline(t)
	var en struct {
		Member struct{ Member struct{ ID string } }
	}
	a.post(t, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "mobile": "13800001111", "card": pan}, &en)
	card := en.Member.Member.ID
	s := a.stream(t, "T1")
	types := []string{events.TypeMember, events.TypeMemberCodeRepeat, events.TypeReadError, events.TypeCardUnknown}
	for len(h.claimed) > 0 {
		<-h.claimed
	}
	h.claimDelay.Store(int64(delay))

	// A fresh code (HQ will say: first use), then one already used at a
	// till of another store (HQ will say: repeat).
	fresh := h.issueCode(t, "M7", 0)
	used := h.issueCode(t, "M8", 0)
	for _, tc := range []struct {
		code, member, want string
		before             func()
	}{
		{fresh.Text, "M7", events.TypeMember, nil},
		{used.Text, "M8", events.TypeMemberCodeRepeat, func() {
			_, err := h.srv.CheckShortCode(context.Background(), "S2", wire.MemberCodeShort{Short: used.Short, Till: "T5", SeenAt: time.Now()})
			require.NoError(t, err)
		}},
	} {
		if tc.before != nil {
			tc.before()
		}
		scanned := time.Now()
		ra.write(t, tc.code+"\r")
		select {
		case <-h.claimed:
		case <-time.After(wait):
			t.Fatal("the till did not claim the code at HQ")
		}
		// The claim is pending at HQ: a swipe on the other reader.
		swiped := time.Now()
		msr.write(t, swipe)
		e := s.next(t, types...)
		took := time.Since(swiped)
		require.Equal(t, events.TypeMember, e.Type, string(e.Data))
		var me MemberEvent
		require.NoError(t, json.Unmarshal(e.Data, &me))
		require.Equal(t, "msr", me.Device, "the swipe is answered first: %s", e.Data)
		require.Equal(t, card, me.Member.Member.ID)
		require.Less(t, took, delay/2, "the swipe waited for the code's claim")
		t.Logf("swipe answered in %s while a claim was pending", took)

		e = s.next(t, types...)
		require.GreaterOrEqual(t, time.Since(scanned), delay, "the code's answer comes after HQ's")
		require.Equal(t, tc.want, e.Type, string(e.Data))
		if tc.want == events.TypeMember {
			require.NoError(t, json.Unmarshal(e.Data, &me))
			require.Equal(t, "qr", me.Device)
			require.Equal(t, tc.member, me.Member.Member.ID)
			require.Equal(t, "member_code", me.Kind)
		} else {
			rep := memberCodeEvent(t, e)
			require.Equal(t, "S2", rep.FirstStore)
			require.Equal(t, "T5", rep.FirstTill)
			require.Equal(t, tc.member, rep.Member)
		}
	}
}
