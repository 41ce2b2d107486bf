package ledgercli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"posagent/ledger/loyalty"
)

// ParseCount reads a whole number of 1 to max typed on the command line
// (what names it in messages). A number beyond max, or beyond int64, is
// answered as too large with the maximum; anything else that is not a
// positive whole number gets the form to use.
func ParseCount(what, s string, max int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-") || err == nil && n > max {
		return 0, fmt.Errorf("%s %s is too large: at most %d", what, s, max)
	}
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s %q must be a whole number of 1 or more", what, s)
	}
	return n, nil
}

// Points is a command-line flag of points (0 to loyalty.MaxPoints) that
// says what is wrong with a value: cmd.Flags().Var(Points(&p), "redeem", …).
func Points(p *int64) *PointsValue { return (*PointsValue)(p) }

// PointsValue is the flag value of Points.
type PointsValue int64

func (v *PointsValue) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *PointsValue) Type() string   { return "points" }

// Set parses whole points.
func (v *PointsValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-"), err == nil && n > loyalty.MaxPoints:
		return fmt.Errorf("%s points is too large: at most %d", s, loyalty.MaxPoints)
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return fmt.Errorf("points must be a whole number, e.g. 1000")
	case err != nil, n < 0:
		return fmt.Errorf("points must be 0 or more")
	}
	*v = PointsValue(n)
	return nil
}
