package synctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"posagent/ledger/entry"
	"posagent/sync/client"
	"posagent/sync/hq"
	hqbolt "posagent/sync/hq/store/bolt"
	"posagent/sync/wire"
)

// The test binary doubles as the HQ and store processes: TestMain runs the
// role named in this variable instead of the tests.
const envRole = "POSAGENT_SYNCTEST_ROLE"

// adminToken is an admin with the pii right: HQ's export is compared with
// the stores' entries exactly, personal data included.
const adminToken = "synctest-admin"

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "hq":
		os.Exit(runHQ())
	case "store":
		os.Exit(runStore())
	}
	os.Exit(m.Run())
}

// exitWithParent ends a child when the test process goes away (its stdin
// closes), so a failed or killed test leaves no process behind.
func exitWithParent() {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(9)
	}()
}

// runHQ serves the real HQ server on the bolt store at POSAGENT_SYNCTEST_DB
// and prints "LISTEN <addr>". Store credentials come from
// POSAGENT_SYNCTEST_STORES as "store=token,...".
func runHQ() int {
	exitWithParent()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := hqbolt.Open(os.Getenv("POSAGENT_SYNCTEST_DB"), hqbolt.Options{Timeout: 20 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hq:", err)
		return 2
	}
	ctx := context.Background()
	for _, kv := range strings.Split(os.Getenv("POSAGENT_SYNCTEST_STORES"), ",") {
		id, tok, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		err := st.AddCredential(ctx, hq.Credential{Role: hq.RoleStore, ID: id, TokenHash: hq.HashToken(tok), CreatedAt: time.Now().UTC()})
		if err != nil && !errors.Is(err, hq.ErrConflict) {
			fmt.Fprintln(os.Stderr, "hq: credential:", err)
			return 2
		}
	}
	err = st.AddCredential(ctx, hq.Credential{Role: hq.RoleAdmin, ID: "synctest", TokenHash: hq.HashToken(adminToken), CreatedAt: time.Now().UTC(), Rights: []string{hq.RightPII}})
	if err != nil && !errors.Is(err, hq.ErrConflict) {
		fmt.Fprintln(os.Stderr, "hq: credential:", err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hq:", err)
		return 2
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	srv := &http.Server{Handler: hq.NewServer(st, hq.Options{Log: log}), ReadHeaderTimeout: 10 * time.Second}
	err = srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "hq:", err)
	return 1
}

// runStore fills the outbox at POSAGENT_SYNCTEST_OUTBOX up to the given
// number of entries per till (deterministic, so a restart adds nothing
// new), syncs until nothing is pending, pulls once more and prints DONE.
// While syncing it prints "PROGRESS <acked>" as entries get acknowledged.
func runStore() int {
	exitWithParent()
	store := os.Getenv("POSAGENT_SYNCTEST_STORE")
	ob, err := OpenOutbox(os.Getenv("POSAGENT_SYNCTEST_OUTBOX"), store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "store:", err)
		return 2
	}
	n, _ := strconv.Atoi(os.Getenv("POSAGENT_SYNCTEST_N"))
	tills, _ := strconv.Atoi(os.Getenv("POSAGENT_SYNCTEST_TILLS"))
	if err := fillOutbox(ob, tills, n); err != nil {
		fmt.Fprintln(os.Stderr, "store: fill:", err)
		return 2
	}
	cl, err := client.New(storeConfig(os.Getenv("POSAGENT_SYNCTEST_URL"), os.Getenv("POSAGENT_SYNCTEST_TOKEN")), ob, ob,
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "store:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go func() { _ = cl.Run(ctx) }()
	last := -1
	for ctx.Err() == nil {
		s := cl.Status()
		var acked int
		for _, a := range s.Acked {
			acked += int(a)
		}
		if acked != last {
			fmt.Printf("PROGRESS %d\n", acked)
			last = acked
		}
		if s.Backlog == 0 && acked == tills*n {
			if err := cl.SyncNow(ctx); err == nil {
				fmt.Println("DONE")
				return 0
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "store: not synced in time:", cl.Status().LastError)
	return 3
}

// storeConfig is the client config of the fault tests: small batches so a
// run has many of them, quick backoff so recovery is prompt.
func storeConfig(url, token string) client.Config {
	return client.Config{
		URL: url, Token: token, BatchMax: 100, BatchAge: 10 * time.Millisecond, Poll: 10 * time.Millisecond,
		PullEvery: time.Hour, BackoffBase: 5 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		MaxRetryAfter: time.Second, RequestTimeout: 15 * time.Second,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
	}
}

// fillOutbox appends the deterministic entries each till lacks.
func fillOutbox(ob *Outbox, tills, n int) error {
	for t := 1; t <= tills; t++ {
		till := fmt.Sprintf("T%d", t)
		have, err := ob.Len(till)
		if err != nil {
			return err
		}
		var es []entry.Entry
		for i := int(have) + 1; i <= n; i++ {
			es = append(es, makeEntry(ob.store, till, i))
			if len(es) == 5000 || i == n {
				if _, err := ob.Append(till, es); err != nil {
					return err
				}
				es = es[:0]
			}
		}
	}
	return nil
}

var shanghai = time.FixedZone("CST", 8*3600)

// makeEntry is the i-th entry of a till: enrolments first, then sales
// (some by members, some redeeming points or paying from stored value),
// top-ups and points adjustments. Content depends only on its arguments.
func makeEntry(store, till string, i int) entry.Entry {
	at := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	member := fmt.Sprintf("M-%s-%s-%d", store, till, i%5+1)
	e := entry.Entry{Kind: entry.KindSale, At: at, Local: at.In(shanghai).Format(time.RFC3339), Cashier: "c1", MemberID: member, ProgramVersion: 1}
	switch {
	case i <= 5:
		e.Kind, e.Key = entry.KindEnrol, "enrol-"+member
		e.Enrol = &entry.Enrol{Member: entry.Member{ID: member, Name: "Member " + member, Tier: "silver", EnrolledAt: at.Format(time.RFC3339)}}
	case i%7 == 0:
		amount := int64(10000 + i%13*100)
		e.Kind, e.Key = entry.KindTopUp, fmt.Sprintf("TU%d", i)
		e.StoredValueDelta = amount + amount/20
		e.TopUp = &entry.TopUp{TopUpID: e.Key, Amount: amount, Bonus: amount / 20}
	case i%11 == 0:
		e.Kind = entry.KindPointsAdjust
		e.PointsDelta = int64(i % 50)
		e.Points = &entry.PointsChange{Reason: "correction", Points: e.PointsDelta}
	default:
		due := int64(500 + i%997*7)
		earned := due / 100
		var redeem, sv int64
		if i%9 == 0 {
			redeem = 10
		}
		if i%4 == 0 {
			sv = due / 2
		}
		if i%3 == 0 {
			e.MemberID, earned, redeem, sv = "", 0, 0, 0
		}
		e.Key = fmt.Sprintf("R%s%06d", till, i)
		e.PointsDelta, e.StoredValueDelta = earned-redeem, -sv
		e.Sale = &entry.Sale{ReceiptID: e.Key, Gross: due, Due: due - redeem, RedeemPoints: redeem, RedeemValue: redeem,
			StoredValue: sv, EarnBase: due, Multiplier: 1, PointsEarned: earned,
			Lines: []entry.SaleLine{{LineNo: 1, SKU: fmt.Sprintf("SKU%d", i%40), Qty: 1, UnitPrice: due, Gross: due, Net: due,
				RedeemShare: redeem, RedeemPoints: redeem, Paid: due - redeem, EarnedPoints: earned}}}
	}
	return e
}

// proc is a child process of the test binary in a role.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
	mu    sync.Mutex
	errb  bytes.Buffer
}

func startProc(t *testing.T, name, role string, env ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, lines: make(chan string, 10000), done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	p.cmd.Stderr = &lockedWriter{p: p}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads progress that old
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.errb.Write(b)
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// waitLine returns the first line starting with prefix, failing the test
// if the process ends or nothing comes within the deadline.
func (p *proc) waitLine(prefix string, ok func(rest string) bool) string {
	p.t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case l := <-p.lines:
			if rest, found := strings.CutPrefix(l, prefix); found && (ok == nil || ok(rest)) {
				return rest
			}
		case <-p.done:
			// Look at what it printed before ending.
		drain:
			for {
				select {
				case l := <-p.lines:
					if rest, found := strings.CutPrefix(l, prefix); found && (ok == nil || ok(rest)) {
						return rest
					}
				default:
					break drain
				}
			}
			p.t.Fatalf("%s ended (%v) before printing %q; stderr:\n%s", p.name, p.cmd.ProcessState, prefix, p.stderr())
		case <-deadline.C:
			p.t.Fatalf("%s printed no %q within 60s; stderr:\n%s", p.name, prefix, p.stderr())
		}
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.stdin.Close()
	<-p.done
}

// exited waits for a normal end and fails on a non-zero status.
func (p *proc) exited() {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not end within 60s", p.name)
	}
	if !p.cmd.ProcessState.Success() {
		p.t.Fatalf("%s failed: %v; stderr:\n%s", p.name, p.cmd.ProcessState, p.stderr())
	}
}

// hqProc is an HQ child on a bolt file; restart keeps the file.
type hqProc struct {
	t      *testing.T
	db     string
	stores string
	p      *proc
	addr   string
}

func startHQ(t *testing.T, stores map[string]string) *hqProc {
	t.Helper()
	var kv []string
	for s, tok := range stores {
		kv = append(kv, s+"="+tok)
	}
	h := &hqProc{t: t, db: t.TempDir() + "/hq.db", stores: strings.Join(kv, ",")}
	h.start()
	return h
}

func (h *hqProc) start() {
	h.t.Helper()
	h.p = startProc(h.t, "hq", "hq", "POSAGENT_SYNCTEST_DB="+h.db, "POSAGENT_SYNCTEST_STORES="+h.stores)
	h.addr = h.p.waitLine("LISTEN ", nil)
}

func (h *hqProc) url() string { return "http://" + h.addr }

// restart kills HQ with SIGKILL (no chance to tidy up) and starts it again
// on the same file.
func (h *hqProc) restart() {
	h.t.Helper()
	h.p.kill()
	h.start()
}

// totals sums the fields that must match between stores and HQ.
type totals struct {
	Entries, Sales, TopUps   int
	SalesDue, Points, Stored int64
}

func (a *totals) add(e *entry.Entry) {
	a.Entries++
	a.Points += e.PointsDelta
	a.Stored += e.StoredValueDelta
	switch {
	case e.Sale != nil:
		a.Sales++
		a.SalesDue += e.Sale.Due
	case e.TopUp != nil:
		a.TopUps++
	}
}

// hqEntries pages HQ's export API (as HQ systems would) and fails on an
// entry seen twice.
func (h *hqProc) entries() map[string]entry.Entry {
	h.t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	out := map[string]entry.Entry{}
	cursor := ""
	for page := 0; page < 10000; page++ {
		req, _ := http.NewRequest(http.MethodGet, h.url()+wire.PathExport+"?limit=2000&cursor="+url.QueryEscape(cursor), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := hc.Do(req)
		if err != nil {
			h.t.Fatal(err)
		}
		var p wire.ExportPage
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			h.t.Fatalf("export: %d %v", resp.StatusCode, err)
		}
		for _, x := range p.Entries {
			id := x.Entry.ID()
			if _, dup := out[id]; dup {
				h.t.Fatalf("HQ exported %s twice", id)
			}
			out[id] = x.Entry
		}
		if !p.More {
			return out
		}
		cursor = p.Cursor
	}
	h.t.Fatal("export did not end")
	return nil
}

// assertSame checks that HQ holds exactly the stores' entries, each once
// and unchanged, and that the totals match.
func assertSame(t *testing.T, h *hqProc, stores ...[]entry.Entry) {
	t.Helper()
	got := h.entries()
	var want, have totals
	n := 0
	for _, es := range stores {
		for i := range es {
			e := &es[i]
			want.add(e)
			n++
			he, ok := got[e.ID()]
			if !ok {
				t.Fatalf("HQ lacks %s", e.ID())
			}
			if !reflect.DeepEqual(normal(t, he), normal(t, *e)) {
				t.Fatalf("HQ holds %s changed:\nHQ:    %+v\nstore: %+v", e.ID(), he, *e)
			}
		}
	}
	for _, e := range got {
		have.add(&e)
	}
	if len(got) != n {
		t.Fatalf("HQ holds %d entries, stores %d", len(got), n)
	}
	if have != want {
		t.Fatalf("totals differ:\nHQ:     %+v\nstores: %+v", have, want)
	}
	t.Logf("HQ = stores: %+v", have)
}

// normal is an entry as JSON-decoded data, so time zones and nil/empty
// slices compare by meaning.
func normal(t *testing.T, e entry.Entry) any {
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

func storeEntries(t *testing.T, ob *Outbox) []entry.Entry {
	t.Helper()
	es, err := ob.All()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// syncUntilDone calls SyncNow until it succeeds with nothing pending,
// with a generous overall deadline.
func syncUntilDone(t *testing.T, cl *client.Client) (failures int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		err := cl.SyncNow(ctx)
		if err == nil && cl.Status().Backlog == 0 {
			return failures
		}
		if err != nil {
			failures++
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
	}
	t.Fatalf("not synced within 60s after %d failures; last error: %s", failures, cl.Status().LastError)
	return 0
}
