package hqcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/gateway"
	"posagent/sync/hq/gateway/gatewaytest"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/messages"
	"posagent/sync/hq/store/bolt"
)

// hq serve delivers the outbox to the gateway; the CLI records consent,
// lists dead messages and retries them; the gateway's opt-out callback is
// taken only signed.
func TestServeDeliversMessages(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	secret := "cli-test-secret-0123456789"
	t.Setenv("HQ_GATEWAY_SECRET", secret)

	_, _, err := run(t, "members", "consent", "M1", "M2", "--db", db, "--at", "2026-03-01T09:00:00+08:00", "--source", "store:S1")
	require.NoError(t, err)
	out, _, err := run(t, "member", "opt-out", "M2", "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "M2: opted_out since")
	_, _, err = run(t, "members", "consent", "M1", "--db", db, "--at", "yesterday")
	require.ErrorContains(t, err, "RFC 3339")

	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	now := time.Now().Add(-time.Minute)
	require.NoError(t, st.Enqueue(context.Background(), []messages.Message{
		hqtest.Msg("ok/M1", "M1", now), hqtest.Msg("bad/M1", "M1", now), hqtest.Msg("ok/M2", "M2", now), hqtest.Msg("ok/M3", "M3", now),
	}))
	require.NoError(t, st.Close())

	var refuse atomic.Bool
	refuse.Store(true)
	gw := gatewaytest.New([]byte(secret), nil, func(id string, n int) gatewaytest.Action {
		if id == "bad/M1" && refuse.Load() {
			return gatewaytest.Action{Status: 422}
		}
		return gatewaytest.Action{}
	})
	t.Cleanup(gw.Close)
	url, stop := serve(t, db, "--gateway-url", gw.URL, "--quiet-hours", "off")

	hqtest.Eventually(t, "the first message", func() bool { return gw.Stats().Taken == 1 })
	hqtest.Eventually(t, "the dead letter", func() bool {
		out, _, err := run(t, "messages", "list", "--dead", "--url", url, "--token", "boot")
		return err == nil && bytes.Contains([]byte(out), []byte("bad/M1"))
	})
	out, _, err = run(t, "messages", "list", "--dead", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "422")
	out, _, err = run(t, "messages", "list", "--member", "M1", "--json", "--url", url, "--token", "boot")
	require.NoError(t, err)
	var ms []hq.OutboxMessage
	require.NoError(t, json.Unmarshal([]byte(out), &ms))
	require.Len(t, ms, 2)
	require.Equal(t, "138****0000", ms[0].To, "the mobile is masked without the pii right")

	_, _, err = run(t, "messages", "retry", "--url", url, "--token", "boot")
	require.ErrorContains(t, err, "--all-dead")
	_, _, err = run(t, "messages", "retry", "nope", "--url", url, "--token", "boot")
	require.ErrorContains(t, err, "not dead or unknown: nope")
	refuse.Store(false)
	out, _, err = run(t, "messages", "retry", "--all-dead", "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "1 message(s) back")
	hqtest.Eventually(t, "the retried message", func() bool { return gw.Stats().Taken == 2 })
	var ids []string
	for _, r := range gw.Taken() {
		ids = append(ids, r.ID)
	}
	require.Equal(t, []string{"bad/M1", "ok/M1"}, ids, "nothing for M2 (opted out) or M3 (no consent)")

	// The gateway reports an opt-out: signed it is taken, else refused.
	body, _ := json.Marshal(gateway.OptOut{Member: "M1", At: time.Now().UTC(), Source: "sms reply TD"})
	post := func(sign []byte) int {
		req, err := http.NewRequest("POST", url+"/gateway/opt-out", bytes.NewReader(body))
		require.NoError(t, err)
		if sign != nil {
			gateway.SetHeaders(req.Header, sign, time.Now(), body)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, post(nil))
	require.Equal(t, http.StatusUnauthorized, post([]byte("not-the-secret-at-all")))
	require.Equal(t, http.StatusOK, post([]byte(secret)))
	req, _ := http.NewRequest("GET", url+"/admin/members/M1/consent", nil)
	req.Header.Set("Authorization", "Bearer boot")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var cons hq.Consent
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&cons))
	resp.Body.Close()
	require.Equal(t, hq.ConsentOptedOut, cons.Status)
	require.Equal(t, "sms reply TD", cons.Source)
	stop()
}
