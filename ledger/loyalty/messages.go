package loyalty

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Messages are the reminders HQ sends to members (see sync/hq/messages):
// which ones, when, and their text in zh and en. They are part of the
// program so a chain changes them the way it changes any other rule, by
// publishing a version. Tills read and ignore them.
type Messages struct {
	// Lang is the language messages are sent in: zh or en.
	Lang           string        `json:"lang"`
	AfterSale      AfterSaleMsg  `json:"after_sale"`
	Birthday       BirthdayMsg   `json:"birthday"`
	PointsExpiring DaysBeforeMsg `json:"points_expiring"`
	Recall         RecallMsg     `json:"recall"`
	TierUpgrade    MsgTemplate   `json:"tier_upgrade"`
}

// MsgTemplate is one reminder's switch and text. Placeholders in braces
// ({name}, {points}, …) are filled in per member; which ones a reminder
// may use is listed in MessagePlaceholders.
type MsgTemplate struct {
	Enabled bool   `json:"enabled"`
	ZH      string `json:"zh"`
	EN      string `json:"en"`
}

// AfterSaleMsg goes out after a synced sale when the member's points now
// pay for at least MinPay fen.
type AfterSaleMsg struct {
	MsgTemplate
	MinPay int64 `json:"min_pay_fen"`
}

// DaysBeforeMsg goes out DaysBefore local days before the date it is about.
type DaysBeforeMsg struct {
	MsgTemplate
	DaysBefore int `json:"days_before"`
}

// BirthdayMsg goes out DaysBefore days before the birthday, with a
// birthday coupon issued at the same time when Coupon is set.
type BirthdayMsg struct {
	DaysBeforeMsg
	Coupon *CouponTemplate `json:"coupon,omitempty"`
}

// RecallMsg goes out on the day a member turns at risk and/or dormant
// (life_cycle thresholds), with the recall coupon (回归礼) HQ issues then.
type RecallMsg struct {
	MsgTemplate
	AtRisk  bool           `json:"at_risk"`
	Dormant bool           `json:"dormant"`
	Coupon  CouponTemplate `json:"coupon"`
}

// MessagePlaceholders are the placeholders each reminder's template may use.
var MessagePlaceholders = map[string][]string{
	"after_sale":      {"name", "points", "amount", "store_date"},
	"birthday":        {"name", "birthday", "days", "factor", "coupon", "threshold", "until"},
	"points_expiring": {"name", "points", "amount", "date", "days"},
	"recall":          {"name", "coupon", "threshold", "until", "days"},
	"tier_upgrade":    {"name", "tier", "bonus", "store_date"},
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// PointsPay is what points pay for under the redemption rule, in fen:
// whole steps only, at points_per_yuan (the per-sale share cap aside).
func (p *Program) PointsPay(points int64) int64 {
	r := p.Redemption
	if points <= 0 || r.Step <= 0 || r.PointsPerYuan <= 0 {
		return 0
	}
	return points / r.Step * r.Step * 100 / r.PointsPerYuan
}

func (d *decoder) messages(n *yaml.Node, path string, p *Program) error {
	m := &p.Messages
	tmpl := func(kind string, t *MsgTemplate, extra map[string]field) func(*yaml.Node, string) error {
		return func(n *yaml.Node, path string) error {
			var zhNode, enNode *yaml.Node
			fields := map[string]field{
				"enabled": req(boolean(&t.Enabled)),
				"zh":      req(func(n *yaml.Node, path string) error { zhNode = n; return str(&t.ZH, true)(n, path) }),
				"en":      req(func(n *yaml.Node, path string) error { enNode = n; return str(&t.EN, true)(n, path) }),
			}
			for k, f := range extra {
				fields[k] = f
			}
			if err := d.mapping(n, path, fields); err != nil {
				return err
			}
			for _, c := range []struct {
				n    *yaml.Node
				key  string
				text string
			}{{zhNode, "zh", t.ZH}, {enNode, "en", t.EN}} {
				if err := checkPlaceholders(kind, c.text); err != nil {
					return errAt(c.n, join(path, c.key), "%v", err)
				}
			}
			return nil
		}
	}
	err := d.mapping(n, path, map[string]field{
		"lang": req(func(n *yaml.Node, path string) error {
			if err := str(&m.Lang, true)(n, path); err != nil {
				return err
			}
			if m.Lang != "zh" && m.Lang != "en" {
				return errAt(n, path, "must be zh or en, not %q", m.Lang)
			}
			return nil
		}),
		"after_sale": opt(tmpl("after_sale", &m.AfterSale.MsgTemplate, map[string]field{
			"min_pay_fen": req(intIn(&m.AfterSale.MinPay, 1, MaxAmount)),
		})),
		"birthday": opt(tmpl("birthday", &m.Birthday.MsgTemplate, map[string]field{
			"days_before": req(intInt(&m.Birthday.DaysBefore, 0, 60)),
			"coupon": opt(func(n *yaml.Node, path string) error {
				m.Birthday.Coupon = &CouponTemplate{}
				return d.couponTemplate(n, path, m.Birthday.Coupon, p)
			}),
		})),
		"points_expiring": opt(tmpl("points_expiring", &m.PointsExpiring.MsgTemplate, map[string]field{
			"days_before": req(intInt(&m.PointsExpiring.DaysBefore, 0, 366)),
		})),
		"recall": opt(tmpl("recall", &m.Recall.MsgTemplate, map[string]field{
			"at_risk": req(boolean(&m.Recall.AtRisk)),
			"dormant": req(boolean(&m.Recall.Dormant)),
			"coupon":  req(func(n *yaml.Node, path string) error { return d.couponTemplate(n, path, &m.Recall.Coupon, p) }),
		})),
		"tier_upgrade": opt(tmpl("tier_upgrade", &m.TierUpgrade, nil)),
	})
	if err != nil {
		return err
	}
	if m.Recall.Enabled && !m.Recall.AtRisk && !m.Recall.Dormant {
		return errAt(n, join(path, "recall"), "is enabled but neither at_risk nor dormant is true; set one, or enabled: false")
	}
	return nil
}

// checkPlaceholders rejects a template naming a placeholder the reminder
// does not fill, so a typo is found when the program is published and not
// in a member's message.
func checkPlaceholders(kind, text string) error {
	allowed := MessagePlaceholders[kind]
	for _, m := range placeholderRE.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(allowed, m[1]) {
			return fmt.Errorf("unknown placeholder {%s}; %s may use {%s}", m[1], kind, strings.Join(allowed, "}, {"))
		}
	}
	if strings.Count(text, "{") != strings.Count(text, "}") {
		return fmt.Errorf("unbalanced braces in %q; placeholders are written {name}", text)
	}
	return nil
}

func boolean(dst *bool) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "true", "yes":
			*dst = true
		case "false", "no":
			*dst = false
		default:
			return errAt(n, path, "must be true or false, not %q", s)
		}
		return nil
	}
}
