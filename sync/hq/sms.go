package hq

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// SMSGateway is the chain's SMS gateway as HQ calls it: a POST of JSON
// {"mobile","text","purpose"} to URL, signed with the shared secret
// (X-Posagent-Timestamp: unix seconds; X-Posagent-Signature: hex
// HMAC-SHA256 of timestamp + "." + body). Any 2xx answer means accepted.
type SMSGateway struct {
	URL     string
	Secret  string
	Timeout time.Duration // per request [5s]
	Client  *http.Client  // [a client with Timeout]
}

// SMSMessage is the JSON body HQ posts.
type SMSMessage struct {
	Mobile  string `json:"mobile"`
	Text    string `json:"text"`
	Purpose string `json:"purpose"` // "enrol_code"
}

// SMSSignature is the signature header's value for a body sent at ts.
func SMSSignature(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Send posts one message.
func (g *SMSGateway) Send(ctx context.Context, msg SMSMessage, now time.Time) error {
	if g == nil || g.URL == "" {
		return errors.New("no SMS gateway configured")
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("SMS gateway URL %q: %w", g.URL, err)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Posagent-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Posagent-Signature", SMSSignature(g.Secret, ts, body))
	c := g.Client
	if c == nil {
		c = &http.Client{Timeout: timeout}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("SMS gateway: %w", err)
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("SMS gateway answered %s: %s", resp.Status, bytes.TrimSpace(detail))
	}
	return nil
}
