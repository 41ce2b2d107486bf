package hqtest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/wire"
)

// Snapshot is the conformance test of Store.Snapshot: a snapshot taken
// while members change, followed by the changes feed from its cursor,
// leaves a till holding exactly HQ's members, and the feed hands out no
// member state the snapshot already held.
func Snapshot(t *testing.T, open func(t *testing.T) hq.Store) {
	t.Run("ConcurrentWrites", func(t *testing.T) { testSnapshotConcurrent(t, open(t)) })
	t.Run("Empty", func(t *testing.T) {
		st := open(t)
		n := 0
		cur, err := st.Snapshot(ctx(t), func(wire.MemberState) error { n++; return nil })
		require.NoError(t, err)
		require.Zero(t, n)
		ms, _, _ := pullChanges(t, st, cur, 10)
		require.Empty(t, ms)
	})
}

func testSnapshotConcurrent(t *testing.T, st hq.Store) {
	c := ctx(t)
	const tills, members, rounds, perBatch = 4, 200, 40, 6
	ts := make([]*Till, tills)
	for i := range ts {
		ts[i] = &Till{Store: "S1", Till: fmt.Sprintf("T%d", i+1)}
	}
	var es []entry.Entry
	for i := range members {
		es = append(es, ts[0].Enrol(fmt.Sprintf("M%03d", i), T0))
	}
	_, err := st.Ingest(c, Batch(es...))
	require.NoError(t, err)

	// Every change raises a member's stored value by 100 (or enrols a new
	// member), so a state handed out twice shows as one that did not rise.
	var wg sync.WaitGroup
	started := make(chan struct{}, tills)
	errs := make(chan error, tills)
	for w := range tills {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for r := range rounds {
				var es []entry.Entry
				if r%5 == 0 {
					es = append(es, ts[w].Enrol(fmt.Sprintf("N%d-%02d", w, r), T0))
				}
				for len(es) < perBatch {
					es = append(es, ts[w].TopUp(fmt.Sprintf("M%03d", rnd.IntN(members)), T0.Add(time.Minute), 100, 0))
				}
				if _, err := st.Ingest(c, Batch(es...)); err != nil {
					errs <- err
					return
				}
				if r == 2 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range tills {
		<-started
	}

	held := map[string]wire.MemberState{}
	n := 0
	cur, err := st.Snapshot(c, func(m wire.MemberState) error {
		_, dup := held[m.Member.ID]
		require.False(t, dup, "member %s twice in the snapshot", m.Member.ID)
		held[m.Member.ID] = m
		if n++; n%25 == 0 {
			time.Sleep(time.Millisecond) // let the writers commit while it streams
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, cur)

	apply := func(ms []wire.MemberState) {
		for _, m := range ms {
			if old, ok := held[m.Member.ID]; ok {
				require.Greater(t, m.StoredValue, old.StoredValue, "member %s handed out again unchanged: the feed repeats what the snapshot or an earlier page held", m.Member.ID)
			}
			held[m.Member.ID] = m
		}
	}
	// Follow the feed while the writers run, then to its end.
	for i := 0; i < 200; i++ {
		ch, err := st.Changes(c, cur, 7)
		require.NoError(t, err)
		apply(ch.Members)
		cur = ch.Cursor
		if !ch.More {
			time.Sleep(2 * time.Millisecond)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	want := map[string]wire.MemberState{}
	require.NoError(t, st.Members(c, func(m hq.Member) error { want[m.ID] = m.State(); return nil }))
	require.Len(t, want, members+tills*rounds/5)
	// A feed may hold rows back while any older transaction on the
	// database server is open (another test's), so follow it until it
	// catches up; the check on every page above still applies.
	Eventually(t, "the feed to catch up", func() bool {
		var ms []wire.MemberState
		ms, _, cur = pullChanges(t, st, cur, 7)
		apply(ms)
		if len(held) != len(want) {
			t.Logf("held %d of %d, cursor %s", len(held), len(want), cur)
		}
		// Every member, not just the count: the last enrolment can come
		// through while later top-ups are still held back.
		return reflect.DeepEqual(held, want)
	})
	require.Equal(t, want, held, "after the snapshot and the feed the till must hold exactly HQ's members")
}
