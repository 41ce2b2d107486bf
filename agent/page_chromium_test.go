//go:build linux

package agent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/devices/token"
	"posagent/ledger/entry"
	"posagent/ledger/pin"
	"posagent/ledger/staff"
)

// addCashier gives the running agent's till a cashier account.
func addCashier(t *testing.T, rn *running, id, role, p string) {
	t.Helper()
	h, err := pin.Hash(p)
	require.NoError(t, err)
	require.NoError(t, rn.a.led.PutCashier(context.Background(), staff.Cashier{ID: id, Name: "Cashier " + id, Role: role, PINHash: h}))
}

// keys types digits on the on-screen keypad of form ("signin" or
// "supervisor"), as a finger on a touch till does.
func keys(form, digits string) chromedp.Action[chromedp.Void] {
	var acts []chromedp.Action[chromedp.Void]
	for _, d := range digits {
		acts = append(acts, chromedp.Click(chromedp.CSS(`.keypad[data-for=`+form+`] button[data-key="`+string(d)+`"]`)))
	}
	return chromedp.Steps(acts...)
}

// setField sets a form field's value as a script would (SetValue sets the
// attribute, which a field the user already typed in ignores).
func setField(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { const e = document.querySelector(`+jsString(sel)+`); e.value = `+jsString(v)+`; return true; })()`)(ctx, tg)
		return err
	})
}

// signIn signs a cashier in at the page: the id typed, the PIN on the keypad.
func signIn(id, p string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(`#signin-id`)),
		// An earlier answer's text must not pass for this one's.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => { document.getElementById('signin-error').textContent = ''; return true; })()`)(ctx, tg)
			return err
		}),
		setField(`#signin-id`, ""),
		chromedp.SendKeys(chromedp.CSS(`#signin-id`), id),
		chromedp.Click(chromedp.CSS(`#signin-pin`)),
		keys("signin", p),
		chromedp.Click(chromedp.CSS(`#signin-go`)),
	)
}

const chromium = "/usr/bin/chromium"

// browser starts headless Chromium for one test, or skips when it is not
// installed (CI installs Debian's chromium package).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromium
	if p := os.Getenv("POSAGENT_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("cashier page test skipped: Chromium not found at %s (apt-get install chromium, or set POSAGENT_CHROMIUM)", path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	// Generous: a loaded CI machine starts Chromium slowly.
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	require.NoError(t, chromedp.Do(ctx), "starting Chromium")
	return ctx
}

// textIs waits until the element's text is want.
func textIs(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`(() => { const e = document.querySelector(`+jsString(sel)+`);
			return !!e && !e.closest('[hidden]') && e.textContent.trim() === `+jsString(want)+`; })()`,
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
		return err
	})
}

// textHas waits until the element's text contains want.
func textHas(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`(() => { const e = document.querySelector(`+jsString(sel)+`);
			return !!e && !e.hidden && e.textContent.includes(`+jsString(want)+`); })()`,
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
		return err
	})
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

func TestCashierPageInChromium(t *testing.T) {
	ctx := browser(t)
	r := newReader(t)
	rn := start(t, r)
	var en api.EnrolResponse
	rn.post(t, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "mobile": "13800001111", "card": pan}, &en)
	rn.waitOnline(t)
	addCashier(t, rn, "c1", staff.RoleCashier, "2468")

	// Open the page in English, sign in; wait for the live stream to connect.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(rn.base+"/?lang=en&till=T1"),
		signIn("c1", "2468"),
		chromedp.WaitReady(chromedp.CSS(`#stream.on`)),
		textHas(`#devices`, "msr1: online"),
		textHas(`#who-name`, "c1"),
	))

	// A swipe on the reader makes the member appear.
	r.write(t, swipe)
	require.NoError(t, chromedp.Do(ctx,
		textIs(`#member-name`, "张三"),
		textIs(`#member-id`, en.Member.Member.ID),
		textIs(`#member-mobile`, "138****1111"),
		textHas(`#member-coupons`, "¥10.00"),
		textIs(`#member-state`, "active"),
	))

	// The stripe will not read: the cashier types the number instead.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#member-clear`)),
		chromedp.WaitVisible(chromedp.CSS(`#member-empty`)),
		chromedp.SendKeys(chromedp.CSS(`#card-input`), pan[:6]+" "+pan[6:]),
		chromedp.Click(chromedp.CSS(`#card-lookup`)),
		textIs(`#member-name`, "张三"),
	))

	// A wrong number says so, in words a cashier understands.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#card-input`), "6222000000000000"),
		chromedp.Click(chromedp.CSS(`#card-lookup`)),
		textHas(`#message`, "no member"),
	))

	// Redeem points on a quote: 2 × ¥50.00 for a silver member.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#lines tbody tr:first-child .l-sku`), "A1"),
		chromedp.SetValue(chromedp.CSS(`#lines tbody tr:first-child .l-qty`), "2"),
		chromedp.SendKeys(chromedp.CSS(`#lines tbody tr:first-child .l-price`), "50.00"),
		chromedp.Click(chromedp.CSS(`#quote-go`)),
		textIs(`#q-gross`, "¥100.00"),
		textIs(`#q-discount`, "¥5.00"),
		textIs(`#q-due`, "¥95.00"),
	))

	// An unknown card is swiped: enrol the customer with it from the page.
	r.write(t, swipe2)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`#unknown-card`)),
		chromedp.Click(chromedp.CSS(`#enrol-this-card`)),
		chromedp.WaitVisible(chromedp.CSS(`#enrol-card-swiped`)),
		chromedp.SendKeys(chromedp.CSS(`#enrol-name`), "李四"),
		chromedp.SendKeys(chromedp.CSS(`#enrol-mobile`), "13900002222"),
		chromedp.Click(chromedp.CSS(`#enrol-go`)),
		textHas(`#message`, "Enrolled"),
		textIs(`#member-name`, "李四"),
	))
	key := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	v, err := rn.a.led.MemberByToken(token.Hash(key, pan2))
	require.NoError(t, err, "the swiped card belongs to the new member")
	require.Equal(t, "李四", v.Member.Name)

	// Enrol with a typed card number, then the swipe finds them; Chinese text.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#lang`)),
		textIs(`#enrol-go`, "入会"),
		chromedp.SendKeys(chromedp.CSS(`#enrol-name`), "王五"),
		chromedp.SendKeys(chromedp.CSS(`#enrol-card`), "8800123"),
		chromedp.Click(chromedp.CSS(`#enrol-go`)),
		textHas(`#message`, "入会成功"),
		textIs(`#member-name`, "王五"),
		textIs(`#member-tier`, "银卡"),
	))
	v, err = rn.a.led.MemberByToken(token.Hash(key, "8800123"))
	require.NoError(t, err)
	require.Equal(t, "王五", v.Member.Name)

	// Every write through the page names the signed-in cashier.
	es, err := rn.a.led.Pending("T1", 0, 100)
	require.NoError(t, err)
	pageWrites := 0
	for _, e := range es {
		if e.Kind == entry.KindEnrol && e.Key != "E1" {
			require.Equal(t, "c1", e.Cashier, "entry %s", e.ID())
			pageWrites++
		}
	}
	require.Equal(t, 2, pageWrites)

	// POSAGENT_SCREENSHOT=page.png keeps a picture of the page for a look.
	if out := os.Getenv("POSAGENT_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(out, png, 0o644))
	}
}
