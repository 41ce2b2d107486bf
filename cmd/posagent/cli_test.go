package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"posagent/agent/config"
)

// runCLI runs the command in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestFen(t *testing.T) {
	for n, want := range map[int64]string{0: "¥0.00", 5: "¥0.05", 1250: "¥12.50", -1250: "-¥12.50", 100000000: "¥1000000.00"} {
		if got := fen(n); got != want {
			t.Errorf("fen(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseLine(t *testing.T) {
	l, err := parseLine("6901234567890:2:12.50")
	if err != nil || l.SKU != "6901234567890" || l.Qty != 2 || l.UnitPrice != 1250 || l.Discountable != nil || l.EarnsPoints != nil {
		t.Fatalf("got %+v, %v", l, err)
	}
	l, err = parseLine("A1:1:30:nd:ne")
	if err != nil || l.UnitPrice != 3000 || l.Discountable == nil || *l.Discountable || l.EarnsPoints == nil || *l.EarnsPoints {
		t.Fatalf("got %+v, %v", l, err)
	}
	for _, bad := range []string{"A1", "A1:0:100", "A1:x:100", ":1:100", "A1:1:1.234", "A1:1:-5", "A1:1:100:free"} {
		if _, err := parseLine(bad); err == nil {
			t.Errorf("parseLine(%q): want an error", bad)
		}
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:8420": "127.0.0.1:8420", "[::]:1": "127.0.0.1:1", ":8420": "127.0.0.1:8420", "127.0.0.1:9": "127.0.0.1:9"} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeAPIError(t *testing.T) {
	e := decodeAPIError(409, []byte(`{"code":"conflict","message":"this id was already used"}`))
	if e.Code != "conflict" || !strings.Contains(e.Error(), "already used") {
		t.Errorf("flat: %+v", e)
	}
	e = decodeAPIError(502, []byte("bad gateway"))
	if !strings.Contains(e.Error(), "502") || !strings.Contains(e.Error(), "bad gateway") {
		t.Errorf("text: %+v", e)
	}
}

func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	root := newRoot(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Parent() != nil && c.Parent().Name() == "completion" || c.Name() == "completion" {
			return
		}
		if c.Short == "" {
			t.Errorf("%q has no short help", c.CommandPath())
		}
		if c.Example == "" {
			t.Errorf("%q has no example", c.CommandPath())
		}
		// Mounted groups are called through posagent; an example written
		// for a standalone binary ("hq serve …") would not run as shown.
		for _, l := range strings.Split(c.Example, "\n") {
			first, _, _ := strings.Cut(strings.TrimSpace(l), " ")
			if first == "hq" || first == "ledger" || first == "devices" {
				t.Errorf("%q: example %q does not call posagent", c.CommandPath(), strings.TrimSpace(l))
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "posagent ") || !strings.Contains(out, "go1.") {
		t.Fatalf("code %d out %q", code, out)
	}
	code, out, _ = runCLI(t, "version", "--json")
	if code != 0 || !strings.Contains(out, `"platform"`) {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestConfigInitParsesAndValidates(t *testing.T) {
	if _, err := config.Parse(defaultConfigYAML); err != nil {
		t.Fatalf("the default config does not parse: %v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "posagent.yaml")
	if code, _, errOut := runCLI(t, "config", "init", "--output", p); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	if code, _, errOut := runCLI(t, "config", "init", "--output", p); code == 0 || !strings.Contains(errOut, "--force") {
		t.Fatalf("init over an existing file must refuse: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "config", "validate", "--config", p)
	if code != 0 || !strings.Contains(out, "ok: "+p) {
		t.Fatalf("validate: %d %s %s", code, out, errOut)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("store: s1\napi:\n  listen: 10.0.0.5:8420\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "config", "validate", "--config", p)
	if code == 0 || !strings.Contains(errOut, "api.listen") || !strings.Contains(errOut, "line 3") {
		t.Fatalf("want an error naming api.listen on line 3, got %d %q", code, errOut)
	}
}

func TestConfigShowRedactsSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("api:\n  token: supersecretsupersecret\ndata_dir: "+t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "config", "show", "--config", p)
	if code != 0 || strings.Contains(out, "supersecret") || !strings.Contains(out, "<redacted>") {
		t.Fatalf("show: %d %s %s", code, out, errOut)
	}
}

func TestServiceInstallIntoRoot(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "posagent")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "service", "install", "--root", root, "--binary", bin)
	if code != 0 {
		t.Fatalf("install: %s %s", out, errOut)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/posagent.service"))
	if err != nil || !strings.Contains(string(unit), "Type=notify") {
		t.Fatalf("unit: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "etc/posagent/posagent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(cfg); err != nil {
		t.Fatalf("installed config does not parse: %v", err)
	}
	if code, out, errOut := runCLI(t, "service", "uninstall", "--root", root); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("uninstall: %s %s", out, errOut)
	}
}

func TestAgentNotRunningSaysHowToStartIt(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	code, _, errOut := runCLI(t, "member", "lookup", "--id", "M1", "--api", "http://"+addr, "--token", "0123456789abcdef0123")
	if code == 0 || !strings.Contains(errOut, "posagent run") || !strings.Contains(errOut, "posagent service start") {
		t.Fatalf("want advice to start the agent, got %d %q", code, errOut)
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := runCLI(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "posagent") {
			t.Errorf("completion %s: %d %s", sh, code, errOut)
		}
	}
}

func TestServiceInstallGivenConfig(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "posagent")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(t.TempDir(), "store42.yaml")
	const given = "# store 42\nstore: s42\ntill: t7\ndevices:\n  - name: msr1\n    transport: hid\n    hid_report: msr\n    vid: \"0801\"\n    pid: \"0002\"\n    serial: B0A1\n    decoder: msr\n"
	if err := os.WriteFile(mine, []byte(given), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "service", "install", "--root", root, "--binary", bin, "--config", mine)
	if code != 0 {
		t.Fatalf("install: %s %s", out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/posagent/posagent.yaml")); err != nil || string(b) != given {
		t.Fatalf("installed config %q %v, want the given file", b, err)
	}
	rules, err := os.ReadFile(filepath.Join(root, "etc/udev/rules.d/99-posagent-readers.rules"))
	if err != nil || !strings.Contains(string(rules), `SUBSYSTEM=="hidraw", ATTRS{idVendor}=="0801", ATTRS{idProduct}=="0002", ATTRS{serial}=="B0A1", GROUP="posagent", MODE="0660"`) {
		t.Fatalf("reader rules %v:\n%s", err, rules)
	}
	if code, out, errOut := runCLI(t, "service", "uninstall", "--root", root); code != 0 {
		t.Fatalf("uninstall: %s %s", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/udev/rules.d/99-posagent-readers.rules")); !os.IsNotExist(err) {
		t.Errorf("uninstall left the reader rules: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("store: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "service", "install", "--root", t.TempDir(), "--binary", bin, "--config", bad); code == 0 || !strings.Contains(errOut, "invalid config") {
		t.Fatalf("an invalid config was installed: %d %s", code, errOut)
	}
}

func TestRunFirstLogLineNamesTheConfig(t *testing.T) {
	// An unparsable config makes run stop right after the first line.
	bad := filepath.Join(t.TempDir(), "till.yaml")
	if err := os.WriteFile(bad, []byte("store: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first := func(errOut string) string { return strings.SplitN(errOut, "\n", 2)[0] }

	t.Setenv("POSAGENT_CONFIG", "")
	code, _, errOut := runCLI(t, "run", "--config", bad)
	if code == 0 || !strings.Contains(first(errOut), "file="+bad) || !strings.Contains(first(errOut), "why=--config") {
		t.Fatalf("flag: %d, first line %q", code, first(errOut))
	}
	t.Setenv("POSAGENT_CONFIG", bad)
	code, _, errOut = runCLI(t, "run")
	if code == 0 || !strings.Contains(first(errOut), "file="+bad) || !strings.Contains(first(errOut), "why=$POSAGENT_CONFIG") {
		t.Fatalf("env: %d, first line %q", code, first(errOut))
	}
	t.Setenv("POSAGENT_CONFIG", "")
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	p := filepath.Join(xdg, "posagent", "posagent.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("store: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "run")
	if code == 0 || !strings.Contains(first(errOut), "file="+p) || !strings.Contains(first(errOut), "XDG_CONFIG_HOME") {
		t.Fatalf("XDG (as uid %d): %d, first line %q", os.Geteuid(), code, first(errOut))
	}
}
