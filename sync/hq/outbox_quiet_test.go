package hq_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

func TestQuietHours(t *testing.T) {
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	night, err := hq.ParseQuietHours("21:00-09:00")
	require.NoError(t, err)
	lunch, err := hq.ParseQuietHours("12:00-13:30")
	require.NoError(t, err)
	d := func(loc *time.Location, y int, m time.Month, day, h, min int) time.Time {
		return time.Date(y, m, day, h, min, 0, 0, loc)
	}
	tests := []struct {
		name  string
		q     hq.QuietHours
		at    time.Time
		loc   *time.Location
		quiet bool
		until time.Time
	}{
		{"day", night, d(sh, 2026, 3, 10, 10, 0), sh, false, time.Time{}},
		{"last minute before", night, d(sh, 2026, 3, 10, 20, 59), sh, false, time.Time{}},
		{"starts", night, d(sh, 2026, 3, 10, 21, 0), sh, true, d(sh, 2026, 3, 11, 9, 0)},
		{"before midnight", night, d(sh, 2026, 3, 10, 23, 30), sh, true, d(sh, 2026, 3, 11, 9, 0)},
		{"after midnight", night, d(sh, 2026, 3, 11, 2, 0), sh, true, d(sh, 2026, 3, 11, 9, 0)},
		{"ends", night, d(sh, 2026, 3, 11, 9, 0), sh, false, time.Time{}},
		{"month end", night, d(sh, 2026, 2, 28, 22, 0), sh, true, d(sh, 2026, 3, 1, 9, 0)},
		{"the store's zone, not the instant's", night, d(sh, 2026, 3, 10, 10, 0), ny, true, d(ny, 2026, 3, 10, 9, 0)},
		{"over a DST change", night, d(ny, 2026, 3, 7, 22, 0), ny, true, d(ny, 2026, 3, 8, 9, 0)},
		{"daytime window", lunch, d(sh, 2026, 3, 10, 12, 45), sh, true, d(sh, 2026, 3, 10, 13, 30)},
		{"daytime window, after", lunch, d(sh, 2026, 3, 10, 13, 30), sh, false, time.Time{}},
		{"off", hq.QuietHours{}, d(sh, 2026, 3, 10, 23, 0), sh, false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			until, quiet := tc.q.Until(tc.at, tc.loc)
			require.Equal(t, tc.quiet, quiet)
			require.True(t, until.Equal(tc.until), "until %s, want %s", until, tc.until)
		})
	}
	for _, bad := range []string{"21:00", "25:00-09:00", "21-09", "9pm-9am"} {
		_, err := hq.ParseQuietHours(bad)
		require.Error(t, err, bad)
	}
	require.Equal(t, "21:00-09:00", night.String())
}

func TestBackoff(t *testing.T) {
	base, most := time.Second, time.Minute
	tests := []struct {
		attempt int
		u       float64
		want    time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.999999, 999999500 * time.Nanosecond},
		{2, 0, time.Second},
		{3, 0.5, 3 * time.Second},
		{7, 0, 30 * time.Second},    // 64s capped at 60s, halved
		{1000, 0, 30 * time.Second}, // no overflow however many attempts
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, hq.Backoff(tc.attempt, base, most, tc.u), "attempt %d u %v", tc.attempt, tc.u)
	}
}
