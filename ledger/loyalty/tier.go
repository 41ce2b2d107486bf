package loyalty

import (
	"fmt"
	"strconv"
)

// TierAfterSale is the tier a member of tier current reaches once the sale
// counted in s is committed, with the upgrade bonus points and the reason.
// The highest tier above current whose upgrade rule is met wins, and its
// bonus is given (skipped tiers give none). No upgrade: current, 0, "".
// Downgrades are HQ's decision only, so the tier never goes down here.
func (p *Program) TierAfterSale(current string, s TierStats) (tier string, bonus int64, reason string) {
	if current == "" {
		current = p.EnrolTier
	}
	rank := p.tierRank(current)
	if rank < 0 {
		return current, 0, ""
	}
	for i := len(p.Tiers) - 1; i > rank; i-- {
		t := p.Tiers[i]
		u := t.Upgrade
		if u == nil {
			continue
		}
		if u.SalesPerQuarter > 0 && s.SalesThisQuarter >= u.SalesPerQuarter {
			return t.ID, u.BonusPoints, fmt.Sprintf("upgrade %s→%s: %d sales this quarter (rule: %d or more), +%d bonus points (program v%d)",
				current, t.ID, s.SalesThisQuarter, u.SalesPerQuarter, u.BonusPoints, p.Version)
		}
		if u.Spend365 > 0 && s.Spend365 >= u.Spend365 {
			return t.ID, u.BonusPoints, fmt.Sprintf("upgrade %s→%s: %s spent in the last 365 days (rule: %s or more), +%d bonus points (program v%d)",
				current, t.ID, yuan(s.Spend365), yuan(u.Spend365), u.BonusPoints, p.Version)
		}
	}
	return current, 0, ""
}

// yuan formats fen as ¥12.34 for reasons (hot in Quote, so no fmt).
func yuan(fen int64) string {
	var buf [32]byte
	return string(appendYuan(buf[:0], fen))
}

func appendYuan(b []byte, fen int64) []byte {
	u := uint64(fen)
	if fen < 0 {
		b = append(b, '-')
		u = uint64(-(fen + 1)) + 1
	}
	b = append(b, "¥"...)
	b = strconv.AppendUint(b, u/100, 10)
	b = append(b, '.', byte('0'+u%100/10), byte('0'+u%10))
	return b
}
