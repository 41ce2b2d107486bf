package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":"m1"}`)
	now := time.Unix(1_800_000_000, 0)
	signed := func(at time.Time, b []byte, key []byte) http.Header {
		h := http.Header{}
		SetHeaders(h, key, at, b)
		return h
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want error
	}{
		{"good", signed(now, body, secret), body, nil},
		{"clock behind within skew", signed(now.Add(-4*time.Minute), body, secret), body, nil},
		{"clock ahead within skew", signed(now.Add(4*time.Minute), body, secret), body, nil},
		{"stale", signed(now.Add(-6*time.Minute), body, secret), body, ErrStale},
		{"future", signed(now.Add(6*time.Minute), body, secret), body, ErrStale},
		{"body changed", signed(now, body, secret), []byte(`{"id":"m2"}`), ErrBadSig},
		{"other secret", signed(now, body, []byte("other")), body, ErrBadSig},
		{"unsigned", http.Header{}, body, ErrUnsigned},
		{"timestamp not a number", http.Header{HeaderTimestamp: {"x"}, HeaderSignature: {"v1=00"}}, body, ErrUnsigned},
		{"unknown scheme", http.Header{HeaderTimestamp: {strconv.FormatInt(now.Unix(), 10)}, HeaderSignature: {"v2=00"}}, body, ErrBadSig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(secret, tc.h, tc.body, now, 0)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// The timestamp is signed: moving it breaks the signature.
	h := signed(now, body, secret)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
	if err := Verify(secret, h, body, now, 0); !errors.Is(err, ErrBadSig) {
		t.Fatalf("moved timestamp: %v", err)
	}
}
