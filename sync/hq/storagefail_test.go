package hq_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/wire"
)

// failingStore fails the KPI reads or the credential lookup on demand.
type failingStore struct {
	hq.Store
	rows, creds atomic.Bool
}

var errDiskGone = errors.New("disk gone")

func (f *failingStore) AggRows(ctx context.Context, months bool, from, to hq.Day, scopes ...string) ([]hq.AggRow, error) {
	if f.rows.Load() {
		return nil, errDiskGone
	}
	return f.Store.AggRows(ctx, months, from, to, scopes...)
}

func (f *failingStore) CredentialByHash(ctx context.Context, hash string) (hq.Credential, error) {
	if f.creds.Load() {
		return hq.Credential{}, errDiskGone
	}
	return f.Store.CredentialByHash(ctx, hash)
}

// TestStorageFailuresAnswer503: a report or a credential check that storage
// fails is HQ's failure, answered 503 `storage` (retry), never 400 (the
// caller's fault) or `unauthorized` (re-issue the token); a bad month stays
// 400 and names the format.
func TestStorageFailuresAnswer503(t *testing.T) {
	var fs *failingStore
	e := newEnv(t, hq.Options{}, func(s hq.Store) hq.Store { fs = &failingStore{Store: s}; return fs })
	tok := e.store["S1"]

	code, body, _ := e.do("GET", "/kpi?month=March", adminToken, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
	var we wire.Error
	require.NoError(t, json.Unmarshal(body, &we))
	require.Equal(t, "bad_request", we.Code)
	require.Contains(t, we.Message, "want YYYY-MM")

	fs.rows.Store(true)
	code, body, _ = e.do("GET", "/kpi?month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, string(body))
	require.NoError(t, json.Unmarshal(body, &we))
	require.Equal(t, "storage", we.Code)
	require.NotContains(t, we.Message, "disk gone", "storage detail goes to HQ's log, not the caller")
	fs.rows.Store(false)

	fs.creds.Store(true)
	code, body, _ = e.do("GET", wire.PathChanges, tok, nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, code, string(body))
	require.NoError(t, json.Unmarshal(body, &we))
	require.Equal(t, "storage", we.Code)
	fs.creds.Store(false)

	code, _, _ = e.do("GET", "/kpi?month=2026-03", adminToken, nil, nil)
	require.Equal(t, http.StatusOK, code)
}
