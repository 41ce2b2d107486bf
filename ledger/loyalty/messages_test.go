package loyalty

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMessagesSection(t *testing.T) {
	p := DefaultProgram()
	m := p.Messages
	require.Equal(t, "zh", m.Lang)
	require.True(t, m.AfterSale.Enabled)
	require.Equal(t, int64(1000), m.AfterSale.MinPay)
	require.Equal(t, 3, m.Birthday.DaysBefore)
	require.NotNil(t, m.Birthday.Coupon)
	require.Equal(t, 30, m.PointsExpiring.DaysBefore)
	require.True(t, m.Recall.AtRisk && m.Recall.Dormant)
	require.Equal(t, "回归礼", m.Recall.Coupon.Name)

	// A program without the section sends nothing.
	src := string(DefaultProgramYAML())
	bare, err := ParseProgram([]byte(src[:strings.Index(src, "\n# Reminders")] + "\n"))
	require.NoError(t, err)
	require.Equal(t, Messages{}, bare.Messages)

	bad := func(old, repl, wantErr string) {
		t.Helper()
		_, err := ParseProgram([]byte(strings.Replace(src, old, repl, 1)))
		require.ErrorContains(t, err, wantErr)
	}
	bad("lang: zh", "lang: fr", "messages.lang: must be zh or en")
	bad("min_pay_fen: 1000", "min_pay_fen: 0", "messages.after_sale.min_pay_fen: must be 1..")
	bad("可抵扣{amount}元", "可抵扣{amout}元", "messages.after_sale.zh: unknown placeholder {amout}; after_sale may use {name}, {points}, {amount}, {store_date}")
	bad("{bonus} bonus", "{bonus bonus", "unbalanced braces")
	bad("days_before: 3", "days_before: 99", "messages.birthday.days_before: must be 0..60")
	bad("    at_risk: true\n    dormant: true", "    at_risk: false\n    dormant: false", "messages.recall: is enabled but neither at_risk nor dormant")
	bad("  tier_upgrade:\n    enabled: true", "  tier_upgrade:\n    enabled: maybe", "messages.tier_upgrade.enabled: must be true or false")
	bad("  tier_upgrade:\n    enabled: true", "  tier_upgrade:\n    enabled: true\n    colour: red", "messages.tier_upgrade.colour: unknown key")

	require.Equal(t, int64(1200), p.PointsPay(1299))
	require.Equal(t, int64(0), p.PointsPay(99))
	require.Equal(t, int64(0), p.PointsPay(-500))
}
