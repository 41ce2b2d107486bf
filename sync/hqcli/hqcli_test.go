package hqcli_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hqcli"
	"posagent/sync/wire"
)

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := hqcli.NewCommand()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// seed writes a few entries straight into the bbolt file.
func seed(t *testing.T, db string) {
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	ctx := context.Background()
	b := hqtest.Batch(tl.Enrol("M1", hqtest.T0), tl.Sale("M1", hqtest.T0.Add(time.Hour), 12345, 123, 100, 2000, ""), tl.TopUp("M1", hqtest.T0, 5000, 0))
	b.Items = append(b.Items, hq.Item{Seq: 4, Raw: []byte(`{"kind":"mystery"}`), Reason: "unknown kind"})
	b.Last = 4
	_, err = st.Ingest(ctx, b)
	require.NoError(t, err)
}

func TestStoreCredentials(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	out, errOut, err := run(t, "store", "add", "S1", "--name", "One", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `^hqs_[0-9a-f]{64}\n$`, out)
	require.Contains(t, errOut, "only its hash")
	_, _, err = run(t, "store", "add", "S1", "--db", db)
	require.ErrorIs(t, err, hq.ErrConflict)
	out, _, err = run(t, "store", "add", "erp", "--admin", "--db", db)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "hqa_"))
	_, _, err = run(t, "store", "revoke", "S1", "--db", db)
	require.NoError(t, err)
	out, _, err = run(t, "store", "list", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `store\s+S1\s+One\s+Asia/Shanghai\s+\S+\s+revoked`, out)
	require.Regexp(t, `admin\s+erp\s+.*active`, out)
	_, _, err = run(t, "store", "add", "S2", "--tz", "Mars/Base", "--db", db)
	require.ErrorContains(t, err, "IANA")
}

func TestExportKPIDeadLettersCouponsProgram(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	seed(t, db)

	jl := filepath.Join(dir, "out.jsonl")
	cur := filepath.Join(dir, "cursor")
	_, errOut, err := run(t, "export", "--format", "jsonl", "--out", jl, "--cursor-file", cur, "--db", db, "--limit", "2")
	require.NoError(t, err)
	require.Contains(t, errOut, "exported 3 entries")
	f, err := os.Open(jl)
	require.NoError(t, err)
	defer f.Close()
	var rows []hqcli.Row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r hqcli.Row
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r))
		rows = append(rows, r)
	}
	require.Len(t, rows, 3)
	sale := rows[1]
	require.Equal(t, "sale", sale.Kind)
	require.Equal(t, "R-S1-T1-2", sale.ReceiptID)
	require.Equal(t, "M1", sale.MemberID)
	require.EqualValues(t, 12345, sale.Amount)
	require.EqualValues(t, 123, sale.PointsEarned)
	require.EqualValues(t, 100, sale.PointsRedeemed)
	require.EqualValues(t, 2000, sale.StoredValuePaid)
	require.Equal(t, "2026-03-10T03:00:00Z", sale.TimeUTC)
	require.Equal(t, "2026-03-10T11:00:00+08:00", sale.TimeLocal)
	require.Len(t, sale.Lines, 1)
	raw, err := os.ReadFile(jl)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "13800001234", "no member contact data in the export")

	// Resuming from the saved cursor finds nothing new.
	_, errOut, err = run(t, "export", "--format", "csv", "--out", filepath.Join(dir, "none.csv"), "--cursor-file", cur, "--db", db, "-q")
	require.NoError(t, err)
	require.Contains(t, errOut, "exported 0 entries")

	csvPath := filepath.Join(dir, "out.csv")
	_, _, err = run(t, "export", "--format", "csv", "--out", csvPath, "--db", db, "-q")
	require.NoError(t, err)
	cf, err := os.Open(csvPath)
	require.NoError(t, err)
	defer cf.Close()
	recs, err := csv.NewReader(cf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 4)
	require.Equal(t, "store", recs[0][0])
	require.Equal(t, "12345", recs[2][16])
	_, _, err = run(t, "export", "--format", "xml", "--db", db)
	require.ErrorContains(t, err, "jsonl or csv")

	out, _, err := run(t, "kpi", "--month", "2026-03", "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "CHAIN")
	out, _, err = run(t, "kpi", "--month", "2026-03", "--format", "json", "--db", db)
	require.NoError(t, err)
	var rep hq.KPIReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Equal(t, 1, rep.Chain.NewMembers)
	require.EqualValues(t, 12345, rep.Chain.AvgTicket)
	require.Equal(t, 180, rep.DormantDays, "thresholds come from the program")
	html := filepath.Join(dir, "kpi.html")
	_, _, err = run(t, "kpi", "--month", "2026-03", "--format", "html", "--out", html, "--db", db)
	require.NoError(t, err)
	page, err := os.ReadFile(html)
	require.NoError(t, err)
	require.Contains(t, string(page), "<svg")

	out, _, err = run(t, "deadletters", "list", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `S1/T1/4\s+\S+\s+open\s+unknown kind`, out)
	out, _, err = run(t, "deadletters", "retry", "--db", db)
	require.Error(t, err)
	require.Contains(t, out, "still failing S1/T1/4")

	out, _, err = run(t, "coupons", "issue", "--campaign", "c1", "--threshold", "100", "--value", "20", "--dormant-days", "1", "--db", db)
	require.NoError(t, err)
	require.Equal(t, "issued 1 recall coupons (campaign c1)\n", out)
	_, _, err = run(t, "coupons", "issue", "--campaign", "c1", "--value", "2O", "--db", db)
	require.ErrorContains(t, err, "--value")

	prog := filepath.Join(dir, "p.yaml")
	src, err := os.ReadFile("../../ledger/loyalty/default_program.yaml")
	require.NoError(t, err)
	v2 := regexp.MustCompile(`(?m)^version: 1`).ReplaceAll(src, []byte("version: 2"))
	require.NoError(t, os.WriteFile(prog, v2, 0o600))
	out, _, err = run(t, "program", "publish", prog, "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "published program version 2")
	require.NoError(t, os.WriteFile(prog, []byte("version: x\n"), 0o600))
	_, _, err = run(t, "program", "publish", prog, "--db", db)
	require.ErrorContains(t, err, "program rejected")
}

func TestServeAndRemoteAdmin(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	seed(t, db)
	url, stop := serve(t, db)
	resp, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	out, _, err := run(t, "store", "add", "S9", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "hqs_"))
	_, errOut, err := run(t, "export", "--url", url, "--token", "boot", "--out", filepath.Join(dir, "x.jsonl"))
	require.NoError(t, err)
	require.Contains(t, errOut, "exported 3 entries")
	out, _, err = run(t, "kpi", "--url", url, "--token", "boot", "--month", "2026-03")
	require.NoError(t, err)
	require.Contains(t, out, "CHAIN")
	_, _, err = run(t, "store", "list", "--url", url, "--token", "wrong")
	require.ErrorContains(t, err, "401")
	stop()
}

// serve runs "hq serve" on db with the admin token "boot" and returns its
// URL and a stop that waits for it to end (also run at test end).
func serve(t *testing.T, db string, extra ...string) (url string, stop func()) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	t.Setenv("HQ_ADMIN_TOKEN", "boot")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := hqcli.NewCommand()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append([]string{"serve", "--db", db, "--listen", "127.0.0.1:0", "--addr-file", addrFile}, extra...))
		done <- cmd.ExecuteContext(ctx)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not stop")
		}
	}
	t.Cleanup(stop)
	hqtest.Eventually(t, "the server address", func() bool {
		b, err := os.ReadFile(addrFile)
		url = strings.TrimSpace(string(b))
		return err == nil && url != ""
	})
	return url, stop
}

func TestMembersFlaggedAndReview(t *testing.T) {
	db := filepath.Join(t.TempDir(), "hq.db")
	// M7, M8 and M9 each spend stored value offline at two stores: flagged.
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	a, b := &hqtest.Till{Store: "S1", Till: "T1"}, &hqtest.Till{Store: "S2", Till: "T1"}
	ctx := context.Background()
	for _, id := range []string{"M7", "M8", "M9"} {
		_, err = st.Ingest(ctx, hqtest.Batch(a.Enrol(id, hqtest.T0), a.TopUp(id, hqtest.T0, 1000, 0), a.Sale(id, hqtest.T0, 1000, 10, 0, 1000, "")))
		require.NoError(t, err)
		_, err = st.Ingest(ctx, hqtest.Batch(b.Sale(id, hqtest.T0, 700, 7, 0, 700, "")))
		require.NoError(t, err)
	}
	require.NoError(t, st.Close())

	out, _, err := run(t, "members", "flagged", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^M7\s+Member M7\s+17\s+-7\.00\s+2026-03-10T02:00:00Z\s+0$`, out)
	require.Contains(t, out, "M8")
	require.Contains(t, out, "M9")

	out, _, err = run(t, "members", "review", "M7", "--by", "alice", "--note", "paid in cash", "--db", db)
	require.NoError(t, err)
	require.Equal(t, "reviewed M7: flag cleared (points 17, stored value -7.00 yuan); the entries stay\n", out)
	_, _, err = run(t, "members", "review", "M7", "--db", db)
	require.ErrorIs(t, err, hq.ErrNotFlagged)
	require.ErrorContains(t, err, "members flagged")
	_, _, err = run(t, "members", "review", "M404", "--db", db)
	require.ErrorIs(t, err, hq.ErrNotFound)
	// Without --by the operating-system user is the reviewer.
	_, _, err = run(t, "members", "review", "M8", "--db", db)
	require.NoError(t, err)

	// Through a running HQ the admin token names the reviewer.
	url, stop := serve(t, db)
	_, _, err = run(t, "members", "review", "M9", "--by", "mallory", "--url", url, "--token", "boot")
	require.ErrorContains(t, err, "--by")
	out, _, err = run(t, "members", "flagged", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "M9")
	require.NotContains(t, out, "M7")
	out, _, err = run(t, "members", "review", "M9", "--note", "checked", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "reviewed M9")
	_, _, err = run(t, "members", "review", "M9", "--url", url, "--token", "boot")
	require.ErrorContains(t, err, "409")
	out, _, err = run(t, "members", "flagged", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Equal(t, "no member is waiting for review\n", out)
	stop()

	st, err = bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	for id, by := range map[string]string{"M7": "alice", "M9": "bootstrap"} {
		m, err := st.Member(ctx, id)
		require.NoError(t, err)
		require.False(t, m.Flagged)
		require.Len(t, m.Reviews, 1)
		require.Equal(t, by, m.Reviews[0].By, id)
	}
	m, err := st.Member(ctx, "M7")
	require.NoError(t, err)
	require.Equal(t, "paid in cash", m.Reviews[0].Note)
	require.EqualValues(t, -700, m.Reviews[0].StoredValue)
	m, err = st.Member(ctx, "M8")
	require.NoError(t, err)
	require.Len(t, m.Reviews, 1)
	require.NotEmpty(t, m.Reviews[0].By)
}

// TestEveryCommandHasAnExampleForPosagent: the tree is mounted as
// "posagent hq", so every command shows how it is called there.
func TestEveryCommandHasAnExampleForPosagent(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no example", c.CommandPath())
		}
		want := "posagent " + c.CommandPath() + " "
		for _, l := range strings.Split(c.Example, "\n") {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l+" ", want) {
				t.Errorf("%q: example %q does not start with %q", c.CommandPath(), l, strings.TrimSpace(want))
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(hqcli.NewCommand())
	require.Greater(t, n, 10, "the walk saw the command tree")
}

// TestServeIdentityFeed: hq serve --member-feed identity leaves a sale out
// of the feed the stores pull, and a store's member look-up has it.
func TestServeIdentityFeed(t *testing.T) {
	dir := t.TempDir()
	_, _, err := run(t, "serve", "--db", filepath.Join(dir, "x.db"), "--member-feed", "some")
	require.ErrorContains(t, err, "--member-feed")

	url, _ := serve(t, filepath.Join(dir, "hq.db"), "--member-feed", "identity")
	tok, _, err := run(t, "store", "add", "S9", "--url", url, "--token", "boot")
	require.NoError(t, err)
	tok = strings.TrimSpace(tok)
	get := func(path string, v any) {
		t.Helper()
		req, err := http.NewRequest("GET", url+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	tl := &hqtest.Till{Store: "S9", Till: "T1"}
	upload := func(e entry.Entry) {
		t.Helper()
		var body bytes.Buffer
		zw := gzip.NewWriter(&body)
		require.NoError(t, json.NewEncoder(zw).Encode(wire.Batch{Store: "S9", Till: "T1", First: e.Seq, Last: e.Seq, Entries: []entry.Entry{e}}))
		require.NoError(t, zw.Close())
		req, err := http.NewRequest("POST", url+wire.PathBatches, &body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	upload(tl.Enrol("M1", hqtest.T0))
	var ch wire.Changes
	get(wire.PathChanges+"?limit=10", &ch)
	require.Len(t, ch.Members, 1)
	upload(tl.Sale("M1", hqtest.T0.Add(time.Hour), 1000, 10, 0, 0, ""))
	upload(tl.Enrol("M2", hqtest.T0))
	get(wire.PathChanges+"?limit=10&cursor="+ch.Cursor, &ch)
	require.Len(t, ch.Members, 1, "the enrolment is in the feed, the sale is not")
	require.Equal(t, "M2", ch.Members[0].Member.ID)
	var l wire.MemberLookup
	get(wire.PathMembers+"M1", &l)
	require.EqualValues(t, 10, l.Member.Points)
	require.Equal(t, map[string]uint64{"T1": 3}, l.Acked)
}
