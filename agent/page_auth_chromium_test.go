//go:build linux

package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/ledger/entry"
	"posagent/ledger/staff"
)

// TestPageSignInLockoutSupervisorIdleInChromium walks the cashier's side of
// accounts: wrong PINs and the lock they earn, a top-up over the limit that
// asks a supervisor at that moment, and the sign-in that idle time brings
// back.
func TestPageSignInLockoutSupervisorIdleInChromium(t *testing.T) {
	ctx := browser(t)
	rn := startWith(t, func(c *config.Config) {
		c.Cashiers.AllowPOSWithoutCashier = false
		c.Cashiers.MaxPINTries = 3
		c.Cashiers.Lockout = time.Hour
		// Long enough for the steps before the idle wait on a loaded machine.
		c.Cashiers.IdleTimeout = 15 * time.Second
	})
	addCashier(t, rn, "c1", staff.RoleCashier, "1357")
	addCashier(t, rn, "c2", staff.RoleCashier, "2468")
	addCashier(t, rn, "s1", staff.RoleSupervisor, "9753")
	var en api.EnrolResponse
	rn.post(t, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "cashier": "c2"}, &en)
	member := en.Member.Member.ID

	// Wrong PINs count down, then lock; the right PIN does not open a lock.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(rn.base+"/?lang=en"),
		chromedp.WaitVisible(chromedp.CSS(`#signin`)),
		signIn("c1", "0000"),
		textHas(`#signin-error`, "wrong PIN for cashier c1; 2 tries left"),
		signIn("c1", "1111"),
		textHas(`#signin-error`, "1 tries left"),
		signIn("c1", "2222"),
		textHas(`#signin-error`, "cashier c1 is locked"),
		signIn("c1", "1357"),
		textHas(`#signin-error`, "cashier c1 is locked"),
	))
	// Signed out, the till's panels and the sign-out button are not drawn
	// (the hidden attribute alone is not enough: a display rule beats it).
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`['app', 'who'].some((id) => document.getElementById(id).getClientRects().length > 0)`))
	require.NoError(t, err)
	require.False(t, drawn, "a signed-out page draws no till panel and no sign-out button")
	lo, err := rn.a.led.CashierLockout("c1")
	require.NoError(t, err)
	require.True(t, lo.Locked(time.Now()), "the lock is in the ledger, so a restart keeps it")

	// Another cashier signs in; every control is big enough for a finger.
	require.NoError(t, chromedp.Do(ctx,
		signIn("c2", "2468"),
		chromedp.WaitVisible(chromedp.CSS(`#app`)),
		textHas(`#who-name`, "c2"),
	))
	small, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('button, input:not([type=hidden]), select')]
		.filter((e) => e.offsetParent !== null)
		.filter((e) => { const r = e.getBoundingClientRect(); return r.height < 44 || r.width < 44; })
		.map((e) => e.id || e.outerHTML.slice(0, 60))`))
	require.NoError(t, err)
	require.Empty(t, small, "controls under 44 px")

	// A top-up over the limit (¥1000) asks for a supervisor; a wrong PIN is
	// said in the dialog, the right one sends it.
	require.NoError(t, chromedp.Do(ctx,
		setField(`#lookup-by`, "member_id"),
		chromedp.SendKeys(chromedp.CSS(`#card-input`), member),
		chromedp.Click(chromedp.CSS(`#card-lookup`)),
		textIs(`#member-name`, "张三"),
		chromedp.SendKeys(chromedp.CSS(`#topup-amount`), "1500.00"),
		chromedp.Click(chromedp.CSS(`#topup-go`)),
		chromedp.WaitVisible(chromedp.CSS(`#supervisor`)),
		textHas(`#supervisor-why`, "supervisor must approve"),
		chromedp.SendKeys(chromedp.CSS(`#supervisor-id`), "s1"),
		chromedp.Click(chromedp.CSS(`#supervisor-pin`)),
		keys("supervisor", "1111"),
		chromedp.Click(chromedp.CSS(`#supervisor-go`)),
		textHas(`#supervisor-error`, "wrong PIN for supervisor s1"),
		chromedp.Click(chromedp.CSS(`#supervisor-pin`)),
		keys("supervisor", "9753"),
		chromedp.Click(chromedp.CSS(`#supervisor-go`)),
		textHas(`#message`, "Topped up: ¥1500.00"),
		textIs(`#member-stored`, "¥1500.00"),
	))
	es, err := rn.a.led.Pending("T1", 0, 100)
	require.NoError(t, err)
	var top *entry.Entry
	for i := range es {
		if es[i].Kind == entry.KindTopUp {
			top = &es[i]
		}
	}
	require.NotNil(t, top)
	require.Equal(t, "c2", top.Cashier)
	require.Equal(t, "s1", top.Approver)

	// Left alone, the page signs itself out; the session is gone at the
	// agent too (the stream drops).
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#signin`)),
		textHas(`#signin-error`, "Signed out after a while"),
		chromedp.WaitReady(chromedp.CSS(`#stream.off`)),
	))
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('app').getClientRects().length === 0 && document.getElementById('member').hidden`))
	require.NoError(t, err)
	require.True(t, hidden, "no member data stays on screen")
	code, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/v1/status').then((r) => r.status)`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, 401, code)
}

// TestOtherLocalUserGetsNoWrite runs a client as user nobody on the till
// while a cashier is signed in at the page: the page and the API give it
// nothing that authorises a write, and it cannot read the API token.
func TestOtherLocalUserGetsNoWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("needs curl")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	ctx := browser(t)
	rn := startWith(t, func(c *config.Config) {
		c.Cashiers.AllowPOSWithoutCashier = false
		c.API.Token = "" // generated into data_dir/api.token, 0600, as on an install
	})
	addCashier(t, rn, "c1", staff.RoleCashier, "2468")
	var en api.EnrolResponse
	raw, _ := json.Marshal(map[string]any{"enrol_id": "E1", "name": "张三", "cashier": "c1"})
	req, _ := http.NewRequest("POST", rn.base+"/v1/members", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+readToken(t, rn))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.NoError(t, json.Unmarshal(b, &en))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(rn.base+"/?lang=en"),
		signIn("c1", "2468"),
		chromedp.WaitReady(chromedp.CSS(`#stream.on`)),
	))

	asNobody := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
		var out bytes.Buffer
		cmd.Stdout = &out
		require.NoError(t, cmd.Run())
		body, code := out.String(), ""
		if i := strings.LastIndex(body, "\n"); i >= 0 {
			body, code = body[:i], body[i+1:]
		}
		n, _ := strconv.Atoi(strings.TrimSpace(code))
		return body, n
	}
	page, code := asNobody(rn.base + "/")
	require.Equal(t, 200, code)
	for _, asset := range []string{"/static/app.js", "/static/app.css"} {
		b, code := asNobody(rn.base + asset)
		require.Equal(t, 200, code)
		page += b
	}
	tok := readToken(t, rn)
	require.NotContains(t, page, tok, "the page holds the API token")
	require.NotContains(t, page, "posagent-token")

	// Whatever it takes from the page, the API refuses it.
	topup := `{"topup_id":"evil-1","member_id":"` + en.Member.Member.ID + `","amount":100000}`
	_, code = asNobody("-X", "POST", "-H", "Content-Type: application/json", "-d", topup, rn.base+"/v1/topups")
	require.Equal(t, 401, code)
	_, code = asNobody(rn.base + "/v1/session")
	require.Equal(t, 401, code, "the signed-in page's session is not the other user's")
	_, code = asNobody("-X", "POST", "-H", "Content-Type: application/json", "-d", `{"cashier":"c1","pin":"0000"}`, rn.base+"/v1/session")
	require.Equal(t, 403, code, "guessing PINs only counts towards the lock")
	// Nor can it read the token from the data directory.
	fi, err := os.Stat(filepath.Join(rn.a.cfg.DataDir, "api.token"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	cat := exec.Command("cat", filepath.Join(rn.a.cfg.DataDir, "api.token"))
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cat.CombinedOutput()
	require.Error(t, err, "nobody read the API token: %s", out)
	require.NotContains(t, string(out), tok)

	es, err := rn.a.led.Pending("T1", 0, 100)
	require.NoError(t, err)
	for _, e := range es {
		require.NotEqual(t, entry.KindTopUp, e.Kind, "a top-up got through")
	}
}

func readToken(t *testing.T, rn *running) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rn.a.cfg.DataDir, "api.token"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}
