package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// apiFlags are the flags of every command that talks to the running agent.
type apiFlags struct {
	addr   string
	token  string
	json   bool
	cfgErr error
}

func (f *apiFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.addr, "api", "", "agent API base URL (default: http://<api.listen from the config>)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token (default: $POSAGENT_API_TOKEN, else the config's token or <data_dir>/api.token)")
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print the agent's JSON answer as is")
}

// apiClient calls the agent's local API.
type apiClient struct {
	base     string
	token    string
	tokenErr error // why no token was found; reported only if the agent asks for one
	http     *http.Client
}

func (g *globals) client(f *apiFlags) (*apiClient, error) {
	c := &apiClient{base: strings.TrimRight(f.addr, "/"), token: f.token, http: &http.Client{Timeout: 60 * time.Second}}
	if c.token == "" {
		c.token = os.Getenv("POSAGENT_API_TOKEN")
	}
	if c.base != "" && c.token != "" {
		return c, nil
	}
	cfg, err := g.load()
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%w: the config holds the API token and is readable by root and the posagent group only; run as a member of that group, or pass --api and --token", err)
		}
		return nil, err
	}
	if c.base == "" {
		c.base = "http://" + dialable(cfg.API.Listen)
	}
	if c.token == "" {
		c.token, c.tokenErr = cfg.APIToken()
	}
	return c, nil
}

// dialable turns a listen address into one a client can connect to
// (0.0.0.0:8420 → 127.0.0.1:8420).
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// apiError is an error answer from the agent.
type apiError struct {
	Status  int
	Code    string
	Message string
	Detail  string
}

func (e *apiError) Error() string {
	switch {
	case e.Code != "" && e.Detail != "":
		return fmt.Sprintf("%s (%s: %s)", e.Message, e.Code, e.Detail)
	case e.Code != "":
		return fmt.Sprintf("%s (%s)", e.Message, e.Code)
	}
	return e.Message
}

// errAgentDown is returned when nothing listens at the API address.
type errAgentDown struct {
	base string
	err  error
}

func (e *errAgentDown) Error() string {
	return fmt.Sprintf("the agent is not running at %s: start it with `posagent run` or `posagent service start` (%v)", e.base, e.err)
}

func (e *errAgentDown) Unwrap() error { return e.err }

// call sends body as JSON and returns the raw answer; out, when not nil,
// receives it decoded.
func (c *apiClient) call(ctx context.Context, method, path string, q url.Values, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("agent API address %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isConnRefused(err) {
			return nil, &errAgentDown{base: c.base, err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := decodeAPIError(resp.StatusCode, raw)
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			why := "no API token found"
			if c.tokenErr != nil {
				why += " (" + c.tokenErr.Error() + ")"
			}
			e.Message += "; " + why + ": pass --token or set POSAGENT_API_TOKEN (the agent keeps it in <data_dir>/api.token)"
		}
		return raw, e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// decodeAPIError reads {"error":{"code","message"}} or {"code","message"}
// and falls back to the body text.
func decodeAPIError(status int, raw []byte) *apiError {
	e := &apiError{Status: status}
	var nested struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Hint    string `json:"hint"`
		} `json:"error"`
	}
	var flat struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Hint    string `json:"hint"`
		Detail  string `json:"detail"`
	}
	switch {
	case json.Unmarshal(raw, &nested) == nil && nested.Error.Message != "":
		e.Code, e.Message = nested.Error.Code, nested.Error.Message
		if nested.Error.Hint != "" {
			e.Message += " — " + nested.Error.Hint
		}
	case json.Unmarshal(raw, &flat) == nil && flat.Message != "":
		e.Code, e.Message, e.Detail = flat.Code, flat.Message, flat.Detail
		if flat.Hint != "" {
			e.Message += " — " + flat.Hint
		}
	default:
		msg := strings.TrimSpace(string(raw))
		if msg == "" {
			msg = http.StatusText(status)
		}
		e.Message = fmt.Sprintf("agent answered %d: %s", status, msg)
	}
	return e
}

func isConnRefused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	// Windows reports WSAECONNREFUSED (10061) without mapping it to ECONNREFUSED.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && strings.Contains(strings.ToLower(op.Err.Error()), "refused")
}

// printJSON writes raw JSON indented.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		_, err = w.Write(raw)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}
