package hq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"posagent/sync/hq/gateway"
)

// Admin operations and endpoints of the message outbox and of members'
// consent, and the gateway's opt-out callback.

func (s *Server) outbox() (Outbox, error) {
	ob, ok := s.st.(Outbox)
	if !ok {
		return nil, ErrNoOutbox
	}
	return ob, nil
}

func (s *Server) outboxRoutes() {
	s.mux.HandleFunc("GET /admin/messages", s.adminAs(s.handleMessages))
	s.mux.HandleFunc("POST /admin/messages/retry", s.admin(s.handleMessageRetry))
	s.mux.HandleFunc("POST /admin/members/{id}/consent", s.adminAs(s.handleConsent))
	s.mux.HandleFunc("GET /admin/members/{id}/consent", s.admin(s.handleConsentGet))
	s.mux.HandleFunc("POST /gateway/opt-out", s.handleGatewayOptOut)
}

// OutboxMessages lists messages; personal data (the mobile) is masked
// unless pii.
func (s *Server) OutboxMessages(ctx context.Context, f OutboxFilter, pii bool) ([]OutboxMessage, error) {
	ob, err := s.outbox()
	if err != nil {
		return nil, err
	}
	switch f.Status {
	case "", MsgPending, MsgSent, MsgDead, MsgSuppressed:
	default:
		return nil, badRequest(fmt.Errorf("no message status %q; use pending, sent, dead or suppressed", f.Status))
	}
	ms, err := ob.Messages(ctx, f)
	if err != nil {
		return nil, err
	}
	if !pii {
		for i := range ms {
			ms[i].To = maskMiddle(ms[i].To, 3, 4)
		}
	}
	if ms == nil {
		ms = []OutboxMessage{}
	}
	return ms, nil
}

// MessageRetryRequest puts dead messages back: the ids, or every dead one.
type MessageRetryRequest struct {
	IDs     []string `json:"ids,omitempty"`
	AllDead bool     `json:"all_dead,omitempty"`
}

// MessageRetryResult says which went back and which were not dead.
type MessageRetryResult struct {
	Retried  []string `json:"retried"`
	NotFound []string `json:"not_found,omitempty"`
}

// RetryMessages puts dead messages back in the outbox, due at once.
func (s *Server) RetryMessages(ctx context.Context, r MessageRetryRequest) (MessageRetryResult, error) {
	res := MessageRetryResult{Retried: []string{}}
	ob, err := s.outbox()
	if err != nil {
		return res, err
	}
	if r.AllDead == (len(r.IDs) > 0) {
		return res, badRequest(errors.New("name the dead messages to retry, or all of them (--all-dead)"))
	}
	ids := r.IDs
	if r.AllDead {
		// Page through the dead list; each round empties what it read.
		for range 10000 {
			dead, err := ob.Messages(ctx, OutboxFilter{Status: MsgDead, Limit: 500})
			if err != nil {
				return res, err
			}
			if len(dead) == 0 {
				return res, nil
			}
			for _, m := range dead {
				if err := ob.RetryMessage(ctx, m.ID); err != nil && !errors.Is(err, ErrNotFound) {
					return res, err
				}
				res.Retried = append(res.Retried, m.ID)
			}
		}
		return res, nil
	}
	for _, id := range ids {
		err := ob.RetryMessage(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			res.NotFound = append(res.NotFound, id)
		case err != nil:
			return res, err
		default:
			res.Retried = append(res.Retried, id)
		}
	}
	return res, nil
}

// ConsentRequest records a member's consent: granted, withdrawn
// (granted false) or opted out. At defaults to now.
type ConsentRequest struct {
	Granted bool      `json:"granted"`
	OptOut  bool      `json:"opt_out,omitempty"`
	At      time.Time `json:"at,omitzero"`
	Source  string    `json:"source,omitempty"`
}

// RecordConsent applies r to member and returns the consent as it stands.
func (s *Server) RecordConsent(ctx context.Context, member string, r ConsentRequest) (Consent, error) {
	ob, err := s.outbox()
	if err != nil {
		return Consent{}, err
	}
	if r.At.IsZero() {
		r.At = s.o.Now().UTC()
	}
	if r.OptOut && r.Granted {
		return Consent{}, badRequest(errors.New("a consent is granted or opted out, not both"))
	}
	if err := CheckConsent(member, r.At); err != nil {
		return Consent{}, badRequest(err)
	}
	if r.OptOut {
		err = ob.OptOut(ctx, member, r.At, r.Source)
	} else {
		err = ob.SetConsent(ctx, member, r.Granted, r.At, r.Source)
	}
	if err != nil {
		return Consent{}, err
	}
	return ob.Consent(ctx, member)
}

// MemberConsent is the member's consent as it stands.
func (s *Server) MemberConsent(ctx context.Context, member string) (Consent, error) {
	ob, err := s.outbox()
	if err != nil {
		return Consent{}, err
	}
	return ob.Consent(ctx, member)
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request, c Credential) {
	q := r.URL.Query()
	f := OutboxFilter{Status: q.Get("status"), Member: q.Get("member")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 10000 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1..10000")
			return
		}
		f.Limit = n
	}
	ms, err := s.OutboxMessages(r.Context(), f, c.Has(RightPII))
	s.answerOutbox(w, ms, err)
}

// answerOutbox writes v, or the error with its status.
func (s *Server) answerOutbox(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, ErrNoOutbox):
		writeError(w, http.StatusNotImplemented, "no_outbox", err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, errBadOutboxRequest):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case err != nil:
		s.o.Log.Warn("outbox request failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// errBadOutboxRequest marks errors of the request itself (400), not of
// storage (503).
var errBadOutboxRequest = errors.New("bad request")

func badRequest(err error) error { return fmt.Errorf("%w: %w", errBadOutboxRequest, err) }

func (s *Server) handleMessageRetry(w http.ResponseWriter, r *http.Request) {
	var req MessageRetryRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"ids":["…"]} or {"all_dead":true}: `+err.Error())
		return
	}
	if req.AllDead == (len(req.IDs) > 0) {
		writeError(w, http.StatusBadRequest, "bad_request", `send {"ids":["…"]} or {"all_dead":true}`)
		return
	}
	res, err := s.RetryMessages(r.Context(), req)
	s.answerOutbox(w, res, err)
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request, c Credential) {
	var req ConsentRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"granted":true|false} or {"opt_out":true}, with "at" (RFC 3339) and "source" if known: `+err.Error())
		return
	}
	if req.Source == "" {
		req.Source = "hq:" + c.ID
	}
	if req.At.After(s.o.Now().Add(5 * time.Minute)) {
		writeError(w, http.StatusBadRequest, "bad_request", "at lies in the future; send when the member decided")
		return
	}
	cons, err := s.RecordConsent(r.Context(), r.PathValue("id"), req)
	s.answerOutbox(w, cons, err)
}

func (s *Server) handleConsentGet(w http.ResponseWriter, r *http.Request) {
	cons, err := s.MemberConsent(r.Context(), r.PathValue("id"))
	s.answerOutbox(w, cons, err)
}

// handleGatewayOptOut takes the gateway's report that a member opted out
// (e.g. replied TD to an SMS). It is signed like HQ's deliveries, with the
// same secret; unsigned, stale or forged requests get 401.
func (s *Server) handleGatewayOptOut(w http.ResponseWriter, r *http.Request) {
	if len(s.o.GatewaySecret) == 0 {
		// No secret: no signature can be good.
		writeError(w, http.StatusUnauthorized, "unauthorized", "this HQ has no gateway secret (hq serve --gateway-secret-file or HQ_GATEWAY_SECRET)")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	if err := gateway.Verify(s.o.GatewaySecret, r.Header, body, s.o.Now(), 0); err != nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	var o gateway.OptOut
	if err := json.Unmarshal(body, &o); err != nil || o.Member == "" {
		writeError(w, http.StatusBadRequest, "bad_body", `send {"member":"…","at":"RFC 3339","source":"…"}`)
		return
	}
	if o.At.IsZero() || o.At.After(s.o.Now().Add(5*time.Minute)) {
		o.At = s.o.Now().UTC()
	}
	if o.Source == "" {
		o.Source = "gateway"
	}
	cons, err := s.RecordConsent(r.Context(), o.Member, ConsentRequest{OptOut: true, At: o.At, Source: o.Source})
	s.answerOutbox(w, cons, err)
}
