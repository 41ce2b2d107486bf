package hqcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"posagent/sync/hq"
	"posagent/sync/wire"
)

// ops is what the admin commands do, either on the store directly (a local
// bbolt file or PostgreSQL) or through a running HQ's admin API (needed for
// bbolt while hq serve holds the file).
type ops interface {
	addCred(ctx context.Context, role, id, name, tz string, rights []string) (string, error)
	revoke(ctx context.Context, role, id string) error
	creds(ctx context.Context) ([]hq.Credential, error)
	deadLetters(ctx context.Context, all bool) ([]hq.DeadLetter, error)
	retry(ctx context.Context, ids []string) (hq.RetryResult, error)
	recall(ctx context.Context, r hq.RecallRequest) (hq.RecallResult, error)
	publish(ctx context.Context, src []byte) (wire.ProgramVersion, error)
	kpi(ctx context.Context, month string) (*hq.KPIReport, error)
	export(ctx context.Context, cursor string, limit int) (wire.ExportPage, error)
	totals(ctx context.Context) (hq.Totals, error)
	flagged(ctx context.Context) ([]hq.Member, error)
	// review clears a member's flag; by names the reviewer on the storage
	// (through a running HQ the admin token does).
	review(ctx context.Context, id, by, note string) (hq.Member, error)
	close() error
}

type local struct {
	st  hq.Store
	srv *hq.Server
}

func (l *local) addCred(ctx context.Context, role, id, name, tz string, rights []string) (string, error) {
	return l.srv.IssueCredential(ctx, role, id, name, tz, rights...)
}
func (l *local) revoke(ctx context.Context, role, id string) error {
	return l.srv.Revoke(ctx, role, id)
}
func (l *local) creds(ctx context.Context) ([]hq.Credential, error) {
	return l.st.Credentials(ctx)
}
func (l *local) deadLetters(ctx context.Context, all bool) ([]hq.DeadLetter, error) {
	return l.st.DeadLetters(ctx, all)
}
func (l *local) retry(ctx context.Context, ids []string) (hq.RetryResult, error) {
	return l.srv.RetryDeadLetters(ctx, ids)
}
func (l *local) recall(ctx context.Context, r hq.RecallRequest) (hq.RecallResult, error) {
	return l.srv.IssueRecall(ctx, r)
}
func (l *local) publish(ctx context.Context, src []byte) (wire.ProgramVersion, error) {
	return l.srv.PublishProgram(ctx, src)
}
func (l *local) kpi(ctx context.Context, month string) (*hq.KPIReport, error) {
	return l.srv.KPIs(ctx, month)
}
func (l *local) export(ctx context.Context, cursor string, limit int) (wire.ExportPage, error) {
	return l.st.Export(ctx, cursor, limit)
}
func (l *local) totals(ctx context.Context) (hq.Totals, error) { return l.srv.Totals(ctx) }
func (l *local) flagged(ctx context.Context) ([]hq.Member, error) {
	return l.srv.FlaggedMembers(ctx)
}
func (l *local) review(ctx context.Context, id, by, note string) (hq.Member, error) {
	return l.srv.ReviewMember(ctx, id, by, note)
}
func (l *local) close() error { return l.st.Close() }

type remote struct {
	base, token string
	c           *http.Client
}

func (r *remote) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.c.Do(req)
	if err != nil {
		return fmt.Errorf("HQ at %s: %w", r.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var we wire.Error
		if json.Unmarshal(b, &we) == nil && we.Message != "" {
			return fmt.Errorf("HQ answered %s: %s", resp.Status, we.Message)
		}
		return fmt.Errorf("HQ answered %s", resp.Status)
	}
	if s, ok := out.(*[]byte); ok {
		*s = b
		return nil
	}
	return json.Unmarshal(b, out)
}

func (r *remote) addCred(ctx context.Context, role, id, name, tz string, rights []string) (string, error) {
	body, _ := json.Marshal(hq.StoreRequest{ID: id, Name: name, TimeZone: tz, Role: role, Rights: rights})
	var out map[string]string
	err := r.call(ctx, "POST", "/admin/stores", body, &out)
	return out["token"], err
}
func (r *remote) revoke(ctx context.Context, role, id string) error {
	var out map[string]string
	return r.call(ctx, "DELETE", "/admin/stores/"+url.PathEscape(id)+"?role="+url.QueryEscape(role), nil, &out)
}
func (r *remote) creds(ctx context.Context) ([]hq.Credential, error) {
	var out []hq.Credential
	return out, r.call(ctx, "GET", "/admin/stores", nil, &out)
}
func (r *remote) deadLetters(ctx context.Context, all bool) ([]hq.DeadLetter, error) {
	var out []hq.DeadLetter
	q := ""
	if all {
		q = "?all=1"
	}
	return out, r.call(ctx, "GET", "/admin/deadletters"+q, nil, &out)
}
func (r *remote) retry(ctx context.Context, ids []string) (hq.RetryResult, error) {
	body, _ := json.Marshal(hq.RetryRequest{IDs: ids})
	var out hq.RetryResult
	return out, r.call(ctx, "POST", "/admin/deadletters/retry", body, &out)
}
func (r *remote) recall(ctx context.Context, req hq.RecallRequest) (hq.RecallResult, error) {
	body, _ := json.Marshal(req)
	var out hq.RecallResult
	return out, r.call(ctx, "POST", "/admin/coupons/recall", body, &out)
}
func (r *remote) publish(ctx context.Context, src []byte) (wire.ProgramVersion, error) {
	var out wire.ProgramVersion
	return out, r.call(ctx, "POST", "/admin/programs", src, &out)
}
func (r *remote) kpi(ctx context.Context, month string) (*hq.KPIReport, error) {
	var out hq.KPIReport
	return &out, r.call(ctx, "GET", "/kpi?format=json&month="+url.QueryEscape(month), nil, &out)
}
func (r *remote) export(ctx context.Context, cursor string, limit int) (wire.ExportPage, error) {
	var out wire.ExportPage
	return out, r.call(ctx, "GET", fmt.Sprintf("%s?limit=%d&cursor=%s", wire.PathExport, limit, url.QueryEscape(cursor)), nil, &out)
}
func (r *remote) totals(ctx context.Context) (hq.Totals, error) {
	var out hq.Totals
	return out, r.call(ctx, "GET", "/admin/totals", nil, &out)
}
func (r *remote) flagged(ctx context.Context) ([]hq.Member, error) {
	var out []hq.Member
	return out, r.call(ctx, "GET", "/admin/members?flagged=true", nil, &out)
}
func (r *remote) review(ctx context.Context, id, by, note string) (hq.Member, error) {
	if by != "" {
		return hq.Member{}, errors.New("--by names the reviewer on the storage; through --url the admin token does")
	}
	body, _ := json.Marshal(hq.ReviewRequest{Note: note})
	var out hq.Member
	return out, r.call(ctx, "POST", "/admin/members/"+url.PathEscape(id)+"/review", body, &out)
}
func (r *remote) close() error { r.c.CloseIdleConnections(); return nil }

func newRemote(base, token string, tlsCfg *http.Transport) *remote {
	c := &http.Client{Timeout: 5 * time.Minute}
	if tlsCfg != nil {
		c.Transport = tlsCfg
	}
	return &remote{base: base, token: token, c: c}
}
