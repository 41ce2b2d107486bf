package hq_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
)

// phone starts headless Chromium as a 390×844 phone (mobile emulation,
// touch), or skips when Chromium is not installed.
func phone(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if p := os.Getenv("POSAGENT_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("enrolment page test skipped: Chromium not found at %s (apt-get install chromium, or set POSAGENT_CHROMIUM)", path)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	require.NoError(t, chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)),
		"starting Chromium")
	return ctx
}

// pageHas waits until the element's text contains want, across page
// loads (a form post navigates; an evaluation during it fails and is
// tried again).
func pageHas(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		expr := `(() => { const e = document.querySelector(` + jsStr(sel) + `);
			return !!e && e.textContent.includes(` + jsStr(want) + `); })()`
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = fmt.Sprint(err)
			time.Sleep(50 * time.Millisecond)
		}
		body, _ := chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)(ctx, tg)
		return fmt.Errorf("%s never contained %q (last error %s); page: %s", sel, want, last, body)
	})
}

func jsStr(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

// screenshotQR reads the member code the page draws in #qr, from a
// screenshot, with a real decoder. A screenshot taken while the page
// swaps in a fresh code may not decode: it is taken again.
func screenshotQR(t *testing.T, ctx context.Context) string {
	var err error
	for range 5 {
		var png []byte
		if png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`#qr svg`))); err != nil {
			break
		}
		var text string
		if text, err = hqtest.DecodeQR(png); err == nil {
			return text
		}
		t.Logf("the member code's QR did not decode (%v); taking the screenshot again", err)
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err, "reading the member code's QR from the page")
	return ""
}

// TestEnrolmentOnAPhone walks self-enrolment in Chromium as a phone: the
// store's QR link, the form in Chinese, a gateway failure and the retry,
// the code from the fake gateway, the card page with tier, points and the
// welcome coupon, and the member code decoded from the page's own drawing
// equal to the code HQ issues. Then the same mobile in English reaches
// the same member's card.
func TestEnrolmentOnAPhone(t *testing.T) {
	e := newEnrolEnv(t, nil)
	ctx := phone(t)
	const mob = "13812345678"
	qr := e.qr(hq.EnrolLink{Store: "S001", Cashier: "C07"})
	fill := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.WaitVisible(chromedp.CSS(`#mobile`)),
			chromedp.SetValue(chromedp.CSS(`#mobile`), mob),
			chromedp.SetValue(chromedp.CSS(`#name`), name),
			chromedp.SetValue(chromedp.CSS(`#birthday`), "1992-03-08"),
		)
	}
	e.sms.set("fail")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(qr),
		pageHas(`header h1`, "加入会员"),
		fill("陈小明"),
		// Without consent the browser itself refuses; the server too.
		chromedp.Click(chromedp.CSS(`#consent`)),
		chromedp.Click(chromedp.CSS(`#send`)),
		pageHas(`#error`, "短信发送失败"),
	))
	// The form came back filled in, consent ticked; the customer retries.
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('mobile').value + '|' + document.getElementById('name').value + '|' + document.getElementById('consent').checked`))
	require.NoError(t, err)
	require.Equal(t, mob+"|陈小明|true", kept)
	e.sms.set("")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#send`)),
		pageHas(`header h1`, "输入验证码"),
	))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#code`), e.sms.code(mob)),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		pageHas(`header h1`, "我的会员卡"),
		pageHas(`#tier`, "银卡"),
		pageHas(`#points`, "0"),
		pageHas(`#coupons`, "减 ¥10.00"),
		pageHas(`#member-name`, "陈小明"),
		chromedp.WaitVisible(chromedp.CSS(`#qr svg`)),
	))
	member := e.memberOf(mob)
	// The page's own drawing, decoded, is the code HQ issues for the
	// member now (the same within one step: the signature is
	// deterministic); a step boundary between the two is retried.
	var got, want string
	for range 3 {
		got = screenshotQR(t, ctx)
		c, err := e.srv.IssueMemberCode(context.Background(), member)
		require.NoError(t, err)
		if want = c.Text; got == want {
			short, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#short`)))
			require.NoError(t, err)
			require.Equal(t, c.Short, strings.TrimSpace(short))
			break
		}
	}
	require.Equal(t, want, got)

	// Same mobile, English: the same member's card, no second member.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(qr+"&lang=en"),
		pageHas(`header h1`, "Join as a member"),
		fill("Chen Xiaoming"),
		chromedp.Click(chromedp.CSS(`#consent`)),
		chromedp.Click(chromedp.CSS(`#send`)),
		pageHas(`header h1`, "Enter the code"),
	))
	require.Equal(t, 2, e.sms.sent(mob))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#code`), e.sms.code(mob)),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		pageHas(`header h1`, "My member card"),
		pageHas(`#member-name`, "陈小明"),
		pageHas(`#tier`, "Silver"),
		pageHas(`#coupons`, "¥10.00 off"),
	))
	require.Equal(t, member, e.memberOf(mob))
}
