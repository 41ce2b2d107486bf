package main

import (
	"strings"

	"posagent/ledger/entry"
)

// fen formats minor units for the terminal: 1250 → "¥12.50", -70 → "-¥0.70".
func fen(n int64) string {
	s := entry.FormatFen(n)
	if neg, ok := strings.CutPrefix(s, "-"); ok {
		return "-¥" + neg
	}
	return "¥" + s
}
