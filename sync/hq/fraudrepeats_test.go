package hq_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/wire"
)

// TestFraudReportMemberCodeRepeats: member codes used at a second till,
// claimed over HTTP at HQ clock times around the month's ends, show in
// the fraud report of the month HQ received them (HQ's time zone), per
// till of the second use and each with its first use, in JSON, text and
// HTML. Both stores.
func TestFraudReportMemberCodeRepeats(t *testing.T) {
	for name, open := range fraudStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			var clock atomic.Pointer[time.Time]
			e := fraudEnvAt(t, st, func() time.Time { return *clock.Load() })
			march := time.Date(2026, 3, 1, 0, 0, 0, 0, hqtest.Shanghai)
			clock.Store(&march)
			for _, id := range []string{"S1", "S2"} {
				tok, err := e.srv.IssueCredential(t.Context(), hq.RoleStore, id, "Store "+id, "Asia/Shanghai")
				require.NoError(t, err)
				e.store[id] = tok
			}
			claim := func(at time.Time, store, till, code string, late bool) bool {
				clock.Store(&at)
				body, err := json.Marshal(wire.MemberCodeClaims{Claims: []wire.MemberCodeClaim{{Code: code, Member: "M-" + code,
					Till: till, SeenAt: at.Add(-time.Second), Expires: at.Add(time.Minute), Late: late}}})
				require.NoError(t, err)
				status, b, _ := e.do("POST", wire.PathMemberCodeClaims, e.store[store], body, nil)
				require.Equal(t, http.StatusOK, status, string(b))
				var ans wire.MemberCodeClaimAnswer
				require.NoError(t, json.Unmarshal(b, &ans))
				return ans.Results[0].Repeat
			}
			april := march.AddDate(0, 1, 0)
			require.False(t, claim(march.Add(-time.Hour), "S1", "T1", "feb", false))
			require.True(t, claim(march.Add(-time.Second), "S2", "T2", "feb", false), "February's last second")
			require.False(t, claim(march.Add(-time.Minute), "S1", "T1", "a", false))
			require.True(t, claim(march, "S2", "T2", "a", true), "March's first instant")
			require.False(t, claim(march.Add(time.Hour), "S1", "T1", "b", false))
			require.True(t, claim(march.Add(2*time.Hour), "S2", "T2", "b", false))
			require.True(t, claim(april.Add(-time.Millisecond), "S1", "T3", "b", false), "March's last millisecond")
			require.False(t, claim(april.Add(-time.Minute), "S1", "T1", "apr", false))
			require.True(t, claim(april, "S2", "T2", "apr", false), "April's first instant")
			asOf := april.Add(time.Hour)
			clock.Store(&asOf)

			code, rep, body := fraudReport(t, e, adminToken, "month=2026-03")
			require.Equal(t, http.StatusOK, code, string(body))
			require.Equal(t, 3, rep.Repeats)
			require.Equal(t, []hq.FraudRepeatTill{
				{Store: "S1", Till: "T3", Repeats: 1, Late: 0, Members: 1},
				{Store: "S2", Till: "T2", Repeats: 2, Late: 1, Members: 2},
			}, rep.RepeatTills)
			var got []string
			for _, r := range rep.RepeatList {
				got = append(got, r.Code+"@"+r.Store+"/"+r.Till+" first "+r.FirstStore+"/"+r.FirstTill)
				require.Equal(t, "M-"+r.Code, r.Member)
			}
			sort.Strings(got)
			require.Equal(t, []string{"a@S2/T2 first S1/T1", "b@S1/T3 first S1/T1", "b@S2/T2 first S1/T1"}, got)
			require.True(t, rep.RepeatList[0].Late, "oldest first: a, received at March's first instant")
			require.True(t, rep.RepeatList[0].Received.Equal(march))

			for m, want := range map[string]string{"2026-02": "feb", "2026-04": "apr"} {
				_, other, _ := fraudReport(t, e, adminToken, "month="+m)
				require.Equal(t, 1, other.Repeats, m)
				require.Equal(t, want, other.RepeatList[0].Code, m)
			}
			_, none, _ := fraudReport(t, e, adminToken, "month=2026-05")
			require.Zero(t, none.Repeats)
			require.Empty(t, none.RepeatTills)

			for _, f := range []string{"text", "html"} {
				code, _, body := fraudReport(t, e, adminToken, "month=2026-03&format="+f)
				require.Equal(t, http.StatusOK, code)
				s := string(body)
				require.Contains(t, s, "second till", f)
				for _, w := range []string{"T3", "M-a", "M-b", "S1/T1"} {
					require.Contains(t, s, w, f)
				}
				require.NotContains(t, s, "M-feb", f)
				_, _, body = fraudReport(t, e, adminToken, "month=2026-05&format="+f)
				require.Contains(t, strings.ToLower(string(body)), "no member code used at a second till", f)
			}
		})
	}
}
