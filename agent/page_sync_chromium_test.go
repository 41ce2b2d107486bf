//go:build linux

package agent

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/ledger/staff"
)

// syncBadge is the page's HQ link badge once the status has been shown:
// whether it is visible, its text and its class.
const syncBadge = `(() => { const e = document.querySelector('#sync');
	return [String(!e.hidden && e.offsetParent !== null), e.textContent, e.className]; })()`

// TestStandaloneTillShowsNoHQBadge: a till with no HQ configured keeps its
// entries to itself, so the page shows no red "no HQ link · N to upload"
// badge however many there are; a till whose HQ is unreachable does show
// its backlog, in red.
func TestStandaloneTillShowsNoHQBadge(t *testing.T) {
	ctx := browser(t)
	sale := map[string]any{"receipt_id": "R1", "cashier": "c1", "lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 1000}}}

	alone := start(t)
	addCashier(t, alone, "c1", staff.RoleCashier, "1357")
	alone.post(t, "/v1/sales", sale, nil)
	var st api.Status
	alone.get(t, "/v1/status", &st)
	require.False(t, st.Sync.Configured)
	require.Equal(t, 1, st.Sync.Backlog, "the sale is in the backlog a standalone till never uploads")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(alone.base+"/?lang=en"),
		signIn("c1", "1357"),
		chromedp.WaitVisible(chromedp.CSS(`#app`)),
		textIs(`#devices`, "no readers configured"), // the status is shown
	))
	badge, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](syncBadge))
	require.NoError(t, err)
	require.Equal(t, "false", badge[0], "no HQ badge on a standalone till: %q (class %q)", badge[1], badge[2])
	require.NotContains(t, badge[1], "to upload")

	cut := startWith(t, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token = "http://127.0.0.1:1", "hqs_unreachable" // nothing listens on port 1
	})
	addCashier(t, cut, "c1", staff.RoleCashier, "1357")
	cut.post(t, "/v1/sales", sale, nil)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(cut.base+"/?lang=en"),
		signIn("c1", "1357"),
		chromedp.WaitVisible(chromedp.CSS(`#app`)),
		textHas(`#sync`, "1 to upload"),
	))
	badge, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](syncBadge))
	require.NoError(t, err)
	require.Equal(t, []string{"true", "offline · 1 to upload", "off"}, badge, "a till cut off from its HQ shows what waits, in red")
}
