package main

import "fmt"

// fen formats minor units as yuan: 1250 → "¥12.50".
func fen(n int64) string {
	sign := ""
	u := uint64(n)
	if n < 0 {
		sign, u = "-", uint64(-n)
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, u/100, u%100)
}
