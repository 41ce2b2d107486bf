//go:build linux

package agent

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/ledger/staff"
	"posagent/sync/membercode"
)

// The cashier page says a payment code was read, in its own words (zh/en),
// and never shows or receives its digits.
func TestCashierPagePaymentCodeMessage(t *testing.T) {
	ctx := browser(t)
	r := newReader(t)
	rn := startWith(t, func(c *config.Config) {
		c.Devices = []config.Device{{Name: "scan1", Till: "T1", Transport: "serial", Path: r.slave.Name(), Baud: 9600,
			DataBits: 8, Decoder: "barcode"}}
	})
	rn.waitOnline(t)
	addCashier(t, rn, "c1", staff.RoleCashier, "2468")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(rn.base+"/?lang=en&till=T1"),
		signIn("c1", "2468"),
		chromedp.WaitReady(chromedp.CSS(`#stream.on`)),
	))
	code := payCodes["wechat"]

	// No POS connected: the code is dropped, the cashier sent to the POS.
	r.write(t, "]C0"+code+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "payment code read — charge it in the POS")))

	// A POS of the till is connected: it takes the code, the page says so.
	pos := rn.stream(t, "T1")
	r.write(t, "]Q1"+payCodes["alipay"]+"\r")
	pos.next(t, events.TypePaymentCode)
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "payment code sent to the POS")))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#lang`)),
		textIs(`#enrol-go`, "入会"),
	))
	r.write(t, "]Q1"+payCodes["unionpay"]+"\r")
	pos.next(t, events.TypePaymentCode)
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "付款码已发送到收银系统")))

	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	require.NoError(t, err)
	for _, c := range payCodes {
		require.NotContains(t, html, c)
	}
}

// The cashier page tells an expired, a foreign and a repeated member code
// apart, each in its own words in both languages, and shows the member of
// a good one.
func TestCashierPageMemberCodeMessages(t *testing.T) {
	ctx := browser(t)
	h := startCodeHQ(t)
	rn, r := startCodeTill(t, h, "S1", "T1", nil)
	addCashier(t, rn, "c1", staff.RoleCashier, "2468")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(rn.base+"/?lang=en&till=T1"),
		signIn("c1", "2468"),
		chromedp.WaitReady(chromedp.CSS(`#stream.on`)),
	))
	code := h.issue(t, "M7", 0)
	r.write(t, code+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#member`, "M7")))
	r.write(t, code+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "this member code was already used")))
	r.write(t, h.issue(t, "M7", -2*time.Minute)+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "member code expired — ask the member to refresh")))
	other, err := membercode.NewSigningKey(rand.Reader)
	require.NoError(t, err)
	r.write(t, forgeWithKeyID(t, other, other.ID)+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "not from our chain")))

	// The number under the QR, typed: HQ checks it; typed again, a repeat.
	short := h.issueCode(t, "M8", -35*time.Second).Short
	typeCode := chromedp.Do(ctx,
		setField(`#lookup-by`, "member_code"),
		chromedp.SendKeys(chromedp.CSS(`#card-input`), short),
		chromedp.Click(chromedp.CSS(`#card-lookup`)),
	)
	require.NoError(t, typeCode)
	require.NoError(t, chromedp.Do(ctx, textHas(`#member`, "M8")))
	require.NoError(t, chromedp.Do(ctx,
		setField(`#lookup-by`, "member_code"),
		chromedp.SendKeys(chromedp.CSS(`#card-input`), short),
		chromedp.Click(chromedp.CSS(`#card-lookup`)),
		textHas(`#message`, "this member code was already used"),
	))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#lang`)),
		textIs(`#enrol-go`, "入会"),
	))
	r.write(t, code+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "此会员码已使用过")))
	r.write(t, h.issue(t, "M7", -5*time.Minute)+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "会员码已过期")))
	r.write(t, forgeWithKeyID(t, other, other.ID)+"\r")
	require.NoError(t, chromedp.Do(ctx, textHas(`#message`, "此会员码不属于本店")))

	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	require.NoError(t, err)
	require.NotContains(t, html, code[2:40], "the page never holds a code")
}
