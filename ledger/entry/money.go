package entry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxYuan bounds typed amounts well below int64 overflow in fen.
const maxYuan = 1_000_000_000_000

// FormatFen writes an amount in fen as yuan with two decimals: 1250 → "12.50",
// -7000 → "-70.00". No floats: money is integer fen everywhere.
func FormatFen(f int64) string {
	u := uint64(f)
	sign := ""
	if f < 0 {
		sign, u = "-", uint64(-(f+1))+1 // -MinInt64 without overflow
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// ParseYuan reads an amount typed in yuan ("20", "19.9", "19.90") as fen,
// without floats. Negative amounts, more than two decimals and absurd sizes
// are refused with a message that shows the expected form.
func ParseYuan(s string) (int64, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("amount %q: give yuan with at most two decimals, e.g. 12.50", s)
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(frac) > 2 || (dot && frac == "") || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, bad
	}
	// A number too large is not malformed: say so, with the maximum.
	tooLarge := fmt.Errorf("amount %q is too large: at most %d yuan", s, maxYuan)
	y, err := strconv.ParseUint(whole, 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && y > maxYuan {
		return 0, tooLarge
	}
	if err != nil {
		return 0, bad
	}
	var f uint64
	if frac != "" {
		if f, err = strconv.ParseUint(frac, 10, 64); err != nil {
			return 0, bad
		}
		if len(frac) == 1 {
			f *= 10
		}
	}
	if y*100+f > maxYuan*100 {
		return 0, tooLarge
	}
	return int64(y*100 + f), nil
}
