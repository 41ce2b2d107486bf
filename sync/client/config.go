package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config says where HQ is and how hard to push. Zero values take the
// defaults noted on each field.
type Config struct {
	// URL is HQ's base URL, e.g. "https://hq.example.com:8443".
	URL string
	// Token is the store's credential, sent as "Authorization: Bearer".
	Token string
	// Store, when set, must match the store of every entry uploaded; a
	// mismatch is reported instead of sent (HQ would refuse it anyway).
	Store string

	// BatchMax is the most entries in one upload (default 500).
	BatchMax int
	// BatchAge sends a small batch once its oldest entry is this old
	// (default 5s), so a quiet till still syncs promptly.
	BatchAge time.Duration
	// Poll is how often the outbox is looked at when nothing nudges the
	// client (default 1s).
	Poll time.Duration
	// PullEvery is how often HQ changes are pulled (default 30s).
	PullEvery time.Duration
	// PullLimit is the page size asked for when pulling (default 500).
	PullLimit int
	// Parallel is how many tills upload at once (default 2). Entries of one
	// till always go in order, one request at a time.
	Parallel int

	// BackoffBase and BackoffMax bound the full-jitter backoff while HQ is
	// unreachable: the n-th failure waits a uniform random time in
	// [0, min(BackoffMax, BackoffBase·2^n)) (defaults 500ms and 60s).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxRetryAfter caps how long a Retry-After from HQ is obeyed
	// (default 10m), so a wrong header cannot park the store for a day.
	MaxRetryAfter time.Duration
	// RequestTimeout bounds one HTTP exchange (default 30s).
	RequestTimeout time.Duration

	// TLS configures HTTPS, including a client certificate for mutual TLS.
	// See LoadTLS. Nil uses the system roots.
	TLS *tls.Config
	// HTTPClient replaces the built-in client (tests, proxies). TLS is then
	// the caller's business.
	HTTPClient *http.Client
}

func (c Config) withDefaults() (Config, error) {
	if strings.TrimSpace(c.URL) == "" {
		return c, errors.New("sync client: URL of HQ is required (e.g. https://hq.example.com)")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("sync client: URL %q must be an http:// or https:// address of HQ", c.URL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.Token == "" {
		return c, errors.New("sync client: Token is required; issue one for this store at HQ")
	}
	if c.BatchMax < 0 || c.BatchAge < 0 || c.Poll < 0 || c.PullEvery < 0 || c.PullLimit < 0 ||
		c.Parallel < 0 || c.BackoffBase < 0 || c.BackoffMax < 0 || c.MaxRetryAfter < 0 || c.RequestTimeout < 0 {
		return c, errors.New("sync client: limits and durations must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchMax == 0 {
		c.BatchMax = 500
	}
	if c.PullLimit == 0 {
		c.PullLimit = 500
	}
	if c.Parallel == 0 {
		c.Parallel = 2
	}
	def(&c.BatchAge, 5*time.Second)
	def(&c.Poll, time.Second)
	def(&c.PullEvery, 30*time.Second)
	def(&c.BackoffBase, 500*time.Millisecond)
	def(&c.BackoffMax, time.Minute)
	def(&c.MaxRetryAfter, 10*time.Minute)
	def(&c.RequestTimeout, 30*time.Second)
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	return c, nil
}

// LoadTLS builds a TLS config from PEM files: caFile (empty: system roots)
// to verify HQ, and certFile+keyFile (both empty: none) for mutual TLS.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("sync client: read HQ CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sync client: %s holds no PEM certificate; give the CA that signed HQ's certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("sync client: mutual TLS needs both a client certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("sync client: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
