package main

import (
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"posagent/agent/api"
	"posagent/agent/events"
	"posagent/ledger"
)

const testToken = "cli-test-token-0123456789"

// apiAgent serves the real API over a real ledger in a temp dir, so the
// CLI commands are tested against the answers they will really get.
func apiAgent(t *testing.T) string {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"), ledger.Options{Store: "s1", Till: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Ledger: l, Hub: events.NewHub(16), Store: "s1", Till: "t1",
		TokenKey: []byte("0123456789abcdef"), APIToken: testToken, DataDir: t.TempDir(), Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestCLIAgainstTheAPI(t *testing.T) {
	url := apiAgent(t)
	cli := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append(args, "--api", url, "--token", testToken)...)
		if code != 0 {
			t.Fatalf("posagent %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	out := cli("member", "enrol", "--name", "Zhang San", "--mobile", "13812341234", "--card", "6222021234567890123", "--id", "E1", "--json")
	var enrolled api.EnrolResponse
	if err := json.Unmarshal([]byte(out), &enrolled); err != nil {
		t.Fatalf("enrol --json: %v\n%s", err, out)
	}
	id := enrolled.Member.Member.ID
	if id == "" || len(enrolled.Member.Coupons) == 0 {
		t.Fatalf("enrolled member without id or welcome coupon: %s", out)
	}

	out = cli("member", "lookup", "--card", "6222021234567890123")
	t.Logf("lookup:\n%s", out)
	for _, want := range []string{"Member " + id, "Zhang San", "stored value  ¥0.00", "138****1234"} {
		if !strings.Contains(out, want) {
			t.Errorf("lookup output lacks %q:\n%s", want, out)
		}
	}

	out = cli("quote", "--member", id, "--line", "A1:2:12.50", "--line", "B2:1:30.00:nd")
	t.Logf("quote:\n%s", out)
	if !strings.Contains(out, "DUE ¥") || !strings.Contains(out, "A1") || !strings.Contains(out, "points earned") {
		t.Errorf("quote output:\n%s", out)
	}

	out = cli("sale", "--receipt", "R1", "--member", id, "--line", "A1:2:12.50", "--line", "B2:1:30.00:nd")
	if !strings.Contains(out, "sale R1") || !strings.Contains(out, "DUE ¥") {
		t.Errorf("sale output:\n%s", out)
	}
	// The same receipt again is the same sale; another basket under it is refused.
	if again := cli("sale", "--receipt", "R1", "--member", id, "--line", "A1:2:12.50", "--line", "B2:1:30.00:nd"); again != out {
		t.Errorf("resending the sale printed\n%s\nwant\n%s", again, out)
	}
	code, _, errOut := runCLI(t, "sale", "--receipt", "R1", "--member", id, "--line", "A1:1:1.00", "--api", url, "--token", testToken)
	if code == 0 || !strings.Contains(errOut, "conflict") {
		t.Errorf("a different sale under the same receipt: exit %d %s", code, errOut)
	}

	out = cli("refund", "--receipt", "R1", "--id", "RF1", "--line", "1:1")
	if !strings.Contains(out, "refund of receipt R1") {
		t.Errorf("refund output:\n%s", out)
	}
	out = cli("topup", "--member", id, "--amount", "100.00", "--id", "TU1")
	if !strings.Contains(out, "top-up ¥100.00") {
		t.Errorf("topup output:\n%s", out)
	}
	out = cli("sale", "--receipt", "R2", "--member", id, "--line", "C3:1:5.00")
	if !strings.Contains(out, "sale R2") {
		t.Errorf("sale R2:\n%s", out)
	}
	out = cli("void", "--receipt", "R2", "--reason", "test")
	if !strings.Contains(out, "void of receipt R2") {
		t.Errorf("void output:\n%s", out)
	}
	out = cli("sync", "status")
	if !strings.Contains(out, "backlog") {
		t.Errorf("sync status output:\n%s", out)
	}
	code, _, errOut = runCLI(t, "sync", "now", "--api", url, "--token", testToken)
	if code == 0 || !strings.Contains(errOut, "no HQ") && !strings.Contains(errOut, "hq.url") {
		t.Errorf("sync now without HQ: exit %d %s", code, errOut)
	}

	// A wrong token is refused with advice.
	code, _, errOut = runCLI(t, "member", "lookup", "--id", id, "--api", url, "--token", "wrong-token-0123456789")
	if code == 0 || !strings.Contains(errOut, "unauthorized") {
		t.Errorf("wrong token: exit %d %s", code, errOut)
	}
	// Bad input never reaches the agent.
	code, _, errOut = runCLI(t, "sale", "--member", id, "--line", "A1:2:12.50", "--api", url)
	if code == 0 || !strings.Contains(errOut, "--receipt") {
		t.Errorf("sale without receipt: exit %d %s", code, errOut)
	}
}
