package ledger

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// loadStates are a snapshot with what a bulk load must treat like
// ApplyMemberStates: coupons, no or negative points, a last sale, two cards
// or none, a text card token, a member sent twice (the last state wins,
// and its earlier card must not stay indexed), two members sharing a card.
func loadStates() []MemberState {
	var out []MemberState
	for i := range 300 {
		out = append(out, benchMemberState(i))
	}
	out[5].Points = 0
	out[6].Points = -40
	out[7].Member.CardTokens = append(out[7].Member.CardTokens, "text-token-7")
	out[8].Member.CardTokens = nil
	out[9].Member.Mobile = ""
	twice := benchMemberState(11)
	twice.Member.CardTokens = []string{benchCard(100_011)}
	twice.Member.Mobile = "13999999911"
	twice.Points = 777
	shared := benchMemberState(12)
	shared.Member.ID = "Z-shared"
	shared.Member.Mobile = "13999999912"
	return append(out, twice, shared)
}

// A bulk load into an empty ledger gives what ApplyMemberStates gives: the
// same members, balances, coupons, indexes, and a ledger Verify accepts;
// the load's files are gone afterwards.
func TestMemberLoadMatchesApply(t *testing.T) {
	states := loadStates()
	want, _ := open(t)
	require.NoError(t, want.ApplyMemberStates(states))
	got, _ := open(t)
	ld, err := got.LoadMembers()
	require.NoError(t, err)
	require.False(t, ld.direct)
	for i := 0; i < len(states); i += 70 {
		require.NoError(t, ld.Add(states[i:min(i+70, len(states))]))
	}
	require.NoError(t, ld.flush()) // two runs at least
	_, err = got.Member(states[0].Member.ID)
	require.ErrorIs(t, err, ErrNotFound, "nothing is visible before Finish")
	require.NoError(t, ld.Finish())
	left, _ := filepath.Glob(got.Path() + ".load-*")
	require.Empty(t, left)

	for _, s := range states {
		w, err := want.Member(s.Member.ID)
		require.NoError(t, err)
		g, err := got.Member(s.Member.ID)
		require.NoError(t, err)
		require.Equal(t, w, g)
		for _, c := range g.Member.CardTokens {
			w, werr := want.MemberByToken(c)
			g, gerr := got.MemberByToken(c)
			require.Equal(t, werr == nil, gerr == nil)
			require.Equal(t, w.Member.ID, g.Member.ID)
		}
		if m := g.Member.Mobile; m != "" {
			w, _ := want.MemberByMobile(m)
			g, err := got.MemberByMobile(m)
			require.NoError(t, err)
			require.Equal(t, w.Member.ID, g.Member.ID)
		}
	}
	_, err = got.MemberByToken(benchCard(11))
	require.ErrorIs(t, err, ErrNotFound, "the card of the earlier state of a member sent twice")
	require.Equal(t, indexes(t, want), indexes(t, got))
	require.Equal(t, ixEntries(t, want), ixEntries(t, got))
	require.Len(t, ixEntries(t, got), 600, "300 cards (the shared one once) and 300 mobiles")
	verifyOK(t, got)

	// The loaded members take sales like any other.
	e := sale(t, got, SaleRequest{ReceiptID: "A", MemberID: states[3].Member.ID, Lines: []loyalty.Line{line(1, 1, 10000)}})
	require.Equal(t, states[3].Points+e.PointsDelta, points(t, got, states[3].Member.ID))
	verifyOK(t, got)
}

func indexes(t *testing.T, l *Ledger) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, l.read(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bByToken, bByMobile} {
			tx.Bucket(b).ForEach(func(k, v []byte) error {
				out[string(b)+"/"+string(k)] = string(v)
				return nil
			})
		}
		return nil
	}))
	return out
}

// A member enrolled at the till while the load runs is not overwritten
// blindly: HQ's state is applied on top of it as ApplyMemberStates would.
// Into a ledger that holds members already, each Add applies at once.
func TestMemberLoadOntoMembers(t *testing.T) {
	l, _ := open(t)
	ld, err := l.LoadMembers()
	require.NoError(t, err)
	_, err = l.LoadMembers()
	require.ErrorIs(t, err, ErrInvalid, "one load at a time")
	enrol(t, l, "E1")
	s := MemberState{Member: entry.Member{ID: "E1", Name: "from HQ", Tier: "gold", CardTokens: []string{benchCard(1)}}, Points: 50}
	require.NoError(t, ld.Add([]MemberState{s, benchMemberState(2)}))
	require.NoError(t, ld.Finish())
	v, err := l.MemberByToken(benchCard(1))
	require.NoError(t, err)
	require.Equal(t, "from HQ", v.Member.Name)
	_, err = l.Member(benchMemberState(2).Member.ID)
	require.NoError(t, err)
	verifyOK(t, l)

	ld, err = l.LoadMembers()
	require.NoError(t, err)
	require.True(t, ld.direct)
	require.NoError(t, ld.Add([]MemberState{benchMemberState(3)}))
	_, err = l.Member(benchMemberState(3).Member.ID)
	require.NoError(t, err, "applied at once")
	require.NoError(t, ld.Finish())
	require.ErrorIs(t, ld.Add(nil), ErrInvalid)
	verifyOK(t, l)
}

// An aborted load leaves no files, and the runs of a load a crash
// interrupted are removed by the next one.
func TestMemberLoadAbort(t *testing.T) {
	l, _ := open(t)
	stale := l.Path() + ".load-123"
	require.NoError(t, os.Mkdir(stale, 0o700))
	ld, err := l.LoadMembers()
	require.NoError(t, err)
	require.NoDirExists(t, stale)
	require.NoError(t, ld.Add(loadStates()))
	require.NoError(t, ld.flush())
	ld.Abort()
	left, _ := filepath.Glob(l.Path() + ".load-*")
	require.Empty(t, left)
	_, err = l.Member(benchMemberState(1).Member.ID)
	require.ErrorIs(t, err, ErrNotFound)
	verifyOK(t, l)
}

// Without repeated members both paths number the states in id order, so
// the members bucket is the same byte for byte.
func TestMemberLoadSameBytes(t *testing.T) {
	var states []MemberState
	for i := range 500 {
		s := benchMemberState(i)
		if i%7 == 0 {
			s.Coupons = append(s.Coupons, entry.MemberCoupon{ID: "b-" + s.Member.ID, MemberID: s.Member.ID, Name: "B", Value: 100, SKUs: []string{"x"}})
		}
		if i%11 == 0 {
			s.Points = -int64(i)
		}
		states = append(states, s)
	}
	want, _ := open(t)
	require.NoError(t, want.ApplyMemberStates(states))
	got, _ := open(t)
	ld, err := got.LoadMembers()
	require.NoError(t, err)
	require.NoError(t, ld.Add(states[:200]))
	require.NoError(t, ld.flush())
	require.NoError(t, ld.Add(states[200:]))
	require.NoError(t, ld.Finish())
	dump := func(l *Ledger) map[string]string {
		out := map[string]string{}
		require.NoError(t, l.read(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bMembers, bIndex, bLotExp, bHQLog} {
				tx.Bucket(b).ForEach(func(k, v []byte) error {
					out[string(b)+"/"+string(k)] = string(v)
					return nil
				})
			}
			out["global"] = string(u64(tx.Bucket(bLog).Sequence()))
			return nil
		}))
		return out
	}
	require.Equal(t, dump(want), dump(got))
}
