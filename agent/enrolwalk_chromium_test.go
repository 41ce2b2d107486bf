//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"posagent/agent/events"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/membercode"
)

// TestPhoneEnrolmentToTheTill is the whole walk of a member without a
// plastic card: a phone (Chromium, 390×844) scans the store's enrolment
// QR, joins on HQ's page with the code from the SMS gateway, and shows the
// card page's member code; the code decoded from the page's own drawing is
// written to the QR scanner (a pty) of a real agent synced to that HQ, and
// the till identifies the new member; the same code at a till of another
// store is answered as a repeat.
func TestPhoneEnrolmentToTheTill(t *testing.T) {
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)))

	// The SMS gateway: checks the signature, keeps the texts.
	var mu sync.Mutex
	texts := map[string]string{}
	const secret = "gateway-secret"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get("X-Posagent-Timestamp"), 10, 64)
		if r.Header.Get("X-Posagent-Signature") != hq.SMSSignature(secret, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m hq.SMSMessage
		_ = json.Unmarshal(body, &m)
		mu.Lock()
		texts[m.Mobile] = m.Text
		mu.Unlock()
	}))
	t.Cleanup(gw.Close)

	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	hts := httptest.NewServer(mux)
	t.Cleanup(hts.Close)
	key := []byte("enrolment-key-of-the-chain-0123")
	srv := hq.NewServer(st, hq.Options{Enrol: hq.EnrolOptions{PublicURL: hts.URL, Key: key,
		SMS: hq.SMSGateway{URL: gw.URL, Secret: secret, Timeout: 2 * time.Second}}})
	mux.Handle("/", srv)
	tok, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S1", "Store S1", "Asia/Shanghai")
	require.NoError(t, err)

	// The phone joins.
	const mob = "13655557777"
	qr, err := hq.EnrolURL(hts.URL, key, hq.EnrolLink{Store: "S1", Cashier: "C07"})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(qr),
		chromedp.WaitVisible(chromedp.CSS(`#mobile`)),
		chromedp.SetValue(chromedp.CSS(`#mobile`), mob),
		chromedp.SetValue(chromedp.CSS(`#name`), "周晓"),
		chromedp.Click(chromedp.CSS(`#consent`)),
		chromedp.Click(chromedp.CSS(`#send`)),
		chromedp.WaitVisible(chromedp.CSS(`#code`)),
	))
	mu.Lock()
	otp := regexp.MustCompile(`\d{6}`).FindString(texts[mob])
	mu.Unlock()
	require.NotEmpty(t, otp, "no code reached the gateway")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#code`), otp),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		chromedp.WaitVisible(chromedp.CSS(`#qr svg`)),
	))
	facts, err := st.FraudRelated(context.Background(), []string{mob}, nil)
	require.NoError(t, err)
	require.Len(t, facts, 1)
	member := facts[0].Member

	// The till of S1 syncs the new member and HQ's keys.
	rn, r := startQRTill(t, hts.URL, tok, "S1", "T1", nil, member)
	s := rn.stream(t, "T1")

	// The code as the phone shows it, read by a real decoder, scanned.
	var code string
	for try := 0; ; try++ { // a screenshot taken while the page swaps in a fresh code may not decode
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(`#qr svg`)))
		require.NoError(t, err)
		if code, err = hqtest.DecodeQR(png); err == nil || try == 4 {
			require.NoError(t, err, "reading the member code's QR from the page")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.write(t, code+"\r")
	e := s.next(t, events.TypeMember, events.TypeMemberCodeExpired, events.TypeMemberCodeForeign, events.TypeMemberCodeRepeat, events.TypeReadError)
	require.Equal(t, events.TypeMember, e.Type, string(e.Data))
	var me MemberEvent
	require.NoError(t, json.Unmarshal(e.Data, &me))
	require.Equal(t, member, me.Member.Member.ID)
	require.Equal(t, "周晓", me.Member.Member.Name)
	require.Equal(t, "member_code", me.Kind, fmt.Sprintf("%+v", me))

	// A screenshot of it at a till of another store: the repeat answer.
	tok2, err := srv.IssueCredential(context.Background(), hq.RoleStore, "S2", "Store S2", "Asia/Shanghai")
	require.NoError(t, err)
	rn2, r2 := startQRTill(t, hts.URL, tok2, "S2", "T5", nil, member)
	s2 := rn2.stream(t, "T5")
	r2.write(t, code+"\r")
	e = s2.next(t, events.TypeMember, events.TypeMemberCodeExpired, events.TypeMemberCodeForeign, events.TypeMemberCodeRepeat, events.TypeReadError)
	require.Equal(t, events.TypeMemberCodeRepeat, e.Type, string(e.Data))

	// The same screenshot once its lifetime is over (and the clock
	// allowance with it): the till answers that it has expired.
	p, err := membercode.Parse(code)
	require.NoError(t, err)
	over := membercode.StepStart(p.Step).Add(membercode.Lifetime + membercode.Skew + time.Second)
	t.Logf("waiting %s for the code to expire", time.Until(over).Round(time.Second))
	time.Sleep(time.Until(over))
	r.write(t, code+"\r")
	e = s.next(t, events.TypeMember, events.TypeMemberCodeExpired, events.TypeMemberCodeForeign, events.TypeMemberCodeRepeat, events.TypeReadError)
	require.Equal(t, events.TypeMemberCodeExpired, e.Type, string(e.Data))
}
