package pg_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/ledger/staff"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/pg"
	"posagent/sync/wire"
)

// hqProcess is one HQ process as far as the feed is concerned: its own
// pool on the shared database, its own server (and feed head), real HTTP
// on loopback.
type hqProcess struct {
	st  *pg.Store
	srv *hq.Server
	url string
}

func startProcess(t *testing.T, ctx context.Context, u string, every time.Duration) *hqProcess {
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4, PruneEvery: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	srv := hq.NewServer(st, hq.Options{FeedHeadEvery: every, ParseProgram: parseVersion})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &hqProcess{st: st, srv: srv, url: ts.URL}
}

// parseVersion reads a program file that is only "version: N".
func parseVersion(src []byte) (hq.ProgramInfo, error) {
	v, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(string(src), "version:")))
	return hq.ProgramInfo{Version: v, EffectiveFrom: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}, err
}

// pull is one GET of the changes page after cursor, as a till asks for it
// (with its cashier list's version).
func (p *hqProcess) pull(t *testing.T, token, cursor, cashiers string) wire.Changes {
	t.Helper()
	q := url.Values{"cursor": {cursor}, "limit": {"500"}, wire.QueryCashiers: {cashiers}}
	req, err := http.NewRequest("GET", p.url+wire.PathChanges+"?"+q.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var ch wire.Changes
	require.NoError(t, json.Unmarshal(b, &ch))
	return ch
}

// upload posts a batch as a till does and returns once HQ has acked it
// (committed).
func (p *hqProcess) upload(token string, es ...entry.Entry) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(wire.Batch{Store: es[0].Store, Till: es[0].Till, First: es[0].Seq, Last: es[len(es)-1].Seq, Entries: es}); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequest("POST", p.url+wire.PathBatches, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload: %s %s", resp.Status, b)
	}
	return nil
}

// acquires is how many times the process's pool handed out a connection:
// every statement or transaction takes one.
func (p *hqProcess) acquires() int64 { return p.st.Pool().Stat().AcquireCount() }

// TestPullAtHeadQueriesOnlyTheCredential: two HQ processes on one
// database. A till that is up to date pulling from B costs B one query,
// its credential's; a change made through A (a member, a program, a
// cashier, a member-code key) is in every pull from B that starts
// FeedHeadEvery after A answered, and the pulls before that miss nothing
// (the member comes once, with its state).
func TestPullAtHeadQueriesOnlyTheCredential(t *testing.T) {
	ctx, u := freshSchema(t)
	const every = 2 * time.Second // long enough that the counted pulls share one head on a slow box
	a, b := startProcess(t, ctx, u, every), startProcess(t, ctx, u, every)
	tok, err := a.srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store 1", "Asia/Shanghai")
	require.NoError(t, err)
	tok2, err := a.srv.IssueCredential(ctx, hq.RoleStore, "S2", "Store 2", "Asia/Shanghai")
	require.NoError(t, err)
	_, err = a.srv.AddCashier(ctx, hq.CashierRequest{Store: "S1", ID: "C1", Name: "Ann", PIN: "482913"})
	require.NoError(t, err)

	// The till's first pulls: the cashiers come, then nothing is new.
	ch := b.pull(t, tok, "", "")
	require.Len(t, ch.Cashiers, 1)
	version, cursor := ch.CashiersVersion, ch.Cursor
	first := version
	require.NotEmpty(t, ch.MemberCodeKeys)
	keys := ch.MemberCodeKeys
	ch = b.pull(t, tok, cursor, version)
	cursor = ch.Cursor

	n0, start := b.acquires(), time.Now()
	const pulls = 20
	for range pulls {
		ch = b.pull(t, tok, cursor, version)
		require.Empty(t, ch.Members)
		require.Empty(t, ch.Programs)
		require.Empty(t, ch.CashiersVersion)
		require.False(t, ch.More)
		require.Equal(t, keys, ch.MemberCodeKeys, "the member-code keys come with every page")
		cursor = ch.Cursor
	}
	// Another store's first pull: B read every store's cashier list
	// version with the head, so it knows S2 has none without asking.
	ch2 := b.pull(t, tok2, "", "")
	require.Empty(t, ch2.CashiersVersion)
	require.Empty(t, ch2.Members)
	took := time.Since(start)
	if took < every/2 { // the pulls shared one head, not yet due for the next
		require.EqualValues(t, pulls+1, b.acquires()-n0, "an up-to-date pull queries only its credential")
	} else { // a slow box: a head read (3 queries) each half age at most
		require.LessOrEqual(t, b.acquires()-n0, int64(pulls+1)+3*(1+int64(took/(every/2))))
	}
	t.Logf("%d up-to-date pulls and S2's first in %v: %d queries at B", pulls, took, b.acquires()-n0)

	// A change through A: a member, a program, a cashier, a new key.
	till := &hqtest.Till{Store: "S1", Till: "T1"}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, a.upload(tok, till.Enrol("M1", t0), till.Points("M1", t0, 42, "welcome")))
	_, err = a.srv.PublishProgram(ctx, []byte("version: 7"))
	require.NoError(t, err)
	_, err = a.srv.AddCashier(ctx, hq.CashierRequest{Store: "S1", ID: "C2", Name: "Bo", PIN: "739104"})
	require.NoError(t, err)
	newKey, _, err := a.srv.RotateMemberCodeKey(ctx, time.Minute)
	require.NoError(t, err)
	changed := time.Now()

	// Pulls before the bound may or may not have it; none misses it.
	members := map[string]int{}
	var programs []int
	take := func(ch wire.Changes) {
		for _, m := range ch.Members {
			members[m.Member.ID]++
			require.EqualValues(t, 42, m.Points)
		}
		for _, p := range ch.Programs {
			programs = append(programs, p.Version)
		}
		if ch.CashiersVersion != "" {
			version = ch.CashiersVersion
			require.Len(t, ch.Cashiers, 2)
		}
		cursor = ch.Cursor
	}
	for time.Since(changed) < every {
		take(b.pull(t, tok, cursor, version))
		time.Sleep(50 * time.Millisecond)
	}
	ch = b.pull(t, tok, cursor, version)
	take(ch)
	require.Equal(t, map[string]int{"M1": 1}, members, "the member came once")
	require.Equal(t, []int{7}, programs, "the program came once")
	require.NotEqual(t, first, version, "the new cashier list came")
	ids := []string{}
	for _, k := range ch.MemberCodeKeys {
		ids = append(ids, k.ID)
	}
	require.Contains(t, ids, newKey, "the rotated key is published")
	again := b.pull(t, tok, cursor, version)
	require.Empty(t, again.Members)
	require.Empty(t, again.CashiersVersion, "the till holds the current cashier list")
	ch2 = b.pull(t, tok2, ch2.Cursor, "")
	require.Empty(t, ch2.CashiersVersion, "S2 still has no cashiers")
	require.Len(t, ch2.Members, 1, "S2's till gets the member too")
}

// TestEachStoreCashiers: the whole table read at once gives each store
// the list (and so the version) its own read gives.
func TestEachStoreCashiers(t *testing.T) {
	ctx, u := freshSchema(t)
	p := startProcess(t, ctx, u, -1)
	for _, s := range []string{"S1", "S2", "S3"} {
		_, err := p.srv.IssueCredential(ctx, hq.RoleStore, s, "", "Asia/Shanghai")
		require.NoError(t, err)
	}
	for _, c := range []hq.CashierRequest{{Store: "S2", ID: "b", Name: "B", PIN: "482913"}, {Store: "S1", ID: "z", Name: "Z", PIN: "482913"},
		{Store: "S2", ID: "a", Name: "A", PIN: "739104"}, {Store: "S1", ID: "c", Name: "C", PIN: "739104", Role: "supervisor"}} {
		_, err := p.srv.AddCashier(ctx, c)
		require.NoError(t, err)
	}
	got := map[string]string{}
	require.NoError(t, p.st.EachStoreCashiers(ctx, func(store string, list []staff.Cashier) error {
		want, err := p.st.StoreCashiers(ctx, store)
		require.NoError(t, err)
		require.Equal(t, want, list)
		got[store] = hq.CashiersVersion(list)
		return nil
	}))
	require.Len(t, got, 2, "S3 has none and is left out")
	require.NotEqual(t, got["S1"], got["S2"])
}

// TestPullsFromHeadMissNothing: tills upload through A while a reader
// follows the member feed at B, whose head is re-read every 10 ms (so
// pulls are answered from it and from the database by turns), with a
// transaction that commits out of order held open meanwhile. Once the
// writers are done and the bound has passed, the reader holds every
// member's last state.
func TestPullsFromHeadMissNothing(t *testing.T) {
	ctx, u := freshSchema(t)
	const every = 10 * time.Millisecond
	a, b := startProcess(t, ctx, u, every), startProcess(t, ctx, u, every)
	tok, err := a.srv.IssueCredential(ctx, hq.RoleStore, "S1", "Store 1", "Asia/Shanghai")
	require.NoError(t, err)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	// A feed writer that commits after later ones.
	held := &hqtest.Till{Store: "S1", Till: "TH"}
	tx, err := a.st.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = pg.IngestTx(ctx, tx, hqtest.Batch(held.Points("MH", t0, 5, "correction")))
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			till := &hqtest.Till{Store: "S1", Till: fmt.Sprintf("T%d", w)}
			for k := 0; k < 15 && errs[w] == nil; k++ {
				errs[w] = a.upload(tok, till.Points(fmt.Sprintf("M%d", (w*7+k)%10), t0, int64(k+1), "correction"))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	got := map[string]int64{}
	cursor, pulls, n0 := "", 0, b.acquires()
	follow := func() {
		for {
			ch := b.pull(t, tok, cursor, "")
			pulls++
			for _, m := range ch.Members {
				got[m.Member.ID] = m.Points
			}
			cursor = ch.Cursor
			if !ch.More {
				return
			}
		}
	}
	committed := false
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		follow()
		if !committed && len(got) >= 3 {
			require.NoError(t, tx.Commit(ctx)) // behind what was read already
			committed = true
		}
	}
	for _, err := range errs {
		require.NoError(t, err)
	}
	if !committed {
		require.NoError(t, tx.Commit(ctx))
	}
	time.Sleep(every)
	follow()

	want := map[string]int64{}
	require.NoError(t, a.st.Members(ctx, func(m hq.Member) error { want[m.ID] = m.Points; return nil }))
	require.Len(t, want, 11)
	require.Equal(t, want, got, "the reader holds every member's last state")
	t.Logf("%d pulls at B, %d queries (a pull from the database takes 4 or more)", pulls, b.acquires()-n0)
}
