// Package gateway is the contract between HQ and a chain's message gateway
// (SMS, WeChat): the JSON body HQ posts for each member message and the
// signature on it. It depends on the standard library only, so a gateway
// written in Go can use Verify as it is.
//
// HQ signs each request with a secret it shares with the gateway:
//
//	X-Posagent-Timestamp: <unix seconds>
//	X-Posagent-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	Idempotency-Key:      <message id>
//
// A gateway recomputes the HMAC over the raw body as received, compares it
// in constant time and refuses a timestamp further than a few minutes from
// its clock: a captured request can then be replayed only within that
// window, and there it repeats a message id the gateway has already seen.
// HQ delivers at least once (a message whose answer was lost goes out
// again, with the same id), so the gateway must drop an id it has taken
// and answer 2xx (or 409) for it.
package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderTimestamp   = "X-Posagent-Timestamp"
	HeaderSignature   = "X-Posagent-Signature"
	HeaderIdempotency = "Idempotency-Key"
	sigPrefix         = "v1="
)

// MaxSkew is how far a request's timestamp may be from the gateway's clock
// by default.
const MaxSkew = 5 * time.Minute

// Message is the JSON body of one delivery. To is the member's mobile.
type Message struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Member    string    `json:"member"`
	Store     string    `json:"store,omitempty"`
	To        string    `json:"to"`
	Lang      string    `json:"lang"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
	Attempt   int       `json:"attempt"` // 1 for the first try
}

// OptOut is the JSON body of the gateway's opt-out callback to HQ
// (POST /gateway/opt-out, signed the same way with the same secret).
type OptOut struct {
	Member string    `json:"member"`
	At     time.Time `json:"at"`
	Source string    `json:"source,omitempty"` // e.g. "sms reply TD"
}

// Sign is the signature header value of body sent at unix second ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return sigPrefix + hex.EncodeToString(m.Sum(nil))
}

// SetHeaders signs body into h at now.
func SetHeaders(h http.Header, secret []byte, now time.Time, body []byte) {
	ts := now.Unix()
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
}

// Errors of Verify.
var (
	ErrUnsigned = errors.New("gateway: request is not signed (" + HeaderTimestamp + ", " + HeaderSignature + ")")
	ErrStale    = errors.New("gateway: request timestamp is too far from now")
	ErrBadSig   = errors.New("gateway: signature does not match")
)

// Verify checks a request's signature headers against its raw body; the
// timestamp must lie within maxSkew of now (0: MaxSkew).
func Verify(secret []byte, h http.Header, body []byte, now time.Time, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = MaxSkew
	}
	tsv, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if tsv == "" || sig == "" {
		return ErrUnsigned
	}
	ts, err := strconv.ParseInt(tsv, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrUnsigned, tsv)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w (%s off)", ErrStale, d.Round(time.Second))
	}
	if !strings.HasPrefix(sig, sigPrefix) {
		return fmt.Errorf("%w: unknown scheme", ErrBadSig)
	}
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSig
	}
	return nil
}
