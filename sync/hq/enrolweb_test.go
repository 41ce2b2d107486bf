package hq_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
	"posagent/sync/hq/store/pg"
)

// smsGateway is a fake of the chain's SMS gateway on loopback: it checks
// each request's signature, keeps the texts, and fails or stalls on demand.
type smsGateway struct {
	t      *testing.T
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	mode   string // "", "fail", "stall"
	texts  map[string][]string
}

func newSMSGateway(t *testing.T) *smsGateway {
	g := &smsGateway{t: t, secret: "gateway-secret", texts: map[string][]string{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, err := strconv.ParseInt(r.Header.Get("X-Posagent-Timestamp"), 10, 64)
		if err != nil || r.Header.Get("X-Posagent-Signature") != hq.SMSSignature(g.secret, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		g.mu.Lock()
		mode := g.mode
		g.mu.Unlock()
		switch mode {
		case "fail":
			http.Error(w, "carrier down", http.StatusBadGateway)
			return
		case "stall":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		var m hq.SMSMessage
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.texts[m.Mobile] = append(g.texts[m.Mobile], m.Text)
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *smsGateway) set(mode string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mode = mode
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// code is the one-time code in the last text sent to mobile.
func (g *smsGateway) code(mobile string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ts := g.texts[mobile]
	require.NotEmpty(g.t, ts, "no text sent to %s", mobile)
	m := codeRE.FindStringSubmatch(ts[len(ts)-1])
	require.NotNil(g.t, m, "no code in %q", ts[len(ts)-1])
	return m[1]
}

func (g *smsGateway) sent(mobile string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.texts[mobile])
}

// enrolStore is a store with everything self-enrolment needs.
type enrolStore interface {
	hq.Store
	hq.EnrolStore
	hq.FraudStore
}

type enrolEnv struct {
	t   *testing.T
	srv *hq.Server
	st  enrolStore
	url string
	sms *smsGateway
	key []byte
	// clock is HQ's time when set (at), else the real time.
	clock atomic.Pointer[time.Time]
}

// at sets HQ's clock.
func (e *enrolEnv) at(t time.Time) { e.clock.Store(&t) }

func newEnrolEnv(t *testing.T, tune func(*hq.EnrolOptions)) *enrolEnv {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "hq.db"), bolt.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return newEnrolEnvOn(t, st, tune)
}

func newEnrolEnvOn(t *testing.T, st enrolStore, tune func(*hq.EnrolOptions)) *enrolEnv {
	var err error
	e := &enrolEnv{t: t, st: st, sms: newSMSGateway(t), key: []byte("0123456789abcdef-enrol-key")}
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	e.url = ts.URL
	o := hq.EnrolOptions{PublicURL: ts.URL, Key: e.key, SMS: hq.SMSGateway{URL: e.sms.srv.URL, Secret: e.sms.secret, Timeout: 300 * time.Millisecond}}
	if tune != nil {
		tune(&o)
	}
	now := func() time.Time {
		if t := e.clock.Load(); t != nil {
			return *t
		}
		return time.Now()
	}
	e.srv = hq.NewServer(st, hq.Options{AdminToken: adminToken, Enrol: o, Now: now})
	mux.Handle("/", e.srv)
	_, err = e.srv.IssueCredential(context.Background(), hq.RoleStore, "S001", "Jing'an", "Asia/Shanghai")
	require.NoError(t, err)
	return e
}

func (e *enrolEnv) qr(l hq.EnrolLink) string {
	u, err := hq.EnrolURL(e.url, e.key, l)
	require.NoError(e.t, err)
	return u
}

// client is a phone without a browser: it follows redirects.
func (e *enrolEnv) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

func body(t *testing.T, resp *http.Response, err error) (int, string, string) {
	t.Helper()
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Request.URL.Path
}

// send posts the enrolment form of the QR link qrURL.
func (e *enrolEnv) send(c *http.Client, qrURL, mobile, name, birthday string, consent bool, lang string, hdr ...string) (int, string) {
	return e.sendForm(c, qrURL, mobile, name, birthday, consent, false, lang, hdr...)
}

func (e *enrolEnv) sendForm(c *http.Client, qrURL, mobile, name, birthday string, consent, messages bool, lang string, hdr ...string) (int, string) {
	u, _ := url.Parse(qrURL)
	f := u.Query()
	if messages {
		f.Set("messages", "yes")
	}
	f.Set("mobile", mobile)
	f.Set("name", name)
	f.Set("birthday", birthday)
	f.Set("lang", lang)
	if consent {
		f.Set("consent", "yes")
	}
	req, _ := http.NewRequest("POST", e.url+"/m/enrol", strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	code, b, _ := body(e.t, resp, err)
	return code, b
}

func (e *enrolEnv) verify(c *http.Client, mobile, code, lang string) (int, string, string) {
	resp, err := c.PostForm(e.url+"/m/enrol/verify", url.Values{"mobile": {mobile}, "code": {code}, "lang": {lang}})
	return body(e.t, resp, err)
}

// enrol walks the whole form and returns the card page's path.
func (e *enrolEnv) enrol(qrURL, mobile, name string) string {
	c := e.client()
	code, b := e.send(c, qrURL, mobile, name, "1990-05-17", true, "zh")
	require.Equal(e.t, http.StatusOK, code, b)
	status, b, path := e.verify(c, mobile, e.sms.code(mobile), "zh")
	require.Equal(e.t, http.StatusOK, status, b)
	require.True(e.t, strings.HasPrefix(path, "/m/card/"), path)
	return path
}

func (e *enrolEnv) memberOf(mobile string) string {
	facts, err := e.st.FraudRelated(context.Background(), []string{mobile}, nil)
	require.NoError(e.t, err)
	require.Len(e.t, facts, 1, "members with mobile %s", mobile)
	return facts[0].Member
}

// TestSelfEnrolmentFollowsTheTill: a self-enrolment writes, at the WEB
// till of the QR's store, exactly the entries a till writes for the same
// enrolment (with and without a referrer), the balances follow, and the
// member goes out in the changes feed to every store.
func TestSelfEnrolmentFollowsTheTill(t *testing.T) {
	testSelfEnrolmentFollowsTheTill(t, newEnrolEnv(t, nil))
}

// TestSelfEnrolmentOnPostgreSQL: the same on PostgreSQL, then a revoked
// card link there.
func TestSelfEnrolmentOnPostgreSQL(t *testing.T) {
	base := hqtest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, drop, err := pg.FreshSchema(ctx, base, "hqenrol_")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drop() })
	st, err := pg.Open(ctx, u, pg.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	e := newEnrolEnvOn(t, st, nil)
	testSelfEnrolmentFollowsTheTill(t, e)
	path := e.enrol(e.qr(hq.EnrolLink{Store: "S001"}), "13800001111", "张三") // enrolled: a new link
	n, err := e.srv.RevokeCardLinks(ctx, e.memberOf("13800001111"))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	resp, err := e.client().Get(e.url + path)
	status, _, _ := body(t, resp, err)
	require.Equal(t, http.StatusGone, status)
}

func testSelfEnrolmentFollowsTheTill(t *testing.T, e *enrolEnv) {
	ctx := context.Background()
	e.enrol(e.qr(hq.EnrolLink{Store: "S001", Cashier: "C07"}), "13800001111", "张三")
	a := e.memberOf("13800001111")
	require.Equal(t, "S001-WEB-1", a)
	e.enrol(e.qr(hq.EnrolLink{Store: "S001", Cashier: "C07", Referrer: a}), "13800002222", "李四")
	b := e.memberOf("13800002222")

	var got []entry.Entry
	require.NoError(t, e.st.Scan(ctx, func(s hq.Stored) error { got = append(got, s.Entry); return nil }))
	for _, g := range got {
		require.Equal(t, "S001", g.Store)
		require.Equal(t, hq.WebTill, g.Till)
		require.Equal(t, "C07", g.Cashier)
	}

	// The same two enrolments at a real till ledger.
	l, err := ledger.Open(filepath.Join(t.TempDir(), "till.db"), ledger.Options{Store: "S001", Till: hq.WebTill})
	require.NoError(t, err)
	defer l.Close()
	var want []entry.Entry
	for i, r := range []ledger.EnrolRequest{
		{Key: "web-13800001111", Cashier: "C07", Member: entry.Member{Name: "张三", Mobile: "13800001111", Birthday: "1990-05-17"}, At: got[0].At},
		{Key: "web-13800002222", Cashier: "C07", ReferrerID: a, Member: entry.Member{Name: "李四", Mobile: "13800002222", Birthday: "1990-05-17"}, At: got[2].At},
	} {
		es, err := l.Enrol(ctx, r)
		require.NoError(t, err, "till enrolment %d", i)
		for _, x := range es {
			want = append(want, *x)
		}
	}
	require.Equal(t, want, got)

	ma, err := e.st.Member(ctx, a)
	require.NoError(t, err)
	mb, err := e.st.Member(ctx, b)
	require.NoError(t, err)
	rp, np, _ := loyalty.DefaultProgram().ReferralBonus()
	require.Equal(t, rp, ma.Points)
	require.Equal(t, np, mb.Points)
	require.Len(t, mb.State().Coupons, 2) // welcome and referral
	require.Equal(t, "S001", e.mustWeb(b).Store)

	ch, err := e.st.Changes(ctx, "", 100)
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, m := range ch.Members {
		ids[m.Member.ID] = true
	}
	require.True(t, ids[a] && ids[b], "both members in the changes feed: %v", ids)
}

func (e *enrolEnv) mustWeb(m string) hq.WebEnrolment {
	w, err := e.st.WebEnrolment(context.Background(), m)
	require.NoError(e.t, err)
	require.False(e.t, w.ConsentAt.IsZero())
	return w
}

// TestSelfEnrolmentGatewayAndLimits: a gateway that fails or stalls
// leaves nothing behind and the customer can retry; codes are single use,
// limited in attempts; an enrolled mobile gets its member's card, not a
// second member; limits per mobile and per address answer clearly.
func TestSelfEnrolmentGatewayAndLimits(t *testing.T) {
	e := newEnrolEnv(t, func(o *hq.EnrolOptions) {
		o.SendsPerMobile, o.SendsPerAddr, o.MaxAttempts, o.ProxyHeader = 4, 8, 3, "X-Forwarded-For"
	})
	qr := e.qr(hq.EnrolLink{Store: "S001"})
	c := e.client()
	const mob = "13900003333"

	e.sms.set("fail")
	code, b := e.send(c, qr, mob, "王五", "", true, "zh")
	require.Equal(t, http.StatusBadGateway, code)
	require.Contains(t, b, "短信发送失败")
	require.Contains(t, b, `value="王五"`, "the form keeps what was typed")
	e.sms.set("stall")
	code, b = e.send(c, qr, mob, "王五", "", true, "en")
	require.Equal(t, http.StatusBadGateway, code)
	require.Contains(t, b, "could not be sent")
	// Nothing was created: no member, no code that works.
	facts, err := e.st.FraudRelated(context.Background(), []string{mob}, nil)
	require.NoError(t, err)
	require.Empty(t, facts)
	status, b, _ := e.verify(c, mob, "000000", "zh")
	require.Equal(t, http.StatusGone, status)
	require.Contains(t, b, "验证码已失效")

	e.sms.set("")
	code, b = e.send(c, qr, mob, "王五", "", true, "zh")
	require.Equal(t, http.StatusOK, code, b)
	// The code page leads back to the same QR's form.
	back := regexp.MustCompile(`href="([^"]+)" id="back"`).FindStringSubmatch(b)
	require.NotNil(t, back, b)
	resp, err := c.Get(e.url + html.UnescapeString(back[1]))
	status, page, _ := body(t, resp, err)
	require.Equal(t, http.StatusOK, status, page)
	require.Contains(t, page, `id="enrol"`)
	right := e.sms.code(mob)
	wrong := "999999"
	if right == wrong {
		wrong = "999998"
	}
	status, b, _ = e.verify(c, mob, wrong, "en")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, b, "not right")
	status, _, path := e.verify(c, mob, right, "zh")
	require.Equal(t, http.StatusOK, status)
	require.True(t, strings.HasPrefix(path, "/m/card/"))
	member := e.memberOf(mob)
	// Used once.
	status, _, _ = e.verify(c, mob, right, "zh")
	require.Equal(t, http.StatusGone, status)

	// The fourth code this hour is the last; then the limit answers.
	code, _ = e.send(c, qr, mob, "王五", "", true, "zh")
	require.Equal(t, http.StatusOK, code)
	// Three wrong codes void it, even before it expires.
	for i := range 3 {
		status, b, _ = e.verify(c, mob, wrong, "zh")
		if i < 2 {
			require.Equal(t, http.StatusBadRequest, status)
		} else {
			require.Equal(t, http.StatusGone, status)
			require.Contains(t, b, "输错次数过多")
		}
	}
	status, _, _ = e.verify(c, mob, e.sms.code(mob), "zh")
	require.Equal(t, http.StatusGone, status)
	code, b = e.send(c, qr, mob, "王五", "", true, "zh")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, b, "获取验证码次数过多")
	code, b = e.send(c, qr, mob, "王五", "", true, "en")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, b, "Too many codes were sent to this number")
	require.Equal(t, 2, e.sms.sent(mob))

	// An enrolled mobile confirmed again: the same member, a new link.
	const mob2 = "13700004444"
	first := e.enrol(qr, mob2, "赵六")
	again := e.enrol(qr, mob2, "赵六")
	require.NotEqual(t, first, again)
	require.Equal(t, e.memberOf(mob2), e.memberOf(mob2))
	require.NotEqual(t, member, e.memberOf(mob2))

	// Per address: behind the trusted proxy the header's last address
	// counts, so one client cannot pass by changing what it claims first.
	for i := range 20 {
		code, b = e.send(c, qr, "1360000"+strconv.Itoa(1000+i), "A", "", true, "en", "X-Forwarded-For", "10.9.9."+strconv.Itoa(i)+", 203.0.113.7")
		if code == http.StatusTooManyRequests {
			require.Contains(t, b, "Too many requests")
			require.Equal(t, 8, i)
			break
		}
		require.Equal(t, http.StatusOK, code, b)
		require.Less(t, i, 8, "the address limit never hit")
	}
	code, _ = e.send(c, qr, "13600009999", "A", "", true, "en", "X-Forwarded-For", "198.51.100.1")
	require.Equal(t, http.StatusOK, code, "another address has its own count")
}

// TestSelfEnrolmentRefusesBadInput: an edited QR, a missing consent, a
// bad mobile or birthday each get their own message and send nothing.
func TestSelfEnrolmentRefusesBadInput(t *testing.T) {
	e := newEnrolEnv(t, nil)
	c := e.client()
	qr := e.qr(hq.EnrolLink{Store: "S001", Cashier: "C07"})
	forged := strings.Replace(qr, "c=C07", "c=C08", 1)
	resp, err := c.Get(forged)
	status, b, _ := body(t, resp, err)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, b, "二维码无效")
	code, _ := e.send(c, forged, "13800001111", "A", "", true, "zh")
	require.Equal(t, http.StatusNotFound, code)
	for _, tc := range []struct {
		mobile, name, birthday string
		consent                bool
		want                   string
	}{
		{"1380000111", "A", "", true, "11 位手机号"},
		{"23800001111", "A", "", true, "11 位手机号"},
		{"13800001111", "", "", true, "请输入姓名"},
		{"13800001111", "A", "2999-01-01", true, "生日格式"},
		{"13800001111", "A", "1990-02-30", true, "生日格式"},
		{"13800001111", "A", "", false, "请勾选同意"},
	} {
		code, b := e.send(c, qr, tc.mobile, tc.name, tc.birthday, tc.consent, "zh")
		require.Equal(t, http.StatusBadRequest, code, tc)
		require.Contains(t, b, tc.want)
	}
	require.Equal(t, 0, e.sms.sent("13800001111"))
}

// TestCardLinkRevoke: a revoked link stops answering at once, page and
// code alike; a new link works.
func TestCardLinkRevoke(t *testing.T) {
	e := newEnrolEnv(t, nil)
	path := e.enrol(e.qr(hq.EnrolLink{Store: "S001"}), "13800001111", "张三")
	m := e.memberOf("13800001111")
	c := e.client()
	resp, err := c.Get(e.url + path + "/code")
	status, b, _ := body(t, resp, err)
	require.Equal(t, http.StatusOK, status, b)
	var mc hq.MemberCodeView
	require.NoError(t, json.Unmarshal([]byte(b), &mc))
	require.True(t, strings.HasPrefix(mc.Short, m+"-"), mc.Short)
	require.Contains(t, string(mc.SVG), "<svg")

	n, err := e.srv.RevokeCardLinks(context.Background(), m)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	for _, p := range []string{path, path + "/code"} {
		resp, err := c.Get(e.url + p)
		status, _, _ := body(t, resp, err)
		require.Equal(t, http.StatusGone, status, p)
	}
	tok, err := e.srv.IssueCardLink(context.Background(), m)
	require.NoError(t, err)
	resp, err = c.Get(e.url + "/m/card/" + tok + "?lang=en")
	status, b, _ = body(t, resp, err)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, b, "My member card")
}

// TestSelfEnrolmentMessageConsent: consent to member messages is asked
// apart from the personal data line, and recorded with the outbox only
// when given.
func TestSelfEnrolmentMessageConsent(t *testing.T) {
	e := newEnrolEnv(t, nil)
	ctx := context.Background()
	qr := e.qr(hq.EnrolLink{Store: "S001"})
	for _, tc := range []struct {
		mobile   string
		messages bool
		want     string
	}{{"13800001111", true, hq.ConsentGranted}, {"13800002222", false, ""}} {
		c := e.client()
		code, b := e.sendForm(c, qr, tc.mobile, "A", "", true, tc.messages, "zh")
		require.Equal(t, http.StatusOK, code, b)
		status, b, _ := e.verify(c, tc.mobile, e.sms.code(tc.mobile), "zh")
		require.Equal(t, http.StatusOK, status, b)
		m := e.memberOf(tc.mobile)
		got, err := e.st.(hq.Outbox).Consent(ctx, m)
		require.NoError(t, err)
		require.Equal(t, tc.want, got.Status, tc.mobile)
		require.Equal(t, tc.messages, e.mustWeb(m).Messages)
	}
}
