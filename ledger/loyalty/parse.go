package loyalty

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // store PCs may lack a zone database; the program's zone must always load

	"gopkg.in/yaml.v3"
)

// Limits that keep every product of money, rates and points inside int64.
const (
	MaxAmount = int64(100_000_000_000_000) // fen: one line, one basket or one setting (1e12 yuan)
	MaxPoints = int64(1_000_000_000_000_000)
	MaxQty    = int64(1_000_000_000)
	MaxLines  = 10_000
	// MaxProgramSize bounds a program file so a hostile upload cannot
	// exhaust memory.
	MaxProgramSize = 1 << 20
)

// ParseError is a program file error at a key path and line.
type ParseError struct {
	Line int    // 1-based; 0 when unknown
	Path string // e.g. tiers.gold.discount_bp
	Msg  string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func errAt(n *yaml.Node, path, format string, a ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Line: line, Path: path, Msg: fmt.Sprintf(format, a...)}
}

//go:embed default_program.yaml
var defaultProgramYAML []byte

var defaultOnce = sync.OnceValues(func() (*Program, error) { return ParseProgram(defaultProgramYAML) })

// DefaultProgramYAML is the source of the embedded default program.
func DefaultProgramYAML() []byte { return slices.Clone(defaultProgramYAML) }

// DefaultProgram is the embedded default program (the spec). Each call
// returns a fresh copy the caller may keep.
func DefaultProgram() *Program {
	p, err := defaultOnce()
	if err != nil {
		// The embedded file is part of the build and tested; reaching this is
		// a broken build, not bad input.
		panic("loyalty: embedded default program is invalid: " + err.Error())
	}
	return p.clone()
}

func (p *Program) clone() *Program {
	c := *p
	c.Tiers = slices.Clone(p.Tiers)
	for i := range c.Tiers {
		if u := c.Tiers[i].Upgrade; u != nil {
			uu := *u
			c.Tiers[i].Upgrade = &uu
		}
	}
	for _, m := range []*Multiplier{&c.Multipliers.Birthday, &c.Multipliers.BirthdayMonth, &c.Multipliers.MemberDay, &c.Multipliers.OffSeason} {
		m.Tiers = slices.Clone(m.Tiers)
		m.Months = slices.Clone(m.Months)
	}
	c.TopUp = slices.Clone(p.TopUp)
	c.Welcome.SKUs = slices.Clone(p.Welcome.SKUs)
	c.Referral.Coupon.SKUs = slices.Clone(p.Referral.Coupon.SKUs)
	c.Messages.Recall.Coupon.SKUs = slices.Clone(p.Messages.Recall.Coupon.SKUs)
	if bc := p.Messages.Birthday.Coupon; bc != nil {
		cc := *bc
		cc.SKUs = slices.Clone(bc.SKUs)
		c.Messages.Birthday.Coupon = &cc
	}
	return &c
}

// ParseProgram reads and validates a program file (YAML). Unknown keys,
// missing keys and values out of range are errors naming the key path and
// the line, e.g. "line 12: tiers.gold.discount_bp: must be 0..10000".
func ParseProgram(src []byte) (p *Program, err error) {
	if len(src) > MaxProgramSize {
		return nil, fmt.Errorf("loyalty: program file is %d bytes, more than the %d allowed", len(src), MaxProgramSize)
	}
	var doc yaml.Node
	if err := safeUnmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("loyalty: program file is not valid YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &ParseError{Line: 1, Msg: "program file is empty; it needs version, effective_from, time_zone, tiers, …"}
	}
	d := &decoder{}
	p = &Program{}
	if err := d.program(doc.Content[0], p); err != nil {
		return nil, err
	}
	for _, check := range d.later {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// safeUnmarshal turns a panic inside the YAML library into an error: a
// program file is outside input and must never crash the agent.
func safeUnmarshal(src []byte, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return yaml.Unmarshal(src, n)
}

type decoder struct {
	later []func() error // cross-references checked once everything is read
}

type field struct {
	required bool
	fn       func(n *yaml.Node, path string) error
}

func req(fn func(n *yaml.Node, path string) error) field { return field{true, fn} }
func opt(fn func(n *yaml.Node, path string) error) field { return field{false, fn} }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping walks a mapping node calling each key's handler; unknown,
// duplicate and missing required keys are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field) error {
	if n.Kind == yaml.AliasNode {
		return errAt(n, path, "YAML aliases are not supported; write the value out")
	}
	if n.Kind != yaml.MappingNode {
		return errAt(n, path, "must be a mapping of keys to values, not %s", kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return errAt(k, path, "keys must be plain words")
		}
		kp := join(path, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			return errAt(k, kp, "unknown key; expected one of %s", keyList(fields))
		}
		if seen[k.Value] {
			return errAt(k, kp, "key given twice")
		}
		seen[k.Value] = true
		if err := f.fn(v, kp); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(fields) {
		if fields[k].required && !seen[k] {
			return errAt(n, join(path, k), "missing; it is required")
		}
	}
	return nil
}

func sortedKeys(fields map[string]field) []string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func keyList(fields map[string]field) string { return strings.Join(sortedKeys(fields), ", ") }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func scalar(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errAt(n, path, "must be a single value, not %s", kindName(n))
	}
	return n.Value, nil
}

// intIn reads a whole number within min..max into *dst.
func intIn(dst *int64, min, max int64) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		v, perr := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if perr != nil {
			return errAt(n, path, "must be a whole number %d..%d, not %q", min, max, s)
		}
		if v < min || v > max {
			return errAt(n, path, "must be %d..%d, not %d", min, max, v)
		}
		*dst = v
		return nil
	}
}

func intInt(dst *int, min, max int64) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		var v int64
		if err := intIn(&v, min, max)(n, path); err != nil {
			return err
		}
		*dst = int(v)
		return nil
	}
}

func str(dst *string, nonEmpty bool) func(*yaml.Node, string) error {
	return func(n *yaml.Node, path string) error {
		s, err := scalar(n, path)
		if err != nil {
			return err
		}
		if nonEmpty && strings.TrimSpace(s) == "" {
			return errAt(n, path, "must not be empty")
		}
		*dst = s
		return nil
	}
}

func seq(n *yaml.Node, path string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, path, "must be a list, not %s", kindName(n))
	}
	return n.Content, nil
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func (d *decoder) program(n *yaml.Node, p *Program) error {
	var effNode, tzNode *yaml.Node
	var effRaw string
	err := d.mapping(n, "", map[string]field{
		"version": req(intInt(&p.Version, 1, 1_000_000_000)),
		"effective_from": req(func(n *yaml.Node, path string) error {
			effNode = n
			return str(&effRaw, true)(n, path)
		}),
		"time_zone": req(func(n *yaml.Node, path string) error {
			tzNode = n
			return str(&p.TimeZone, true)(n, path)
		}),
		"tiers":      req(func(n *yaml.Node, path string) error { return d.tiers(n, path, p) }),
		"enrol_tier": opt(str(&p.EnrolTier, true)),
		"earning": req(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{"fen_per_point": req(intIn(&p.FenPerPoint, 1, 1_000_000))})
		}),
		"multipliers": opt(func(n *yaml.Node, path string) error { return d.multipliers(n, path, p) }),
		"redemption":  req(func(n *yaml.Node, path string) error { return d.redemption(n, path, &p.Redemption) }),
		"lots": req(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{"expire_years_after": req(intInt(&p.Lots.ExpireYearsAfter, 0, 100))})
		}),
		"top_up_bonus": opt(func(n *yaml.Node, path string) error { return d.topUp(n, path, p) }),
		"welcome_coupon": req(func(n *yaml.Node, path string) error {
			return d.couponTemplate(n, path, &p.Welcome, p)
		}),
		"referral": opt(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{
				"referrer_points":   req(intIn(&p.Referral.ReferrerPoints, 0, 1_000_000_000)),
				"new_member_points": req(intIn(&p.Referral.NewMemberPoints, 0, 1_000_000_000)),
				"coupon":            opt(func(n *yaml.Node, path string) error { return d.couponTemplate(n, path, &p.Referral.Coupon, p) }),
			})
		}),
		"messages": opt(func(n *yaml.Node, path string) error { return d.messages(n, path, p) }),
		"life_cycle": req(func(n *yaml.Node, path string) error {
			if err := d.mapping(n, path, map[string]field{
				"at_risk_days": req(intInt(&p.Life.AtRiskDays, 1, 36500)),
				"dormant_days": req(intInt(&p.Life.DormantDays, 1, 36500)),
			}); err != nil {
				return err
			}
			if p.Life.DormantDays <= p.Life.AtRiskDays {
				return errAt(n, join(path, "dormant_days"), "must be more than at_risk_days (%d), not %d", p.Life.AtRiskDays, p.Life.DormantDays)
			}
			return nil
		}),
	})
	if err != nil {
		return err
	}
	loc, lerr := time.LoadLocation(p.TimeZone)
	if lerr != nil || p.TimeZone == "Local" {
		return errAt(tzNode, "time_zone", "unknown time zone %q; use an IANA name such as Asia/Shanghai", p.TimeZone)
	}
	p.loc = loc
	eff, ok := parseWhen(effRaw, loc)
	if !ok {
		return errAt(effNode, "effective_from", "must be a date (2026-01-01, 00:00 in time_zone) or an RFC 3339 time (2026-01-01T00:00:00+08:00), not %q", effRaw)
	}
	p.EffectiveFrom = eff
	if p.EnrolTier == "" {
		p.EnrolTier = p.Tiers[0].ID
	} else if p.tierRank(p.EnrolTier) < 0 {
		return errAt(n, "enrol_tier", "tier %q is not defined under tiers", p.EnrolTier)
	}
	return nil
}

func parseWhen(s string, loc *time.Location) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func (d *decoder) tiers(n *yaml.Node, path string, p *Program) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, path, "must map tier ids (lowest first) to their settings, not %s", kindName(n))
	}
	if len(n.Content) == 0 {
		return errAt(n, path, "needs at least one tier")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || !idRE.MatchString(k.Value) {
			return errAt(k, path, "tier id %q must be 1-32 lowercase letters, digits, _ or -", k.Value)
		}
		tp := join(path, k.Value)
		if p.tierRank(k.Value) >= 0 {
			return errAt(k, tp, "tier given twice")
		}
		t := Tier{ID: k.Value}
		var upNode *yaml.Node
		err := d.mapping(v, tp, map[string]field{
			"name_zh":     req(str(&t.NameZH, true)),
			"name_en":     req(str(&t.NameEN, true)),
			"discount_bp": req(intIn(&t.DiscountBP, 0, 10000)),
			"upgrade": opt(func(n *yaml.Node, path string) error {
				upNode = n
				u := &UpgradeRule{}
				if err := d.mapping(n, path, map[string]field{
					"sales_per_quarter": opt(intInt(&u.SalesPerQuarter, 0, 1_000_000)),
					"spend_365_fen":     opt(intIn(&u.Spend365, 0, MaxAmount)),
					"bonus_points":      req(intIn(&u.BonusPoints, 0, 1_000_000_000)),
				}); err != nil {
					return err
				}
				if u.SalesPerQuarter == 0 && u.Spend365 == 0 {
					return errAt(n, path, "needs sales_per_quarter or spend_365_fen above 0 (leave upgrade out for a tier only HQ grants)")
				}
				t.Upgrade = u
				return nil
			}),
		})
		if err != nil {
			return err
		}
		if len(p.Tiers) == 0 && t.Upgrade != nil {
			return errAt(upNode, join(tp, "upgrade"), "the lowest tier is where members start; it cannot have an upgrade rule")
		}
		p.Tiers = append(p.Tiers, t)
	}
	return nil
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

func (d *decoder) multipliers(n *yaml.Node, path string, p *Program) error {
	factor := func(m *Multiplier) field { return req(intIn(&m.Factor, 1, 100)) }
	tiers := func(m *Multiplier) field {
		return opt(func(n *yaml.Node, path string) error {
			items, err := seq(n, path)
			if err != nil {
				return err
			}
			for i, it := range items {
				ip := fmt.Sprintf("%s[%d]", path, i)
				var id string
				if err := str(&id, true)(it, ip); err != nil {
					return err
				}
				m.Tiers = append(m.Tiers, id)
				d.later = append(d.later, func() error {
					if p.tierRank(id) < 0 {
						return errAt(it, ip, "tier %q is not defined under tiers", id)
					}
					return nil
				})
			}
			return nil
		})
	}
	ms := &p.Multipliers
	return d.mapping(n, path, map[string]field{
		"birthday": opt(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{"factor": factor(&ms.Birthday), "tiers": tiers(&ms.Birthday)})
		}),
		"birthday_month": opt(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{"factor": factor(&ms.BirthdayMonth), "tiers": tiers(&ms.BirthdayMonth)})
		}),
		"member_day": opt(func(n *yaml.Node, path string) error {
			return d.mapping(n, path, map[string]field{"factor": factor(&ms.MemberDay), "tiers": tiers(&ms.MemberDay),
				"day_of_month": req(intInt(&ms.MemberDay.DayOfMonth, 1, 31))})
		}),
		"off_season": opt(func(n *yaml.Node, path string) error {
			m := &ms.OffSeason
			return d.mapping(n, path, map[string]field{"factor": factor(m), "tiers": tiers(m),
				"weekday": req(func(n *yaml.Node, path string) error {
					s, err := scalar(n, path)
					if err != nil {
						return err
					}
					wd, ok := weekdays[strings.ToLower(s)]
					if !ok {
						return errAt(n, path, "must be a weekday name (monday … sunday), not %q", s)
					}
					m.Weekday = wd
					return nil
				}),
				"months": req(func(n *yaml.Node, path string) error {
					items, err := seq(n, path)
					if err != nil {
						return err
					}
					if len(items) == 0 {
						return errAt(n, path, "needs at least one month (1..12)")
					}
					for i, it := range items {
						var v int64
						ip := fmt.Sprintf("%s[%d]", path, i)
						if err := intIn(&v, 1, 12)(it, ip); err != nil {
							return err
						}
						if slices.Contains(m.Months, time.Month(v)) {
							return errAt(it, ip, "month %d listed twice", v)
						}
						m.Months = append(m.Months, time.Month(v))
					}
					return nil
				}),
			})
		}),
	})
}

func (d *decoder) redemption(n *yaml.Node, path string, r *Redemption) error {
	if err := d.mapping(n, path, map[string]field{
		"points_per_yuan":     req(intIn(&r.PointsPerYuan, 1, 10_000)),
		"step":                req(intIn(&r.Step, 1, 1_000_000)),
		"max_share_bp":        req(intIn(&r.MaxShareBP, 0, 10000)),
		"offline_cap_per_day": req(intIn(&r.OfflineCapPerDay, 0, MaxPoints)),
	}); err != nil {
		return err
	}
	// Each step must be worth a whole number of fen, so any redemption is
	// exact money.
	if r.Step*100%r.PointsPerYuan != 0 {
		return errAt(n, join(path, "step"), "%d points at %d points per yuan is not a whole number of fen; choose a step that is", r.Step, r.PointsPerYuan)
	}
	return nil
}

func (d *decoder) topUp(n *yaml.Node, path string, p *Program) error {
	items, err := seq(n, path)
	if err != nil {
		return err
	}
	for i, it := range items {
		ip := fmt.Sprintf("%s[%d]", path, i)
		var s TopUpStep
		if err := d.mapping(it, ip, map[string]field{
			"min_fen":   req(intIn(&s.Min, 1, MaxAmount)),
			"bonus_fen": req(intIn(&s.Bonus, 0, MaxAmount)),
		}); err != nil {
			return err
		}
		for _, o := range p.TopUp {
			if o.Min == s.Min {
				return errAt(it, join(ip, "min_fen"), "%d is listed twice", s.Min)
			}
		}
		p.TopUp = append(p.TopUp, s)
	}
	sort.Slice(p.TopUp, func(i, j int) bool { return p.TopUp[i].Min < p.TopUp[j].Min })
	return nil
}

func (d *decoder) couponTemplate(n *yaml.Node, path string, t *CouponTemplate, p *Program) error {
	return d.mapping(n, path, map[string]field{
		"name":          req(str(&t.Name, true)),
		"value_fen":     req(intIn(&t.Value, 1, MaxAmount)),
		"threshold_fen": req(intIn(&t.Threshold, 0, MaxAmount)),
		"valid_days":    req(intInt(&t.ValidDays, 1, 3650)),
		"skus": opt(func(n *yaml.Node, path string) error {
			items, err := seq(n, path)
			if err != nil {
				return err
			}
			for i, it := range items {
				var s string
				if err := str(&s, true)(it, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
				t.SKUs = append(t.SKUs, s)
			}
			return nil
		}),
	})
}
