package hq_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/sync/hq"
)

// TestUnconfirmedSignUpsPurged: sign-ups never confirmed, and what a
// confirmed one leaves, are purged once their code is PendingMaxAge past
// expiry and the mobile's send window is over, not before: within the hour
// a mobile that used up its codes is still refused. The running HQ's own
// round purges as well. Both stores.
func TestUnconfirmedSignUpsPurged(t *testing.T) {
	for name, open := range fraudStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newEnrolEnvOn(t, open(t).(enrolStore), func(o *hq.EnrolOptions) {
				o.SendsPerMobile, o.PendingMaxAge, o.PurgeEvery = 2, 10*time.Minute, 10*time.Millisecond
			})
			t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			e.at(t0)
			qr := e.qr(hq.EnrolLink{Store: "S001"})
			c := e.client()
			const never, limited, joined = "13800000001", "13800000002", "13800000003"
			pending := func(mobile string) (p hq.Pending, found bool) {
				require.NoError(t, e.st.UpdatePending(ctx, mobile, func(got hq.Pending, f bool) (hq.Pending, bool, error) {
					p, found = got, f
					return got, !f, nil
				}))
				return p, found
			}
			code, b := e.send(c, qr, never, "未确认", "1990-05-17", true, "zh")
			require.Equal(t, http.StatusOK, code, b)
			oldCode := e.sms.code(never)
			for range 2 {
				code, b = e.send(c, qr, limited, "限额", "", true, "zh")
				require.Equal(t, http.StatusOK, code, b)
			}
			code, _ = e.send(c, qr, limited, "限额", "", true, "zh")
			require.Equal(t, http.StatusTooManyRequests, code)
			e.enrol(qr, joined, "已入会")
			p, found := pending(never)
			require.True(t, found)
			require.Equal(t, "未确认", p.Name)

			// Codes 25 minutes past expiry, but the hour's sends still count.
			e.at(t0.Add(30 * time.Minute))
			n, err := e.srv.PurgePending(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			code, _ = e.send(c, qr, limited, "限额", "", true, "zh")
			require.Equal(t, http.StatusTooManyRequests, code, "the limit still holds")

			e.at(t0.Add(61 * time.Minute))
			n, err = e.srv.PurgePending(ctx)
			require.NoError(t, err)
			require.Equal(t, 3, n)
			for _, m := range []string{never, limited, joined} {
				_, found = pending(m)
				require.False(t, found, m)
			}
			status, _, _ := e.verify(c, never, oldCode, "zh")
			require.Equal(t, http.StatusGone, status, "a purged sign-up's code is simply expired")
			code, b = e.send(c, qr, limited, "限额", "", true, "zh")
			require.Equal(t, http.StatusOK, code, b)

			// HQ's round: started as hq serve starts it, it purges the
			// new sign-up once it is stale.
			e.at(t0.Add(3 * time.Hour))
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); e.srv.RunPendingPurge(rctx) }()
			require.Eventually(t, func() bool {
				found := true
				err := e.st.UpdatePending(ctx, limited, func(got hq.Pending, f bool) (hq.Pending, bool, error) {
					found = f
					return got, !f, nil
				})
				return err == nil && !found
			}, 10*time.Second, 20*time.Millisecond)
			cancel()
			<-done
		})
	}
}
