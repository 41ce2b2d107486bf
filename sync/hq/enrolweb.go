package hq

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// EnrolOptions configure self-enrolment and the card page (docs/enrolment.md).
// Without Key and an SMS gateway URL the pages say enrolment is off.
type EnrolOptions struct {
	// PublicURL is HQ's base URL as customers' phones reach it; card links
	// HQ prints are under it.
	PublicURL string
	// Key signs enrolment QR links (at least 16 bytes).
	Key []byte
	SMS SMSGateway
	// ProxyHeader names the header a trusted load balancer puts the client
	// address in (X-Forwarded-For: its last address; X-Real-IP). Empty: the
	// connection's address, and no header is believed.
	ProxyHeader string
	// CodeTTL is how long a one-time code is good [5m]; MaxAttempts wrong
	// codes void it [5].
	CodeTTL     time.Duration
	MaxAttempts int
	// Codes sent per mobile, and enrolment requests per client address,
	// within Window [5, 20, 1h].
	SendsPerMobile, SendsPerAddr int
	Window                       time.Duration
	// PendingMaxAge: a sign-up whose code expired this long ago, and whose
	// mobile's send window is over, is purged, every PurgeEvery, by each
	// running HQ [24h, 1h].
	PendingMaxAge time.Duration
	PurgeEvery    time.Duration
}

func (o *EnrolOptions) defaults() {
	if o.CodeTTL <= 0 {
		o.CodeTTL = 5 * time.Minute
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.SendsPerMobile <= 0 {
		o.SendsPerMobile = 5
	}
	if o.SendsPerAddr <= 0 {
		o.SendsPerAddr = 20
	}
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.PendingMaxAge <= 0 {
		o.PendingMaxAge = 24 * time.Hour
	}
	if o.PurgeEvery <= 0 {
		o.PurgeEvery = time.Hour
	}
}

// enrolState is the server's self-enrolment state.
type enrolState struct {
	addrs *windowLimiter
	// webMu serialises HQ's own writes to WEB tills (their sequence is
	// read, then written); Ingest's duplicate answer covers other HQ
	// processes.
	webMu sync.Mutex
}

//go:embed enrolweb/*.html
var enrolFS embed.FS

// missingkey=error: a text key missing from a language fails the page in
// tests instead of drawing an empty label.
var enrolPages = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	"fen":    entry.FormatFen,
	"divmin": func(secs int) int { return secs / 60 },
}).ParseFS(enrolFS, "enrolweb/*.html"))

// routesEnrol registers the customer pages (no login: the QR signature
// and the card link are the keys).
func (s *Server) routesEnrol() {
	s.o.Enrol.defaults()
	s.enrol = &enrolState{addrs: newWindowLimiter(s.o.Enrol.SendsPerAddr, s.o.Enrol.Window)}
	s.mux.HandleFunc("GET /m/enrol", s.handleEnrolForm)
	s.mux.HandleFunc("POST /m/enrol", s.handleEnrolSend)
	s.mux.HandleFunc("POST /m/enrol/verify", s.handleEnrolVerify)
	s.mux.HandleFunc("GET /m/card/{token}", s.handleCard)
	s.mux.HandleFunc("GET /m/card/{token}/code", s.handleCardCode)
	s.mux.HandleFunc("POST /admin/members/{id}/card-link", s.admin(s.handleCardLinkIssue))
	s.mux.HandleFunc("DELETE /admin/members/{id}/card-link", s.admin(s.handleCardLinkRevoke))
}

// custPage is what every customer page template gets.
type custPage struct {
	Lang  string
	T     map[string]string
	Title string
	// Error is a message shown above the form (already in Lang).
	Error string
	// Other is the URL of this page in the other language.
	Other string

	Link     EnrolLink
	Sig      string
	Form     enrolForm
	Consent  string
	Card     *cardView
	CodeSecs int
	// Back is the enrolment form the code page came from ("" unknown).
	Back string
}

// backQuery is the query of a back link the code page carried.
func backQuery(back string) url.Values {
	q, _ := url.ParseQuery(strings.TrimPrefix(back, "/m/enrol?"))
	return q
}

// backLink is the enrolment form of the QR link in q, when it is one.
func (s *Server) backLink(q url.Values, l string) string {
	link, ok := parseEnrolLink(s.o.Enrol.Key, q)
	if !ok {
		return ""
	}
	v := url.Values{"s": {link.Store}, "k": {q.Get("k")}, "lang": {l}}
	if link.Cashier != "" {
		v.Set("c", link.Cashier)
	}
	if link.Referrer != "" {
		v.Set("r", link.Referrer)
	}
	return "/m/enrol?" + v.Encode()
}

type enrolForm struct {
	Mobile, Name, Birthday string
	Consent                bool
	// Messages: the customer also agreed to member messages (optional).
	Messages bool
}

func lang(r *http.Request) string {
	if v := r.FormValue("lang"); v == "en" || v == "zh" {
		return v
	}
	return "zh"
}

func otherLang(r *http.Request, l string) string {
	q := r.URL.Query()
	if l == "zh" {
		q.Set("lang", "en")
	} else {
		q.Set("lang", "zh")
	}
	return r.URL.Path + "?" + q.Encode()
}

func (s *Server) render(w http.ResponseWriter, code int, name string, p custPage) {
	if p.T == nil {
		p.T = texts[p.Lang]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; connect-src 'self'; form-action 'self'")
	w.WriteHeader(code)
	if err := enrolPages.ExecuteTemplate(w, name, p); err != nil {
		s.o.Log.Error("customer page", "page", name, "err", err)
	}
}

// fail renders the message page with the text of key.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, key string) {
	l := lang(r)
	title := texts[l][key+"_title"]
	if title == "" {
		title = texts[l]["storage_title"]
	}
	other := ""
	if r.Method == http.MethodGet {
		other = otherLang(r, l)
	}
	s.render(w, code, "message.html", custPage{Lang: l, Title: title, Error: texts[l][key], Other: other})
}

func (s *Server) enrolOn() bool { return len(s.o.Enrol.Key) >= 16 && s.o.Enrol.SMS.URL != "" }

func (s *Server) handleEnrolForm(w http.ResponseWriter, r *http.Request) {
	if !s.enrolOn() {
		s.fail(w, r, http.StatusServiceUnavailable, "off")
		return
	}
	link, ok := parseEnrolLink(s.o.Enrol.Key, r.URL.Query())
	if !ok {
		s.fail(w, r, http.StatusNotFound, "bad_link")
		return
	}
	l := lang(r)
	s.render(w, http.StatusOK, "enrol.html", custPage{Lang: l, Title: texts[l]["enrol_title"], Other: otherLang(r, l),
		Link: link, Sig: r.URL.Query().Get("k"), Consent: texts[l]["consent"]})
}

// clientAddr is the address limits count: the connection's, or the one the
// configured trusted proxy header names.
func (s *Server) clientAddr(r *http.Request) string {
	if h := s.o.Enrol.ProxyHeader; h != "" {
		if v := r.Header.Values(h); len(v) > 0 {
			last := v[len(v)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a := strings.TrimSpace(last); a != "" {
				return a
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) handleEnrolSend(w http.ResponseWriter, r *http.Request) {
	if !s.enrolOn() {
		s.fail(w, r, http.StatusServiceUnavailable, "off")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "bad_form")
		return
	}
	link, ok := parseEnrolLink(s.o.Enrol.Key, r.PostForm)
	if !ok {
		s.fail(w, r, http.StatusNotFound, "bad_link")
		return
	}
	l := lang(r)
	now := s.o.Now()
	f := enrolForm{Mobile: strings.TrimSpace(r.PostFormValue("mobile")), Name: strings.TrimSpace(r.PostFormValue("name")),
		Birthday: strings.TrimSpace(r.PostFormValue("birthday")), Consent: r.PostFormValue("consent") == "yes",
		Messages: r.PostFormValue("messages") == "yes"}
	again := func(code int, key string) {
		s.render(w, code, "enrol.html", custPage{Lang: l, Title: texts[l]["enrol_title"], Error: texts[l][key], Other: otherLang(r, l),
			Link: link, Sig: r.PostFormValue("k"), Form: f, Consent: texts[l]["consent"]})
	}
	switch {
	case !ValidMobile(f.Mobile):
		again(http.StatusBadRequest, "bad_mobile")
		return
	case f.Name == "" || utf8.RuneCountInString(f.Name) > 40 || !utf8.ValidString(f.Name) || strings.ContainsAny(f.Name, "\x00\r\n\t<>"):
		again(http.StatusBadRequest, "bad_name")
		return
	case !ValidBirthday(f.Birthday, now.In(s.loc)):
		again(http.StatusBadRequest, "bad_birthday")
		return
	case !f.Consent:
		again(http.StatusBadRequest, "need_consent")
		return
	}
	if !s.enrol.addrs.allow(s.clientAddr(r), now) {
		again(http.StatusTooManyRequests, "limit_addr")
		return
	}
	es, err := s.enrolStore()
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "off")
		return
	}
	code, salt, hash, err := newOTP()
	if err != nil {
		again(http.StatusServiceUnavailable, "storage")
		return
	}
	errLimit := errors.New("mobile over its limit")
	o := s.o.Enrol
	err = es.UpdatePending(r.Context(), f.Mobile, func(p Pending, _ bool) (Pending, bool, error) {
		if now.Sub(p.WindowStart) >= o.Window || now.Before(p.WindowStart) {
			p.WindowStart, p.Sends = now.UTC(), 0
		}
		if p.Sends >= o.SendsPerMobile {
			return p, false, errLimit
		}
		p.Sends++
		p.Mobile, p.Name, p.Birthday, p.Lang = f.Mobile, f.Name, f.Birthday, l
		p.Store, p.Cashier, p.Referrer = link.Store, link.Cashier, link.Referrer
		p.ConsentAt, p.Messages = now.UTC(), f.Messages
		p.Salt, p.CodeHash, p.Expires, p.Attempts = salt, hash, now.Add(o.CodeTTL).UTC(), 0
		return p, false, nil
	})
	switch {
	case errors.Is(err, errLimit):
		again(http.StatusTooManyRequests, "limit_mobile")
		return
	case err != nil:
		s.o.Log.Error("enrolment code", "err", err)
		again(http.StatusServiceUnavailable, "storage")
		return
	}
	text := fmt.Sprintf(texts[l]["sms"], code, int(o.CodeTTL/time.Minute))
	if err := o.SMS.Send(r.Context(), SMSMessage{Mobile: f.Mobile, Text: text, Purpose: "enrol_code"}, now); err != nil {
		s.o.Log.Warn("SMS gateway", "mobile", loyalty.MaskMobile(f.Mobile), "err", err)
		// The code never reached the phone: void it (the send still counts).
		_ = es.UpdatePending(context.WithoutCancel(r.Context()), f.Mobile, func(p Pending, found bool) (Pending, bool, error) {
			p.CodeHash, p.Salt = "", ""
			return p, !found, nil
		})
		again(http.StatusBadGateway, "sms_failed")
		return
	}
	s.render(w, http.StatusOK, "verify.html", custPage{Lang: l, Title: texts[l]["verify_title"], Form: f,
		Back: s.backLink(r.PostForm, l), CodeSecs: int(o.CodeTTL / time.Second)})
}

func (s *Server) handleEnrolVerify(w http.ResponseWriter, r *http.Request) {
	if !s.enrolOn() {
		s.fail(w, r, http.StatusServiceUnavailable, "off")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "bad_form")
		return
	}
	l := lang(r)
	mobile, code := strings.TrimSpace(r.PostFormValue("mobile")), strings.TrimSpace(r.PostFormValue("code"))
	f := enrolForm{Mobile: mobile}
	again := func(status int, key string) {
		s.render(w, status, "verify.html", custPage{Lang: l, Title: texts[l]["verify_title"], Error: texts[l][key], Form: f,
			Back:     s.backLink(backQuery(r.PostFormValue("back")), l),
			CodeSecs: int(s.o.Enrol.CodeTTL / time.Second)})
	}
	if !ValidMobile(mobile) {
		s.fail(w, r, http.StatusBadRequest, "bad_mobile")
		return
	}
	es, err := s.enrolStore()
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "off")
		return
	}
	now := s.o.Now()
	var got Pending
	var why string
	err = es.UpdatePending(r.Context(), mobile, func(p Pending, found bool) (Pending, bool, error) {
		switch {
		case !found || p.CodeHash == "" || !now.Before(p.Expires):
			why = "code_expired"
			p.CodeHash = ""
			return p, !found, nil
		case p.Attempts >= s.o.Enrol.MaxAttempts:
			why = "code_attempts"
			p.CodeHash = ""
			return p, false, nil
		case !checkOTP(p, code):
			p.Attempts++
			why = "code_wrong"
			if p.Attempts >= s.o.Enrol.MaxAttempts {
				why, p.CodeHash = "code_attempts", ""
			}
			return p, false, nil
		}
		// Used once; what the form said goes, the send count stays.
		got = p
		return Pending{Mobile: p.Mobile, Sends: p.Sends, WindowStart: p.WindowStart}, false, nil
	})
	if err != nil {
		s.o.Log.Error("enrolment code check", "err", err)
		again(http.StatusServiceUnavailable, "storage")
		return
	}
	if why != "" {
		status := http.StatusBadRequest
		if why != "code_wrong" {
			status = http.StatusGone
		}
		again(status, why)
		return
	}
	member, err := s.enrolVerified(r.Context(), es, got, now)
	if err != nil {
		s.o.Log.Error("self-enrolment", "store", got.Store, "err", err)
		s.render(w, http.StatusServiceUnavailable, "message.html", custPage{Lang: l, Title: texts[l]["storage_title"], Error: texts[l]["enrol_failed"]})
		return
	}
	tok, err := s.IssueCardLink(r.Context(), member)
	if err != nil {
		s.o.Log.Error("card link", "member", member, "err", err)
		s.render(w, http.StatusServiceUnavailable, "message.html", custPage{Lang: l, Title: texts[l]["storage_title"], Error: texts[l]["enrol_failed"]})
		return
	}
	http.Redirect(w, r, "/m/card/"+tok+"?lang="+l, http.StatusSeeOther)
}

// enrolVerified enrols the customer whose mobile was just confirmed, or
// finds the member the mobile already belongs to; it returns the member id.
func (s *Server) enrolVerified(ctx context.Context, es EnrolStore, p Pending, now time.Time) (string, error) {
	if id, err := s.memberByMobile(ctx, p.Mobile); err != nil || id != "" {
		return id, err
	}
	progs, err := s.programs(ctx)
	if err != nil {
		return "", err
	}
	prog, err := progs.At(now)
	if err != nil {
		return "", err
	}
	ref := p.Referrer
	if ref != "" {
		if m, err := s.st.Member(ctx, ref); err != nil || m.Data == nil {
			s.o.Log.Warn("self-enrolment: referrer unknown, enrolled without referral", "referrer", ref, "err", err)
			ref = ""
		}
	}
	s.enrol.webMu.Lock()
	defer s.enrol.webMu.Unlock()
	// Again under the lock: two confirmations of one mobile at once make
	// one member.
	if id, err := s.memberByMobile(ctx, p.Mobile); err != nil || id != "" {
		return id, err
	}
	for range 8 {
		acked, err := s.st.TillAcked(ctx, p.Store, WebTill)
		if err != nil {
			return "", err
		}
		ents := EnrolEntries(prog, p.Store, WebTill, p.Cashier, "web-"+p.Mobile, entry.Member{Name: p.Name, Mobile: p.Mobile, Birthday: p.Birthday}, ref, now, acked+1)
		b := Batch{Store: p.Store, Till: WebTill, First: acked + 1, Last: acked + uint64(len(ents)), ReceivedAt: now.UTC()}
		for i := range ents {
			if err := ents[i].Validate(); err != nil {
				return "", fmt.Errorf("enrolment entry: %w", err)
			}
			b.Items = append(b.Items, Item{Seq: ents[i].Seq, Entry: &ents[i]})
		}
		ack, err := s.st.Ingest(ctx, b)
		var gap *GapError
		switch {
		case errors.As(err, &gap), err == nil && ack.Duplicate:
			continue // another HQ wrote this till meanwhile: number again
		case err != nil:
			return "", err
		case len(ack.DeadLettered) > 0:
			return "", fmt.Errorf("enrolment entries refused: %s", ack.DeadLettered[0].Reason)
		}
		id := ents[0].MemberID
		consent := texts[p.Lang]["consent"]
		if consent == "" {
			consent = texts["zh"]["consent"]
		}
		if err := es.AddWebEnrolment(ctx, WebEnrolment{Member: id, Mobile: p.Mobile, Store: p.Store, Cashier: p.Cashier,
			Referrer: ref, ConsentAt: p.ConsentAt, Consent: consent, Messages: p.Messages, At: now.UTC()}); err != nil {
			// The member exists; the consent record is retried by nobody,
			// so say so loudly.
			s.o.Log.Error("self-enrolment consent record", "member", id, "err", err)
		}
		if cs, ok := s.st.(consentSetter); ok && p.Messages {
			if err := cs.SetConsent(ctx, id, true, p.ConsentAt, "web:"+p.Store); err != nil {
				s.o.Log.Error("self-enrolment message consent", "member", id, "err", err)
			}
		}
		return id, nil
	}
	return "", errors.New("the store's WEB till kept moving; try again")
}

// consentSetter records consent to member messages (the outbox's).
type consentSetter interface {
	SetConsent(ctx context.Context, member string, granted bool, at time.Time, source string) error
}

// memberByMobile is the enrolled member with this mobile, "" for none.
func (s *Server) memberByMobile(ctx context.Context, mobile string) (string, error) {
	fs, ok := s.st.(FraudStore)
	if !ok {
		return "", errors.New("the storage cannot look members up by mobile")
	}
	facts, err := fs.FraudRelated(ctx, []string{mobile}, nil)
	if err != nil {
		return "", err
	}
	best := ""
	for _, f := range facts {
		if f.Mobile == mobile && f.Enrolled() && (best == "" || f.Member < best) {
			best = f.Member
		}
	}
	return best, nil
}

// programs are the published program versions, or the default program.
func (s *Server) programs(ctx context.Context) (loyalty.Programs, error) {
	vs, err := s.st.Programs(ctx)
	if err != nil {
		return nil, err
	}
	ps := loyalty.Programs{loyalty.DefaultProgram()}
	for _, v := range vs {
		p, err := loyalty.ParseProgram([]byte(v.Source))
		if err != nil {
			return nil, fmt.Errorf("published program v%d: %w", v.Version, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// cardHash is the stored form of a card link token.
func cardHash(tok string) string {
	h := sha256.Sum256([]byte("card\x00" + tok))
	return hex.EncodeToString(h[:])
}

// IssueCardLink makes a new link to the member's card page and returns its
// token (shown once; only its hash is kept). Earlier links keep working
// until revoked.
func (s *Server) IssueCardLink(ctx context.Context, member string) (string, error) {
	es, err := s.enrolStore()
	if err != nil {
		return "", err
	}
	if _, err := s.st.Member(ctx, member); err != nil {
		return "", fmt.Errorf("member %s: %w", member, err)
	}
	tok, err := newCardToken()
	if err != nil {
		return "", err
	}
	return tok, es.AddCardLink(ctx, CardLink{TokenHash: cardHash(tok), Member: member, CreatedAt: s.o.Now().UTC()})
}

// CardURL is the card page's address under the public base URL.
func (s *Server) CardURL(tok string) string {
	return strings.TrimRight(s.o.Enrol.PublicURL, "/") + "/m/card/" + url.PathEscape(tok)
}

// RevokeCardLinks makes every link to the member's card stop working.
func (s *Server) RevokeCardLinks(ctx context.Context, member string) (int, error) {
	es, err := s.enrolStore()
	if err != nil {
		return 0, err
	}
	return es.RevokeCardLinks(ctx, member, s.o.Now().UTC())
}

// CardLinkResult answers the card link admin endpoints.
type CardLinkResult struct {
	Member  string `json:"member"`
	URL     string `json:"url,omitempty"`
	Token   string `json:"token,omitempty"`
	Revoked int    `json:"revoked"`
}

func (s *Server) handleCardLinkIssue(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	tok, err := s.IssueCardLink(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no member "+id)
	case errors.Is(err, ErrNoEnrolStore):
		writeError(w, http.StatusNotImplemented, "unsupported", err.Error())
	case err != nil:
		s.o.Log.Error("card link", "member", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "issuing the link failed; try again")
	default:
		writeJSON(w, http.StatusOK, CardLinkResult{Member: id, Token: tok, URL: s.CardURL(tok)})
	}
}

func (s *Server) handleCardLinkRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := s.RevokeCardLinks(r.Context(), id)
	switch {
	case errors.Is(err, ErrNoEnrolStore):
		writeError(w, http.StatusNotImplemented, "unsupported", err.Error())
	case err != nil:
		s.o.Log.Error("card link revoke", "member", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "revoking failed; try again")
	default:
		writeJSON(w, http.StatusOK, CardLinkResult{Member: id, Revoked: n})
	}
}
