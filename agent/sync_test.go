//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/sync/hq"
	"posagent/sync/hq/store/bolt"
)

// TestSyncWithHQ runs the agent against a real HQ server in-process: sales
// go up, HQ's member state comes back through the ledger adapter, and the
// stream tells the page the link is up.
func TestSyncWithHQ(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := hq.NewServer(st, hq.Options{})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)

	rn := startWith(t, func(c *config.Config) {
		c.HQ.URL, c.HQ.Token, c.HQ.BatchAge = ts.URL, tok, 10*time.Millisecond
	})
	s := rn.stream(t, "T1")
	var en api.EnrolResponse
	rn.post(t, "/v1/members", map[string]any{"enrol_id": "E1", "name": "张三", "mobile": "13800001111"}, &en)
	id := en.Member.Member.ID
	rn.post(t, "/v1/sales", map[string]any{"receipt_id": "R1", "member_id": id,
		"lines": []map[string]any{{"sku": "A", "qty": 1, "unit_price": 10000}}}, nil)

	// The sync now call uploads and pulls; afterwards nothing is pending and
	// HQ has confirmed the points.
	req, _ := http.NewRequest("POST", rn.base+"/v1/sync/now", nil)
	req.Header.Set("Authorization", "Bearer "+apiTok)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var out struct{ Summary api.SyncStatus }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, out.Summary.Configured)

	deadline := time.Now().Add(wait)
	for {
		var m api.MemberSummary
		rn.get(t, "/v1/members/"+id, &m)
		var ss api.SyncStatus
		var full struct{ Summary api.SyncStatus }
		rn.get(t, "/v1/sync/status", &full)
		ss = full.Summary
		if ss.Backlog == 0 && m.PointsPending == 0 && m.PointsConfirmed == m.Points && m.Points > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not synced: status %+v member %+v", ss, m)
		}
		// HQ's member state arrives with the next pull; ask for one.
		req, _ := http.NewRequest("POST", rn.base+"/v1/sync/now", nil)
		req.Header.Set("Authorization", "Bearer "+apiTok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}

	cur, err := rn.a.led.SyncCursor()
	require.NoError(t, err)
	require.NotEmpty(t, cur, "HQ's changes were pulled through the inbox adapter")

	// The page hears that the link is up.
	for {
		e := s.next(t, events.TypeSync)
		var ss api.SyncStatus
		require.NoError(t, json.Unmarshal(e.Data, &ss))
		if ss.Online {
			break
		}
	}
}
