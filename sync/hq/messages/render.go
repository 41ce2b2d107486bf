package messages

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaskName shows a name as 张*三: the first and last characters kept and
// a star for each one between; a two-character name keeps its first
// (张*), a one-character name is a star. A message may be read over the
// member's shoulder or land on a shared phone.
func MaskName(name string) string {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	r := []rune(name)
	switch {
	case n == 0:
		return ""
	case n == 1:
		return "*"
	case n == 2:
		return string(r[0]) + "*"
	}
	return string(r[0]) + strings.Repeat("*", n-2) + string(r[n-1])
}

// Yuan formats fen as yuan with two decimals ("12.50"), by integer
// arithmetic.
func Yuan(fen int64) string {
	var b []byte
	u := uint64(fen)
	if fen < 0 {
		b = append(b, '-')
		u = uint64(-(fen + 1)) + 1
	}
	b = strconv.AppendUint(b, u/100, 10)
	return string(append(b, '.', byte('0'+u%100/10), byte('0'+u%10)))
}

// Date is a local calendar date, as the program's dates are: no time,
// no zone. Its zero value is no date.
type Date struct {
	Y int
	M time.Month
	D int
}

// DateOf is t's date in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	l := t.In(loc)
	return Date{l.Year(), l.Month(), l.Day()}
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, bool) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, false
	}
	return Date{t.Year(), t.Month(), t.Day()}, true
}

func (d Date) String() string {
	return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// IsZero reports whether d is no date.
func (d Date) IsZero() bool { return d == Date{} }

// AddDays is d moved n calendar days.
func (d Date) AddDays(n int) Date {
	t := time.Date(d.Y, d.M, d.D+n, 12, 0, 0, 0, time.UTC)
	return Date{t.Year(), t.Month(), t.Day()}
}

// Start is 00:00 of d in loc.
func (d Date) Start(loc *time.Location) time.Time { return time.Date(d.Y, d.M, d.D, 0, 0, 0, 0, loc) }

// Before reports whether d is an earlier date than e.
func (d Date) Before(e Date) bool { return d.String() < e.String() }

// DaysTo counts calendar days from d to e.
func (d Date) DaysTo(e Date) int {
	a := time.Date(d.Y, d.M, d.D, 12, 0, 0, 0, time.UTC)
	b := time.Date(e.Y, e.M, e.D, 12, 0, 0, 0, time.UTC)
	return int(b.Sub(a).Hours() / 24)
}

// fill replaces each {key} of text with vals[key]; the program parser has
// already refused placeholders a reminder does not fill.
func fill(text string, vals map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			break
		}
		b.WriteString(text[:i])
		k := text[i+1 : i+j]
		if v, ok := vals[k]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(text[i : i+j+1])
		}
		text = text[i+j+1:]
	}
	b.WriteString(text)
	return b.String()
}
