package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseMoney reads an amount for a flag: an integer is fen ("1250"), a
// number with a decimal point is yuan ("12.50", at most two decimals). No
// floating point is involved.
func parseMoney(s string) (int64, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "¥"))
	if s == "" {
		return 0, fmt.Errorf("empty amount")
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if !hasDot {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("amount %q: give fen as a whole number (1250) or yuan with a point (12.50)", s)
		}
		return n, nil
	}
	if len(frac) > 2 || strings.ContainsAny(whole+frac, "+-") {
		return 0, fmt.Errorf("amount %q: yuan take at most two decimals (12.50)", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	if whole == "" {
		whole = "0"
	}
	y, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || y > (1<<62)/100 {
		return 0, fmt.Errorf("amount %q: not a number of yuan (12.50)", s)
	}
	return y*100 + f, nil
}

// fen formats minor units as yuan: 1250 → "¥12.50".
func fen(n int64) string {
	sign := ""
	u := uint64(n)
	if n < 0 {
		sign, u = "-", uint64(-n)
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, u/100, u%100)
}
