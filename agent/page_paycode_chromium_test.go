//go:build linux

package agent

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/ledger/staff"
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
