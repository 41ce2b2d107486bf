package entry

import (
	"math"
	"strings"
	"testing"
)

func TestFormatFen(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0.00"}, {5, "0.05"}, {1250, "12.50"}, {-7000, "-70.00"}, {-1, "-0.01"},
		{math.MinInt64, "-92233720368547758.08"}, {math.MaxInt64, "92233720368547758.07"},
	} {
		if got := FormatFen(c.in); got != c.want {
			t.Errorf("FormatFen(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseYuan(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"20", 2000}, {"19.9", 1990}, {"19.90", 1990}, {"0.05", 5}, {" 7 ", 700}, {"1000000000000", 100000000000000},
	} {
		got, err := ParseYuan(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseYuan(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", ".5", "5.", "-1", "+1", "1.234", "1,5", "abc", "1.-5", "1.+5", "1000000000001", "99999999999999999999"} {
		if got, err := ParseYuan(in); err == nil {
			t.Errorf("ParseYuan(%q) = %d, want an error", in, got)
		}
	}
}

// TestParseYuanTooLarge: an amount too large is answered as too large, with
// the maximum, not as a malformed amount.
func TestParseYuanTooLarge(t *testing.T) {
	for _, in := range []string{"99999999999999999999", "1000000000001", "1000000000001.50", "184467440737095516.15"} {
		_, err := ParseYuan(in)
		if err == nil || !strings.Contains(err.Error(), "too large") || !strings.Contains(err.Error(), "at most 1000000000000") {
			t.Errorf("ParseYuan(%q): %v; want too large, at most 1000000000000", in, err)
		}
	}
	if got, err := ParseYuan("1000000000000"); err != nil || got != 100_000_000_000_000 {
		t.Errorf("the largest amount: %d, %v", got, err)
	}
	for _, in := range []string{"-99999999999999999999", "12.345", "1e9"} {
		if _, err := ParseYuan(in); err == nil || strings.Contains(err.Error(), "too large") {
			t.Errorf("ParseYuan(%q): %v; want the malformed-amount message", in, err)
		}
	}
}
