package hqtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/wire"
)

// Run is the conformance suite: every hq.Store must pass it. open returns
// a fresh, empty store; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) hq.Store) {
	runSuite(t, open, []suiteTest[hq.Store]{
		{"Credentials", testCredentials},
		{"IngestDuplicateGap", testIngestDuplicateGap},
		{"DeadLetters", testDeadLetters},
		{"Balances", testBalances},
		{"BalanceOverflow", testBalanceOverflow},
		{"BoundedEntriesOverflow", testBoundedEntriesOverflow},
		{"Coupons", testCoupons},
		{"Review", testReview},
		{"Changes", testChanges},
		{"Programs", testPrograms},
		{"ExportPaging", testExportPaging},
		{"ConcurrentIngestAndExport", testConcurrent},
		{"Aggregates", testAggregates},
		{"AggLifetime", testAggLifetime},
		{"MemberCodes", testMemberCodes},
		{"MemberCodeRepeatsByTime", testMemberCodeRepeatsByTime},
		{"MemberLookup", testMemberLookup},
		{"MemberLookupConcurrent", testMemberLookupConcurrent},
	})
}

// suiteTest is one test of a suite, given the store as the interface I
// that its part of the storage is.
type suiteTest[I any] struct {
	name string
	fn   func(t *testing.T, x I)
}

// runSuite runs each test on a fresh store from open, closed after it;
// the store must implement I.
func runSuite[I any](t *testing.T, open func(t *testing.T) hq.Store, tests []suiteTest[I]) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { _ = st.Close() })
			x, ok := st.(I)
			require.True(t, ok, "%T does not implement %T", st, (*I)(nil))
			tc.fn(t, x)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// T0 is a fixed instant the suite builds entries around.
var T0 = time.Date(2026, 3, 10, 10, 0, 0, 0, Shanghai)

func testCredentials(t *testing.T, st hq.Store) {
	c := ctx(t)
	cr := hq.Credential{Role: hq.RoleStore, ID: "S1", Name: "One", TimeZone: "Asia/Shanghai", TokenHash: hq.HashToken("tok1"), CreatedAt: T0.UTC()}
	require.NoError(t, st.AddCredential(c, cr))
	require.ErrorIs(t, st.AddCredential(c, cr), hq.ErrConflict)
	require.NoError(t, st.AddCredential(c, hq.Credential{Role: hq.RoleAdmin, ID: "ops", TokenHash: hq.HashToken("tok2"), CreatedAt: T0.UTC(), Rights: []string{hq.RightPII}}))

	got, err := st.CredentialByHash(c, hq.HashToken("tok1"))
	require.NoError(t, err)
	require.Equal(t, "S1", got.ID)
	require.Equal(t, hq.RoleStore, got.Role)
	require.False(t, got.Revoked())
	require.Empty(t, got.Rights)
	got, err = st.CredentialByHash(c, hq.HashToken("tok2"))
	require.NoError(t, err)
	require.Equal(t, []string{hq.RightPII}, got.Rights, "rights are kept with the credential")
	_, err = st.CredentialByHash(c, hq.HashToken("nope"))
	require.ErrorIs(t, err, hq.ErrNotFound)

	require.NoError(t, st.RevokeCredential(c, hq.RoleStore, "S1"))
	got, err = st.CredentialByHash(c, hq.HashToken("tok1"))
	require.NoError(t, err)
	require.True(t, got.Revoked())
	require.ErrorIs(t, st.RevokeCredential(c, hq.RoleStore, "S9"), hq.ErrNotFound)

	all, err := st.Credentials(c)
	require.NoError(t, err)
	require.Len(t, all, 2)
}

func count(t *testing.T, st hq.Store) (n int, ids map[string]int) {
	ids = map[string]int{}
	require.NoError(t, st.Scan(ctx(t), func(s hq.Stored) error {
		n++
		ids[s.Entry.ID()]++
		return nil
	}))
	return n, ids
}

func testIngestDuplicateGap(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "S1", Till: "T1"}
	e1, e2, e3 := tl.Enrol("M1", T0), tl.Sale("M1", T0.Add(time.Minute), 1000, 10, 0, 0, ""), tl.TopUp("M1", T0.Add(2*time.Minute), 5000, 0)
	b := Batch(e1, e2, e3)
	ack, err := st.Ingest(c, b)
	require.NoError(t, err)
	require.Equal(t, wire.Ack{Store: "S1", Till: "T1", Acked: 3, Expected: 4}, ack)

	again, err := st.Ingest(c, b)
	require.NoError(t, err)
	require.True(t, again.Duplicate)
	again.Duplicate = false
	require.Equal(t, ack, again, "a duplicate gets the same ack")
	acked, err := st.TillAcked(c, "S1", "T1")
	require.NoError(t, err)
	require.EqualValues(t, 3, acked)

	// A gap: 5..6 while 4 is expected.
	tl.Seq = 4
	e5, e6 := tl.Points("M1", T0.Add(3*time.Minute), 7, "correction"), tl.Points("M1", T0.Add(4*time.Minute), 8, "correction")
	_, err = st.Ingest(c, Batch(e5, e6))
	var gap *hq.GapError
	require.ErrorAs(t, err, &gap)
	require.EqualValues(t, 4, gap.Expected)

	// An overlapping batch 2..5: only 4 and 5 are new.
	tl.Seq = 3
	e4 := tl.Points("M1", T0.Add(150*time.Second), 1, "correction")
	ack, err = st.Ingest(c, Batch(e2, e3, e4, e5))
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
	require.EqualValues(t, 5, ack.Acked)
	n, ids := count(t, st)
	require.Equal(t, 5, n)
	for id, k := range ids {
		require.Equal(t, 1, k, "entry %s stored once", id)
	}
	m, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 10+1+7, m.Points)
	require.EqualValues(t, 5000, m.StoredValue)
	require.False(t, m.Flagged)

	// Another till's sequence is independent.
	t2 := &Till{Store: "S1", Till: "T2"}
	ack, err = st.Ingest(c, Batch(t2.Points("M1", T0, 1, "correction")))
	require.NoError(t, err)
	require.EqualValues(t, 1, ack.Acked)
}

func testDeadLetters(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "S1", Till: "T1"}
	e1, e2, e3 := tl.Enrol("M1", T0), tl.Points("M1", T0, 100, "correction"), tl.Points("M1", T0, 5, "correction")
	b := Batch(e1, e2, e3)
	b.Items[1] = hq.Item{Seq: 2, Raw: []byte(`{"store":"S1","till":"T1","seq":2,"kind":"mystery","member_id":"M1","points_delta":100}`), Reason: "unknown kind"}
	ack, err := st.Ingest(c, b)
	require.NoError(t, err)
	require.EqualValues(t, 3, ack.Acked, "a dead letter counts as received")
	require.Equal(t, []wire.DeadLetter{{Store: "S1", Till: "T1", Seq: 2, Reason: "unknown kind"}}, ack.DeadLettered)
	dup, err := st.Ingest(c, b)
	require.NoError(t, err)
	require.Equal(t, ack.DeadLettered, dup.DeadLettered)

	m, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 5, m.Points, "the dead letter is not applied")

	ds, err := st.DeadLetters(c, false)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "S1/T1/2", ds[0].ID())
	require.JSONEq(t, string(b.Items[1].Raw), string(ds[0].Raw))

	require.NoError(t, st.ResolveDeadLetter(c, "S1", "T1", 2, e2, T0.UTC()))
	require.ErrorIs(t, st.ResolveDeadLetter(c, "S1", "T1", 2, e2, T0.UTC()), hq.ErrNotFound)
	m, err = st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 105, m.Points)
	ds, err = st.DeadLetters(c, false)
	require.NoError(t, err)
	require.Empty(t, ds)
	ds, err = st.DeadLetters(c, true)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.False(t, ds[0].ResolvedAt.IsZero())
	n, ids := count(t, st)
	require.Equal(t, 3, n)
	require.Equal(t, 1, ids["S1/T1/2"])
}

func testBalances(t *testing.T, st hq.Store) {
	c := ctx(t)
	a := &Till{Store: "SA", Till: "T1"}
	b := &Till{Store: "SB", Till: "T1"}
	_, err := st.Ingest(c, Batch(a.Enrol("M1", T0), a.Points("M1", T0, 3000, "correction"), a.TopUp("M1", T0, 10000, 0)))
	require.NoError(t, err)
	// Both stores offline spend the balance they last heard of.
	sa := a.Sale("M1", T0.Add(time.Hour), 8000, 50, 2000, 8000, "")
	_, err = st.Ingest(c, Batch(sa))
	require.NoError(t, err)
	sb := b.Sale("M1", T0.Add(2*time.Hour), 9000, 60, 2000, 9000, "")
	_, err = st.Ingest(c, Batch(sb))
	require.NoError(t, err)
	m, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 3000+50-2000+60-2000, m.Points)
	require.EqualValues(t, 10000-8000-9000, m.StoredValue)
	require.True(t, m.Flagged, "a balance below zero is flagged for review")
	require.Equal(t, T0.Add(2*time.Hour).UTC(), m.LastSale.UTC())
	require.NotNil(t, m.Data)
	require.Equal(t, "Member M1", m.Data.Name)

	// A top-up brings it back above zero; the flag stays for review.
	_, err = st.Ingest(c, Batch(b.TopUp("M1", T0.Add(3*time.Hour), 20000, 0)))
	require.NoError(t, err)
	m, err = st.Member(c, "M1")
	require.NoError(t, err)
	require.EqualValues(t, 13000, m.StoredValue)
	require.True(t, m.Flagged)

	// Tier changes merge by time even when they arrive out of order, and an
	// enrolment arriving after a tier change keeps the tier.
	c2 := &Till{Store: "SC", Till: "T1"}
	late := c2.Tier("M2", T0.Add(48*time.Hour), "gold", "diamond")
	early := a.Tier("M2", T0.Add(24*time.Hour), "silver", "gold")
	_, err = st.Ingest(c, Batch(late))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(early))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("M2", T0)))
	require.NoError(t, err)
	m2, err := st.Member(c, "M2")
	require.NoError(t, err)
	require.Equal(t, "diamond", m2.Data.Tier)
	require.Equal(t, "Member M2", m2.Data.Name)
	require.False(t, m2.Flagged)

	// A non-member sale touches no member.
	_, err = st.Ingest(c, Batch(a.Sale("", T0, 500, 0, 0, 0, "")))
	require.NoError(t, err)
	_, err = st.Member(c, "")
	require.ErrorIs(t, err, hq.ErrNotFound)
	n := 0
	require.NoError(t, st.Members(c, func(hq.Member) error { n++; return nil }))
	require.Equal(t, 2, n)
}

func testCoupons(t *testing.T, st hq.Store) {
	c := ctx(t)
	a := &Till{Store: "SA", Till: "T1"}
	b := &Till{Store: "SB", Till: "T1"}
	// The use reaches HQ before the issue (another till synced first).
	use := b.Sale("M1", T0.Add(time.Hour), 2000, 10, 0, 0, "W1")
	_, err := st.Ingest(c, Batch(use))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(a.Enrol("M1", T0), a.Coupon("M1", "W1", T0, 1000), a.Coupon("M1", "W2", T0, 500)))
	require.NoError(t, err)
	m, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.False(t, m.Flagged)
	s := m.State()
	require.Len(t, s.Coupons, 1)
	require.Equal(t, "W2", s.Coupons[0].ID)

	// The void gives W1 back.
	_, err = st.Ingest(c, Batch(b.Void(use, T0.Add(2*time.Hour))))
	require.NoError(t, err)
	m, err = st.Member(c, "M1")
	require.NoError(t, err)
	require.Len(t, m.State().Coupons, 2)
	require.EqualValues(t, 0, m.Points)

	// W2 used offline at two stores: flagged.
	_, err = st.Ingest(c, Batch(a.Sale("M1", T0.Add(3*time.Hour), 2000, 0, 0, 0, "W2")))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(b.Sale("M1", T0.Add(3*time.Hour), 2000, 0, 0, 0, "W2")))
	require.NoError(t, err)
	m, err = st.Member(c, "M1")
	require.NoError(t, err)
	require.True(t, m.Flagged)

	// HQ issues a recall coupon.
	require.NoError(t, st.ApplyDeltas(c, []hq.Delta{{MemberID: "M1", CouponsIssued: []entry.MemberCoupon{{ID: "R1", MemberID: "M1", Name: "回归礼", Threshold: 10000, Value: 2000}}}}))
	m, err = st.Member(c, "M1")
	require.NoError(t, err)
	var ids []string
	for _, cp := range m.State().Coupons {
		ids = append(ids, cp.ID)
	}
	require.ElementsMatch(t, []string{"W1", "R1"}, ids)
}

// testReview: an admin's review clears the flag and records who, when and
// the balances; the entries and balances stay, the stores hear of it, and a
// later entry that leaves a balance below zero flags the member again.
func testReview(t *testing.T, st hq.Store) {
	c := ctx(t)
	a := &Till{Store: "SA", Till: "T1"}
	b := &Till{Store: "SB", Till: "T1"}
	_, err := st.Ingest(c, Batch(a.Enrol("M1", T0), a.TopUp("M1", T0, 10000, 0), a.Enrol("M2", T0)))
	require.NoError(t, err)
	// Both stores spend the stored value they last heard of, offline.
	_, err = st.Ingest(c, Batch(a.Sale("M1", T0.Add(time.Hour), 8000, 80, 0, 8000, "")))
	require.NoError(t, err)
	_, err = st.Ingest(c, Batch(b.Sale("M1", T0.Add(2*time.Hour), 9000, 90, 0, 9000, "")))
	require.NoError(t, err)
	flagged, err := st.FlaggedMembers(c)
	require.NoError(t, err)
	require.Len(t, flagged, 1)
	require.Equal(t, "M1", flagged[0].ID)
	require.EqualValues(t, -7000, flagged[0].StoredValue)
	// The feed hands out a change only once every older transaction on the
	// server has ended, so wait for both members rather than read once.
	_, _, cur := pullChangesN(t, st, "", 100, 2)
	entries, _ := count(t, st)

	rv := hq.Review{By: "ops", At: T0.Add(3 * time.Hour).UTC(), Note: "paid the difference in cash"}
	_, err = st.ReviewMember(c, "M9", rv)
	require.ErrorIs(t, err, hq.ErrNotFound)
	_, err = st.ReviewMember(c, "M2", rv)
	require.ErrorIs(t, err, hq.ErrNotFlagged, "a member that is not flagged has nothing to review")

	m, err := st.ReviewMember(c, "M1", rv)
	require.NoError(t, err)
	require.False(t, m.Flagged)
	want := rv
	want.Points, want.StoredValue = 170, -7000
	require.Equal(t, []hq.Review{want}, m.Reviews)
	got, err := st.Member(c, "M1")
	require.NoError(t, err)
	require.False(t, got.Flagged)
	require.EqualValues(t, 170, got.Points, "a review changes no balance")
	require.EqualValues(t, -7000, got.StoredValue)
	require.Len(t, got.Reviews, 1)
	require.Equal(t, want.By, got.Reviews[0].By)
	require.True(t, want.At.Equal(got.Reviews[0].At))
	require.Equal(t, want.Note, got.Reviews[0].Note)
	require.EqualValues(t, -7000, got.Reviews[0].StoredValue)
	flagged, err = st.FlaggedMembers(c)
	require.NoError(t, err)
	require.Empty(t, flagged)
	after, _ := count(t, st)
	require.Equal(t, entries, after, "the entries stay")
	_, err = st.ReviewMember(c, "M1", rv)
	require.ErrorIs(t, err, hq.ErrNotFlagged, "reviewed once, the flag is clear")

	// The stores hear that the flag is clear.
	ms, _, _ := pullChangesN(t, st, cur, 100, 1)
	require.Len(t, ms, 1)
	require.Equal(t, "M1", ms[0].Member.ID)
	require.False(t, ms[0].Flagged)
	require.EqualValues(t, -7000, ms[0].StoredValue)

	// An entry that leaves a balance below zero flags the member again; the
	// first review stays on record and a second one is added after it.
	_, err = st.Ingest(c, Batch(a.Points("M1", T0.Add(4*time.Hour), 5, "correction")))
	require.NoError(t, err)
	got, err = st.Member(c, "M1")
	require.NoError(t, err)
	require.True(t, got.Flagged)
	require.Len(t, got.Reviews, 1)
	m, err = st.ReviewMember(c, "M1", hq.Review{By: "lead", At: T0.Add(5 * time.Hour).UTC()})
	require.NoError(t, err)
	require.False(t, m.Flagged)
	require.Len(t, m.Reviews, 2)
	require.Equal(t, "ops", m.Reviews[0].By)
	require.Equal(t, "lead", m.Reviews[1].By)
	require.EqualValues(t, 175, m.Reviews[1].Points)
}

// pullChanges follows the changes feed to its end.
func pullChanges(t *testing.T, st hq.Store, cursor string, limit int) (members []wire.MemberState, progs []wire.ProgramVersion, next string) {
	for i := 0; ; i++ {
		require.Less(t, i, 10000, "changes feed does not end")
		ch, err := st.Changes(ctx(t), cursor, limit)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ch.Members), limit)
		require.NotEmpty(t, ch.Cursor)
		members = append(members, ch.Members...)
		progs = append(progs, ch.Programs...)
		cursor = ch.Cursor
		if !ch.More {
			return members, progs, cursor
		}
	}
}

func testChanges(t *testing.T, st hq.Store) {
	c := ctx(t)
	tl := &Till{Store: "S1", Till: "T1"}
	var es []entry.Entry
	for i := 1; i <= 7; i++ {
		es = append(es, tl.Enrol(fmt.Sprintf("M%d", i), T0))
	}
	_, err := st.Ingest(c, Batch(es...))
	require.NoError(t, err)
	ms, _, cur := pullChangesN(t, st, "", 3, 7)
	require.Len(t, ms, 7)
	seen := map[string]bool{}
	for _, m := range ms {
		require.False(t, seen[m.Member.ID], "member %s twice in the snapshot", m.Member.ID)
		seen[m.Member.ID] = true
	}
	// Nothing new: empty page, same position.
	ch, err := st.Changes(c, cur, 3)
	require.NoError(t, err)
	require.Empty(t, ch.Members)
	require.False(t, ch.More)

	_, err = st.Ingest(c, Batch(tl.Sale("M3", T0.Add(time.Hour), 1000, 10, 0, 0, ""), tl.TopUp("M5", T0, 700, 0)))
	require.NoError(t, err)
	ms, _, cur = pullChangesN(t, st, cur, 3, 2)
	require.Len(t, ms, 2)
	got := map[string]wire.MemberState{}
	for _, m := range ms {
		got[m.Member.ID] = m
	}
	require.EqualValues(t, 10, got["M3"].Points)
	require.Equal(t, T0.Add(time.Hour).UTC().Format(time.RFC3339), got["M3"].LastSale)
	require.EqualValues(t, 700, got["M5"].StoredValue)
	require.Equal(t, "silver", got["M5"].Member.Tier)

	ms, _, _ = pullChanges(t, st, cur, 3)
	require.Empty(t, ms)

	_, err = st.Changes(c, "!!not a cursor", 3)
	require.ErrorIs(t, err, hq.ErrCursor)
}

func testPrograms(t *testing.T, st hq.Store) {
	c := ctx(t)
	p1 := wire.ProgramVersion{Version: 1, EffectiveFrom: "2026-01-01T00:00:00Z", Source: "version: 1\n"}
	p2 := wire.ProgramVersion{Version: 2, EffectiveFrom: "2026-04-01T00:00:00Z", Source: "version: 2\n"}
	require.NoError(t, st.PublishProgram(c, p1))
	require.NoError(t, st.PublishProgram(c, p1), "the same version again is a no-op")
	bad := p1
	bad.Source = "version: 1\nother: true\n"
	require.ErrorIs(t, st.PublishProgram(c, bad), hq.ErrConflict)

	_, progs, cur := pullChanges(t, st, "", 10)
	require.Equal(t, []wire.ProgramVersion{p1}, progs)
	require.NoError(t, st.PublishProgram(c, p2))
	_, progs, cur = pullChanges(t, st, cur, 10)
	require.Equal(t, []wire.ProgramVersion{p2}, progs)
	_, progs, _ = pullChanges(t, st, cur, 10)
	require.Empty(t, progs)
	require.ErrorIs(t, st.PublishProgram(c, wire.ProgramVersion{Version: 1, EffectiveFrom: p1.EffectiveFrom, Source: "x"}), hq.ErrConflict)
	all, err := st.Programs(c)
	require.NoError(t, err)
	require.Equal(t, []wire.ProgramVersion{p1, p2}, all)
}

// Eventually polls cond until it holds or 20 s pass. Feeds may hold rows
// back while any transaction on the database server is still open (another
// test's, say), so reads after a write poll rather than expect the row at once.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pullExportN pulls until seen holds n entries.
func pullExportN(t *testing.T, st hq.Store, cursor string, limit int, seen map[string]int, n int) string {
	Eventually(t, fmt.Sprintf("%d exported entries", n), func() bool {
		cursor = pullExport(t, st, cursor, limit, seen)
		return len(seen) >= n
	})
	return cursor
}

// pullChangesN pulls until n member states arrived.
func pullChangesN(t *testing.T, st hq.Store, cursor string, limit, n int) (members []wire.MemberState, progs []wire.ProgramVersion, next string) {
	Eventually(t, fmt.Sprintf("%d member changes", n), func() bool {
		ms, ps, c := pullChanges(t, st, cursor, limit)
		members, progs, cursor = append(members, ms...), append(progs, ps...), c
		return len(members) >= n
	})
	return members, progs, cursor
}

// pullExport follows the export feed to its end, counting each entry.
func pullExport(t *testing.T, st hq.Store, cursor string, limit int, seen map[string]int) string {
	for i := 0; ; i++ {
		require.Less(t, i, 100000, "export feed does not end")
		p, err := st.Export(ctx(t), cursor, limit)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Entries), limit)
		for _, e := range p.Entries {
			seen[e.ID()]++
			require.NotEmpty(t, e.ReceivedAt)
		}
		cursor = p.Cursor
		if !p.More {
			return cursor
		}
	}
}

func testExportPaging(t *testing.T, st hq.Store) {
	c := ctx(t)
	want := map[string]bool{}
	for _, till := range []string{"T1", "T2", "T3"} {
		tl := &Till{Store: "S1", Till: till}
		var es []entry.Entry
		for i := 0; i < 10; i++ {
			e := tl.Sale("M1", T0.Add(time.Duration(i)*time.Minute), 100, 1, 0, 0, "")
			want[e.ID()] = true
			es = append(es, e)
		}
		_, err := st.Ingest(c, Batch(es...))
		require.NoError(t, err)
	}
	seen := map[string]int{}
	cur := pullExportN(t, st, "", 7, seen, 30)
	require.Len(t, seen, 30)
	for id, n := range seen {
		require.True(t, want[id])
		require.Equal(t, 1, n, "entry %s exported once", id)
	}
	tl := &Till{Store: "S2", Till: "T1"}
	_, err := st.Ingest(c, Batch(tl.Sale("M2", T0, 100, 1, 0, 0, "")))
	require.NoError(t, err)
	more := map[string]int{}
	cur = pullExportN(t, st, cur, 7, more, 1)
	require.Equal(t, map[string]int{"S2/T1/1": 1}, more)
	p, err := st.Export(c, cur, 7)
	require.NoError(t, err)
	require.Empty(t, p.Entries)
	require.False(t, p.More)
	require.Equal(t, cur, p.Cursor, "an empty page keeps the position")
	_, err = st.Export(c, "%%%", 7)
	require.ErrorIs(t, err, hq.ErrCursor)
}

// testConcurrent ingests from many tills at once (each retried whole, as a
// client would after a lost answer) while a reader pulls the export feed:
// every entry is exported exactly once and balances add up exactly.
func testConcurrent(t *testing.T, st hq.Store) {
	c := ctx(t)
	const tills, batches, per = 8, 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, tills)
	for i := 0; i < tills; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tl := &Till{Store: fmt.Sprintf("S%d", i%3), Till: fmt.Sprintf("T%d", i)}
			for k := 0; k < batches; k++ {
				var es []entry.Entry
				for j := 0; j < per; j++ {
					es = append(es, tl.Sale(fmt.Sprintf("M%d", j%5), T0, 100, 1, 0, 0, ""))
				}
				for r := 0; r < 2; r++ { // the second is a duplicate
					if _, err := st.Ingest(c, Batch(es...)); err != nil {
						errs <- err
						return
					}
				}
			}
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]int{}
	cur := ""
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		cur = pullExport(t, st, cur, 13, seen)
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	pullExportN(t, st, cur, 13, seen, tills*batches*per)
	require.Len(t, seen, tills*batches*per)
	for id, n := range seen {
		if n != 1 {
			require.FailNow(t, "export repeated an entry", "%s seen %d times", id, n)
		}
	}
	var pts int64
	require.NoError(t, st.Members(c, func(m hq.Member) error { pts += m.Points; return nil }))
	require.EqualValues(t, tills*batches*per, pts)
	if errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
