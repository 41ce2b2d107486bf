package client

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fullJitter is the wait after the n-th consecutive failure (n ≥ 1): a
// uniform random duration in [0, min(max, base·2^(n-1))). Full jitter
// spreads a thousand stores coming back at once instead of having them
// retry in lockstep.
func fullJitter(n int, base, max time.Duration, rnd func(int64) int64) time.Duration {
	if n < 1 {
		return 0
	}
	ceil := base
	for i := 1; i < n && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceil)))
}

func defaultRand(n int64) int64 { return rand.Int64N(n) }

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP
// date. ok is false when the header is missing or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}
