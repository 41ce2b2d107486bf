package hqtest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/messages"
)

// RunOutbox is the outbox conformance suite: both stores must pass it.
// open returns a fresh, empty store; the suite closes it.
func RunOutbox(t *testing.T, open func(t *testing.T) hq.Store) {
	runSuite(t, open, []suiteTest[hq.Outbox]{
		{"Consent", testOutboxConsent},
		{"ClaimLease", testOutboxClaimLease},
		{"FailDeadRetry", testOutboxFailDeadRetry},
		{"DeferSuppress", testOutboxDeferSuppress},
		{"ConcurrentClaims", testOutboxConcurrentClaims},
		{"ListByMember", testOutboxListByMember},
	})
}

// Msg is a message to member m with id id, caused at at.
func Msg(id, member string, at time.Time) messages.Message {
	return messages.Message{ID: id, Kind: messages.KindAfterSale, Member: member, Store: "S1", To: "13800000000",
		Lang: "zh", Text: "您当前积分可兑换 10 元", CreatedAt: at.UTC()}
}

// ids lists the messages' ids in order (an empty list, not nil, for none).
func ids[T hq.OutboxMessage | hq.Claimed](ms []T) []string {
	out := []string{}
	for _, m := range ms {
		switch m := any(m).(type) {
		case hq.OutboxMessage:
			out = append(out, m.ID)
		case hq.Claimed:
			out = append(out, m.ID)
		}
	}
	return out
}

func testOutboxConsent(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	c0, err := ob.Consent(c, "M1")
	require.NoError(t, err)
	require.False(t, c0.Allows(), "no consent recorded allows nothing")

	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("a/M1", "M1", t0)}))
	all, err := ob.Messages(c, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Empty(t, all, "a member without consent gets no message")

	require.NoError(t, ob.SetConsent(c, "M1", true, t0, "store:S1"))
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("a/M1", "M1", t0), Msg("a/M1", "M1", t0), Msg("a/M2", "M2", t0)}))
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("a/M1", "M1", t0.Add(time.Hour))}))
	all, err = ob.Messages(c, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Equal(t, []string{"a/M1"}, ids(all), "same cause twice is stored once; M2 has no consent")
	require.Equal(t, hq.MsgPending, all[0].Status)
	require.True(t, all[0].CreatedAt.Equal(t0), "the first write stands")

	// An opt-out after the consent stands; a consent reported late (older
	// than the opt-out) does not undo it.
	require.NoError(t, ob.OptOut(c, "M1", t0.Add(2*time.Hour), "gateway"))
	require.NoError(t, ob.SetConsent(c, "M1", true, t0.Add(time.Hour), "store:S2"))
	cs, err := ob.Consent(c, "M1")
	require.NoError(t, err)
	require.Equal(t, hq.ConsentOptedOut, cs.Status)
	require.True(t, cs.At.Equal(t0.Add(2*time.Hour)))
	require.Equal(t, "gateway", cs.Source)
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("b/M1", "M1", t0)}))
	all, err = ob.Messages(c, hq.OutboxFilter{})
	require.NoError(t, err)
	require.Equal(t, []string{"a/M1"}, ids(all), "an opted-out member gets no new message")

	lg, err := ob.ConsentLog(c, "M1")
	require.NoError(t, err)
	require.Len(t, lg, 3, "every change is logged with its time")
	require.Equal(t, []string{hq.ConsentGranted, hq.ConsentOptedOut, hq.ConsentGranted}, []string{lg[0].Status, lg[1].Status, lg[2].Status})
	require.True(t, lg[1].At.Equal(t0.Add(2*time.Hour)))

	// Granted again later: allowed again; withdrawn: not.
	require.NoError(t, ob.SetConsent(c, "M1", true, t0.Add(3*time.Hour), "hq:admin"))
	cs, _ = ob.Consent(c, "M1")
	require.True(t, cs.Allows())
	require.NoError(t, ob.SetConsent(c, "M1", false, t0.Add(4*time.Hour), "hq:admin"))
	cs, _ = ob.Consent(c, "M1")
	require.Equal(t, hq.ConsentWithdrawn, cs.Status)

	require.Error(t, ob.SetConsent(c, "", true, t0, "x"), "no member")
	require.Error(t, ob.OptOut(c, "M1", time.Time{}, "x"), "no time")
	bad := Msg("c/M1", "M1", t0)
	bad.To = ""
	require.ErrorContains(t, ob.Enqueue(c, []messages.Message{bad}), "to")
}

func consent(t *testing.T, ob hq.Outbox, members ...string) {
	for _, m := range members {
		require.NoError(t, ob.SetConsent(ctx(t), m, true, T0.UTC().Add(-24*time.Hour), "test"))
	}
}

func testOutboxClaimLease(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	consent(t, ob, "M1", "M2")
	later := Msg("m5", "M2", t0)
	later.NotBefore = t0.Add(time.Hour)
	require.NoError(t, ob.Enqueue(c, []messages.Message{
		Msg("m3", "M1", t0.Add(-1*time.Minute)), Msg("m1", "M1", t0.Add(-3*time.Minute)),
		Msg("m2", "M2", t0.Add(-2*time.Minute)), later, Msg("m4", "M1", t0.Add(-1*time.Minute)),
	}))
	lease := 10 * time.Minute
	a, err := ob.ClaimMessages(c, t0, lease, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"m1", "m2"}, ids(a), "oldest due first")
	require.Equal(t, 1, a[0].Attempts)
	require.True(t, a[0].Until.Equal(t0.Add(lease)))
	require.Equal(t, "您当前积分可兑换 10 元", a[0].Text)
	b, err := ob.ClaimMessages(c, t0, lease, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"m3", "m4"}, ids(b), "leased ones and ones not yet due are not claimed")
	require.NotEqual(t, a[0].Token, b[0].Token)

	wrong := a[0]
	wrong.Token = b[0].Token
	require.ErrorIs(t, ob.AckMessage(c, wrong, t0), hq.ErrLeaseLost)
	require.NoError(t, ob.AckMessage(c, a[0], t0.Add(time.Second)))
	require.ErrorIs(t, ob.AckMessage(c, a[0], t0.Add(time.Second)), hq.ErrLeaseLost, "acked once")

	require.NoError(t, ob.AckMessage(c, b[0], t0.Add(time.Second)))
	require.NoError(t, ob.AckMessage(c, b[1], t0.Add(time.Second)))

	// The lease of a[1] runs out: another claim takes it, with a new
	// token, and the old claim can no longer settle it.
	none, err := ob.ClaimMessages(c, t0.Add(lease-time.Second), lease, 10)
	require.NoError(t, err)
	require.Empty(t, none)
	again, err := ob.ClaimMessages(c, t0.Add(lease), lease, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"m2"}, ids(again))
	require.Equal(t, 2, again[0].Attempts)
	require.ErrorIs(t, ob.AckMessage(c, a[1], t0.Add(lease)), hq.ErrLeaseLost)
	require.NoError(t, ob.AckMessage(c, again[0], t0.Add(lease)))

	sent, err := ob.Messages(c, hq.OutboxFilter{Status: hq.MsgSent})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"m1", "m2", "m3", "m4"}, ids(sent))
	for _, m := range sent {
		want := 1
		if m.ID == "m2" {
			want = 2
		}
		require.Equal(t, want, m.Attempts, m.ID)
	}

	// m5 waits for its NotBefore.
	c5, err := ob.ClaimMessages(c, t0.Add(time.Hour), time.Minute, 10)
	require.NoError(t, err)
	require.Contains(t, ids(c5), "m5")
	_, err = ob.ClaimMessages(c, t0, 0, 1)
	require.Error(t, err, "a claim needs a lease")
}

func testOutboxFailDeadRetry(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	consent(t, ob, "M1")
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("f1", "M1", t0)}))
	cl, err := ob.ClaimMessages(c, t0, time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, cl, 1)
	require.NoError(t, ob.FailMessage(c, cl[0], t0, "gateway 503", t0.Add(30*time.Second)))
	cl2, err := ob.ClaimMessages(c, t0.Add(29*time.Second), time.Minute, 1)
	require.NoError(t, err)
	require.Empty(t, cl2, "backing off")
	cl2, err = ob.ClaimMessages(c, t0.Add(30*time.Second), time.Minute, 1)
	require.NoError(t, err)
	require.Len(t, cl2, 1)
	require.Equal(t, 2, cl2[0].Attempts)
	require.NoError(t, ob.FailMessage(c, cl2[0], t0.Add(31*time.Second), "gateway 400: bad number", time.Time{}))

	dead, err := ob.Messages(c, hq.OutboxFilter{Status: hq.MsgDead})
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "gateway 400: bad number", dead[0].LastError)
	require.Equal(t, 2, dead[0].Attempts)
	require.True(t, dead[0].DoneAt.Equal(t0.Add(31*time.Second)))
	none, err := ob.ClaimMessages(c, t0.Add(time.Hour), time.Minute, 1)
	require.NoError(t, err)
	require.Empty(t, none, "a dead message is not sent")

	require.ErrorIs(t, ob.RetryMessage(c, "nope"), hq.ErrNotFound)
	require.NoError(t, ob.RetryMessage(c, "f1"))
	require.ErrorIs(t, ob.RetryMessage(c, "f1"), hq.ErrNotFound, "no longer dead")
	back, err := ob.ClaimMessages(c, t0, time.Minute, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"f1"}, ids(back), "due at once after a retry")
	require.Equal(t, 1, back[0].Attempts, "attempts start again")
}

func testOutboxDeferSuppress(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	consent(t, ob, "M1", "M2")
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("d1", "M1", t0), Msg("d2", "M2", t0)}))
	cl, err := ob.ClaimMessages(c, t0, time.Minute, 2)
	require.NoError(t, err)
	require.Len(t, cl, 2)
	morning := t0.Add(10 * time.Hour)
	require.NoError(t, ob.DeferMessage(c, cl[0], morning))
	require.NoError(t, ob.SuppressMessage(c, cl[1], t0, "opted_out"))
	none, err := ob.ClaimMessages(c, morning.Add(-time.Second), time.Minute, 2)
	require.NoError(t, err)
	require.Empty(t, none)
	cl, err = ob.ClaimMessages(c, morning, time.Minute, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"d1"}, ids(cl))
	require.Equal(t, 1, cl[0].Attempts, "a deferral is not an attempt")
	sup, err := ob.Messages(c, hq.OutboxFilter{Status: hq.MsgSuppressed})
	require.NoError(t, err)
	require.Equal(t, []string{"d2"}, ids(sup))
	require.Equal(t, "opted_out", sup[0].LastError)
}

// Senders claiming at once: each message goes to exactly one claim.
func testOutboxConcurrentClaims(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	consent(t, ob, "M1")
	const n = 300
	var ms []messages.Message
	for i := range n {
		ms = append(ms, Msg(fmt.Sprintf("c/%04d", i), "M1", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	require.NoError(t, ob.Enqueue(c, ms))
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n { // bounded: each round takes at least one or ends
				cl, err := ob.ClaimMessages(c, t0.Add(time.Second), time.Hour, 7)
				if err != nil {
					errs <- err
					return
				}
				if len(cl) == 0 {
					return
				}
				for _, x := range cl {
					mu.Lock()
					got[x.ID]++
					mu.Unlock()
					if err := ob.AckMessage(c, x, t0.Add(time.Second)); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, got, n)
	for id, k := range got {
		require.Equal(t, 1, k, "claimed twice: %s", id)
	}
	sent, err := ob.Messages(c, hq.OutboxFilter{Status: hq.MsgSent, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, sent, n)
}

func testOutboxListByMember(t *testing.T, ob hq.Outbox) {
	c := ctx(t)
	t0 := T0.UTC()
	consent(t, ob, "M1", "M10", "M2")
	require.NoError(t, ob.Enqueue(c, []messages.Message{Msg("l1", "M1", t0), Msg("l2", "M10", t0), Msg("l3", "M1", t0), Msg("l4", "M2", t0)}))
	m1, err := ob.Messages(c, hq.OutboxFilter{Member: "M1"})
	require.NoError(t, err)
	require.Equal(t, []string{"l1", "l3"}, ids(m1), "M1's only, in enqueue order")
	last, err := ob.Messages(c, hq.OutboxFilter{Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"l3", "l4"}, ids(last), "the newest two")
	none, err := ob.Messages(c, hq.OutboxFilter{Member: "M3"})
	require.NoError(t, err)
	require.Empty(t, none)
	if errors.Is(err, hq.ErrNotFound) {
		t.Fatal("an empty list is not an error")
	}
}
