package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
)

const full = `store: S001
till: T01
timezone: Asia/Shanghai
data_dir: data
token_key: 00112233445566778899aabbccddeeff
card:
  luhn: true
  min_length: 8
devices:
  - name: msr
    transport: serial
    path: /dev/ttyUSB0
    baud: 9600
    framer: {kind: terminator, terminator: CR, max_frame: 512}
    decoder: msr
    rule: {source: track2_pan}
    debounce: 300ms
  - name: qr
    till: T02
    transport: hid
    hid_report: pos
    vid: "0c2e"
    pid: "0b61"
    framer: {kind: idle_gap, gap: 40ms}
    decoder: barcode
    rule: {source: barcode_regex, regex: '^M(\d{10})$', group: 1}
hq:
  url: https://hq.example.com
  token: hq-secret-token-value
  batch_age: 5s
api:
  listen: 127.0.0.1:0
  token: api-secret-token-value
`

func TestLoadFull(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "posagent.yaml")
	require.NoError(t, os.WriteFile(p, []byte(full), 0o600))
	c, err := Load(p)
	require.NoError(t, err)
	require.Equal(t, "S001", c.Store)
	require.Equal(t, filepath.Join(dir, "data"), c.DataDir, "relative data_dir is beside the file")
	require.Len(t, c.Devices, 2)
	require.Equal(t, "T01", c.Devices[0].Till, "device till defaults to the agent's")
	require.Equal(t, "T02", c.Devices[1].Till)
	require.Equal(t, 8, c.Devices[0].DataBits)
	require.Equal(t, 300*time.Millisecond, c.Devices[0].Debounce)
	require.Equal(t, 40*time.Millisecond, c.Devices[1].Framer.Gap)
	require.Equal(t, 5*time.Second, c.HQ.BatchAge)
	require.Equal(t, 500, c.HQ.BatchMax)
	require.Equal(t, filepath.Join(dir, "data", "ledger.db"), c.LedgerPath())
	k, err := c.TokenKeyBytes()
	require.NoError(t, err)
	require.Len(t, k, 16)
}

func TestShowRedactsSecrets(t *testing.T) {
	c, err := Parse([]byte(full))
	require.NoError(t, err)
	out := c.String()
	for _, secret := range []string{"hq-secret-token-value", "api-secret-token-value", "00112233445566778899aabbccddeeff"} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "<redacted>")
	require.Contains(t, out, "S001")
	// What Show prints must load again (secrets aside), so it can be edited.
	back, err := Parse([]byte(strings.ReplaceAll(strings.ReplaceAll(out, "token_key: <redacted>", ""), "<redacted>", "xxxxxxxxxxxxxxxxxxxx")))
	require.NoError(t, err)
	require.Equal(t, c.Devices, back.Devices)
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct{ src, want string }{
		{"store: S1\nstroe: x\n", "stroe (line 2): unknown key"},
		{"devices:\n  - name: a\n    transport: serial\n    path: /dev/x\n    decoder: msr\n    rule: {source: track2_pan}\n    framer: {kindd: x}\n", "devices[0].framer.kindd (line 7): unknown key"},
		{"devices:\n  - name: a\n    transport: serial\n    path: /dev/x\n    baud: fast\n    decoder: msr\n    rule: {source: track2_pan}\n", "devices[0].baud (line 5)"},
		{"timezone: Mars/Base\n", "timezone (line 1): unknown time zone"},
		{"api:\n  listen: 0.0.0.0:8420\n", "api.listen (line 2)"},
		{"api:\n  listen: nonsense\n", "api.listen (line 2)"},
		{"hq:\n  url: ftp://x\n", "hq.url (line 2)"},
		{"hq:\n  url: https://x\n", "hq.token (line 1): HQ needs the store's credential"},
		{"devices:\n  - name: a\n    transport: usb\n", "devices[0].transport (line 3)"},
		{"devices:\n  - name: a\n    transport: hid\n    vid: '1'\n    pid: '2'\n", "devices[0].hid_report (line 2)"},
		{"devices:\n  - name: a\n    path: /dev/x\n    decoder: nope\n", "devices[0].decoder (line 4)"},
		{"devices:\n  - name: a\n    path: /dev/x\n    decoder: msr\n    framer: {kind: blob}\n", "devices[0].framer (line 5)"},
		{"devices:\n  - name: a\n    path: /dev/x\n    decoder: barcode\n    rule: {source: barcode_regex, regex: '('}\n", "devices[0].rule (line 5)"},
		{"devices:\n  - {name: a, transport: evdev, path: /dev/input/x, decoder: barcode, rule: {source: uid}}\n  - {name: a, transport: evdev, path: /dev/input/y, decoder: barcode, rule: {source: uid}}\n", "devices[1].name (line 3): \"a\" is already"},
		{"token_key: abc\n", "token_key (line 1)"},
		{"devices: 3\n", "devices (line 1): expected a list"},
		{"- a\n", "mapping"},
		{"store: [\n", "not valid YAML"},
		{"till: 'bad till'\n", "till (line 1)"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.src))
		require.Error(t, err, tc.src)
		require.Contains(t, err.Error(), tc.want, tc.src)
	}
}

func TestDefaultsAndAllowRemote(t *testing.T) {
	c, err := Parse(nil)
	require.NoError(t, err)
	require.Equal(t, DefaultListen, c.API.Listen)
	require.Equal(t, DefaultTimeZone, c.TimeZone)
	require.NoError(t, Default().Validate())
	c, err = Parse([]byte("api: {listen: '0.0.0.0:8420', allow_remote: true}\n"))
	require.NoError(t, err)
	require.True(t, c.API.AllowRemote)
	loc, err := c.Location()
	require.NoError(t, err)
	require.Equal(t, "Asia/Shanghai", loc.String())
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err, "a named file that is missing is an error")
}

func TestDefaultPathsPerOS(t *testing.T) {
	p, d := DefaultPath(), DefaultDataDir()
	require.True(t, filepath.IsAbs(p), p)
	require.True(t, filepath.IsAbs(d), d)
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		require.Equal(t, "/etc/posagent/posagent.yaml", p)
		require.Equal(t, "/var/lib/posagent", d)
	}
}

func TestGeneratedSecrets(t *testing.T) {
	c := Default()
	c.DataDir = filepath.Join(t.TempDir(), "d")
	k1, err := c.TokenKeyBytes()
	require.NoError(t, err)
	require.Len(t, k1, 32)
	k2, err := c.TokenKeyBytes()
	require.NoError(t, err)
	require.Equal(t, k1, k2, "the key is generated once and kept")
	st, err := os.Stat(filepath.Join(c.DataDir, "token.key"))
	require.NoError(t, err)
	if runtime.GOOS != "windows" {
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	}
	tok, err := c.APIToken()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(tok), 32)
	tok2, err := c.APIToken()
	require.NoError(t, err)
	require.Equal(t, tok, tok2)

	c.API.Token = "configured-token-123"
	tok, err = c.APIToken()
	require.NoError(t, err)
	require.Equal(t, "configured-token-123", tok)

	c.HQ.TokenFile = filepath.Join(t.TempDir(), "hq")
	require.NoError(t, os.WriteFile(c.HQ.TokenFile, []byte("hq-tok\n"), 0o600))
	h, err := c.HQToken()
	require.NoError(t, err)
	require.Equal(t, "hq-tok", h)
}

// The example in docs/agent.md must stay a valid config.
func TestDocExampleParses(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "agent.md"))
	if err != nil {
		t.Skipf("docs/agent.md not found: %v", err)
	}
	_, rest, ok := strings.Cut(string(doc), "### Example\n\n```yaml\n")
	require.True(t, ok, "docs/agent.md has an example block")
	src, _, _ := strings.Cut(rest, "```")
	c, err := Parse([]byte(src))
	require.NoError(t, err)
	require.Equal(t, "S001", c.Store)
	require.Len(t, c.Devices, 2)
	require.True(t, strings.HasSuffix(c.Devices[0].Rule.Source, "pan"))
}

func TestProgramsFromProgramFile(t *testing.T) {
	c := Default()
	ps, err := c.Programs()
	require.NoError(t, err)
	require.Nil(t, ps, "no program_file: the ledger keeps its default")

	dir := t.TempDir()
	c.Ledger.ProgramFile = filepath.Join(dir, "missing.yaml")
	_, err = c.Programs()
	require.ErrorContains(t, err, "ledger.program_file")

	src := strings.Replace(string(loyalty.DefaultProgramYAML()), "version: 1", "version: 7", 1)
	require.Contains(t, src, "version: 7", "the default program starts at version 1")
	c.Ledger.ProgramFile = filepath.Join(dir, "program.yaml")
	require.NoError(t, os.WriteFile(c.Ledger.ProgramFile, []byte(src), 0o600))
	ps, err = c.Programs()
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, 7, ps[0].Version)

	require.NoError(t, os.WriteFile(c.Ledger.ProgramFile, []byte("version: x\n"), 0o600))
	_, err = c.Programs()
	require.ErrorContains(t, err, c.Ledger.ProgramFile, "the error names the file")
}

func TestLocateSaysWhichFileAndWhy(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("POSAGENT_CONFIG", "")

	o := Locate("/x/flag.yaml")
	require.Equal(t, Origin{Path: "/x/flag.yaml", Why: "--config"}, o)

	t.Setenv("POSAGENT_CONFIG", "/x/env.yaml")
	require.Equal(t, Origin{Path: "/x/env.yaml", Why: "$POSAGENT_CONFIG"}, Locate(""))
	require.Equal(t, "--config", Locate("/x/flag.yaml").Why, "the flag wins over the environment")
	t.Setenv("POSAGENT_CONFIG", "")

	// Nothing under XDG_CONFIG_HOME: built-in defaults, naming the file looked for.
	o = Locate("")
	require.Empty(t, o.Path)
	require.Contains(t, o.Why, "built-in defaults")
	require.Contains(t, o.Why, o.LookedFor)

	// A file under an explicit XDG_CONFIG_HOME is used, as root too.
	p := filepath.Join(xdg, "posagent", FileName)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("store: s1\n"), 0o600))
	o = Locate("")
	require.Equal(t, p, o.Path)
	require.Contains(t, o.Why, "XDG_CONFIG_HOME")
}

// hq.member_refresh_timeout: unset is the default, 0 turns the refresh
// off (and stays 0), and it is bounded like the claim timeout.
func TestMemberRefreshTimeout(t *testing.T) {
	const hq = "hq:\n  url: https://hq.example.com\n  token: hq-secret-token-value\n"
	c, err := Parse([]byte(hq))
	require.NoError(t, err)
	require.Equal(t, DefaultMemberRefreshTimeout, c.HQ.RefreshTimeout())
	require.Contains(t, c.String(), "member_refresh_timeout: 800ms")
	require.Equal(t, DefaultMemberRefreshTimeout, Default().HQ.RefreshTimeout())
	require.Equal(t, DefaultMemberRefreshTimeout, HQ{}.RefreshTimeout())

	c, err = Parse([]byte(hq + "  member_refresh_timeout: 0s\n"))
	require.NoError(t, err)
	require.Zero(t, c.HQ.RefreshTimeout(), "0 is off, not the default")
	back, err := Parse([]byte(strings.ReplaceAll(c.String(), "<redacted>", "xxxxxxxxxxxxxxxxxxxx")))
	require.NoError(t, err)
	require.Zero(t, back.HQ.RefreshTimeout(), "show prints the refresh off")

	c, err = Parse([]byte(hq + "  member_refresh_timeout: 1500ms\n"))
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, c.HQ.RefreshTimeout())

	for _, bad := range []string{"-1s", "11s"} {
		_, err = Parse([]byte(hq + "  member_refresh_timeout: " + bad + "\n"))
		require.ErrorContains(t, err, "hq.member_refresh_timeout (line 4): must be 0 (no refresh) to 10s", bad)
	}
	_, err = Parse([]byte(hq + "  member_refresh_timeout: soon\n"))
	require.ErrorContains(t, err, "hq.member_refresh_timeout (line 4)")
}
