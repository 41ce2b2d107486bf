package api

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"posagent/agent/config"
	"posagent/devices/decode"
	"posagent/devices/token"
	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// MemberSummary is what the POS and the cashier see of a member. The
// mobile number is masked; card numbers never appear.
type MemberSummary struct {
	Member          MemberInfo `json:"member"`
	Tier            string     `json:"tier"`
	TierNameZH      string     `json:"tier_name_zh,omitempty"`
	TierNameEN      string     `json:"tier_name_en,omitempty"`
	Points          int64      `json:"points"`           // available now
	PointsConfirmed int64      `json:"points_confirmed"` // as last confirmed by HQ
	PointsPending   int64      `json:"points_pending"`   // local changes not yet confirmed
	StoredValue     int64      `json:"stored_value"`     // fen
	Coupons         []Coupon   `json:"coupons"`          // usable now
	State           string     `json:"state"`            // active | at_risk | dormant
	LastSale        string     `json:"last_sale,omitempty"`
	MaskedMobile    string     `json:"masked_mobile,omitempty"`
	// Negative is set when a refund took back points already spent: the
	// member owes points, and the cashier should say so.
	Negative bool `json:"negative,omitempty"`
}

// MemberInfo is the member's own data as shown at the till: no mobile
// number (see MaskedMobile), no card tokens.
type MemberInfo struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Tier       string `json:"tier"`
	ReferrerID string `json:"referrer_id,omitempty"`
	EnrolledAt string `json:"enrolled_at,omitempty"`
}

// Coupon is a usable coupon of a member.
type Coupon struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Threshold  int64    `json:"threshold"`
	Value      int64    `json:"value"`
	SKUs       []string `json:"skus,omitempty"`
	ValidUntil string   `json:"valid_until"`
}

// Summary turns a ledger member view into the API's member summary, with
// tier names from the program in force and only the coupons usable now.
func (s *Server) Summary(v ledger.MemberView) MemberSummary {
	now := s.o.Now()
	m := MemberSummary{
		Member: MemberInfo{ID: v.Member.ID, Name: v.Member.Name, Tier: v.Member.Tier,
			ReferrerID: v.Member.ReferrerID, EnrolledAt: v.Member.EnrolledAt},
		Tier:   v.Member.Tier,
		Points: v.Points, PointsConfirmed: v.PointsConfirmed, PointsPending: v.PointsPending,
		StoredValue: v.StoredValue, State: v.State, MaskedMobile: v.MaskedMobile,
		Negative: v.Negative, Coupons: []Coupon{},
	}
	if !v.LastSale.IsZero() {
		m.LastSale = v.LastSale.In(s.o.Location).Format(time.RFC3339)
	}
	if p, err := s.o.Ledger.Programs().At(now); err == nil {
		if t, ok := p.Tier(v.Member.Tier); ok {
			m.TierNameZH, m.TierNameEN = t.NameZH, t.NameEN
		}
	}
	for _, c := range v.Coupons {
		if !usable(c, now) {
			continue
		}
		until := c.ValidUntil
		if t, err := time.Parse(time.RFC3339, c.ValidUntil); err == nil {
			until = t.In(s.o.Location).Format(time.RFC3339)
		}
		m.Coupons = append(m.Coupons, Coupon{ID: c.ID, Name: c.Name, Threshold: c.Threshold, Value: c.Value, SKUs: c.SKUs, ValidUntil: until})
	}
	return m
}

func usable(c entry.MemberCoupon, now time.Time) bool {
	if f, err := time.Parse(time.RFC3339, c.ValidFrom); err == nil && now.Before(f) {
		return false
	}
	if u, err := time.Parse(time.RFC3339, c.ValidUntil); err == nil && !now.Before(u) {
		return false
	}
	return true
}

var cardSeparators = strings.NewReplacer(" ", "", "-", "", "\t", "")

// CardError is a typed card number the card rule refuses: what to tell the
// cashier, in English (Error) and in Chinese, saying the same thing.
type CardError struct{ EN, ZH string }

func (e *CardError) Error() string { return e.EN }

// Messages for typed card numbers. The card rule's own hints speak of
// reading the card again; a typed number is checked and typed again.
var (
	errCardEmpty  = &CardError{"type the card number", "请输入卡号"}
	errCardLength = &CardError{"the card number has the wrong length; check it and type it again", "卡号位数不对，请核对后重新输入"}
	errCardCheck  = &CardError{"the card number fails its check digit; check it and type it again (if it is right, this is not this store's member card)",
		"卡号校验位不对，请核对后重新输入（如无误，这不是本店的会员卡）"}
	errCardForeign = &CardError{"this is not this store's member card number; check it and type it again",
		"这不是本店的会员卡号，请核对后重新输入"}
)

// CardToken turns a card number typed by the cashier into the card token,
// by the configured card rule (prefix, Luhn, length). Errors are *CardError.
func CardToken(rule config.CardRule, typed string) (string, error) {
	s := cardSeparators.Replace(strings.TrimSpace(typed))
	if s == "" {
		return "", errCardEmpty
	}
	if len(s) > 64 || rule.MinLength > 0 && len(s) < rule.MinLength || rule.MaxLength > 0 && len(s) > rule.MaxLength {
		return "", errCardLength
	}
	t, err := token.Rule{Source: token.SourceBarcodeRegex, Prefix: rule.Prefix, Luhn: rule.Luhn}.
		Token(decode.Read{Kind: "barcode", Data: s})
	if err != nil {
		var de *decode.Error
		if errors.As(err, &de) && de.Hint == token.HintAgainOrForeign.EN {
			return "", errCardCheck // only the Luhn check gives this kind here
		}
		return "", errCardForeign
	}
	return t, nil
}

// LookupRequest finds a member by exactly one of its fields.
type LookupRequest struct {
	Card     string `json:"card,omitempty"`      // card number as typed or printed
	CardHash string `json:"card_hash,omitempty"` // keyed hash from a card_unknown event
	MemberID string `json:"member_id,omitempty"`
	Mobile   string `json:"mobile,omitempty"`
	// MemberCode is a member code typed from under the phone's QR code
	// ("M10024-40170312"), or the QR's text; checked like a scan.
	MemberCode string `json:"member_code,omitempty"`
}

// MemberCodeError is a member code refused (Options.MemberCode): the
// code is the event's type or read_error code, with what to tell the
// cashier.
type MemberCodeError struct {
	Code, Message, MessageZH string
}

func (e *MemberCodeError) Error() string { return e.Code + ": " + e.Message }

var mobileRe = regexp.MustCompile(`^\+?[0-9]{6,15}$`)
var hashRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	var q LookupRequest
	if !s.decode(w, r, &q) {
		return
	}
	if need := s.cardNeed(q.Card); need != "" && principalOf(r).sess != nil {
		if _, ok := s.actor(w, r, "", need); !ok {
			return
		}
	}
	s.answerLookup(w, r, q)
}

// answerLookup answers the summary of the member that q names by exactly
// one of its fields.
func (s *Server) answerLookup(w http.ResponseWriter, r *http.Request, q LookupRequest) {
	if countSet(q.Card, q.CardHash, q.MemberID, q.Mobile, q.MemberCode) != 1 {
		s.invalid(w, r, "give exactly one of card, card_hash, member_id, mobile or member_code", "请只提供卡号、会员号、手机号或会员码中的一项")
		return
	}
	v, ok := s.findMember(w, r, q)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.Summary(s.refresh(r, v)))
}

// refresh gives a member a look-up identified HQ's balances of now, when
// the agent can have them in time (Options.RefreshMember). Only the
// look-ups refresh: a sale's member was identified by one first.
func (s *Server) refresh(r *http.Request, v ledger.MemberView) ledger.MemberView {
	if s.o.RefreshMember == nil {
		return v
	}
	return s.o.RefreshMember(r.Context(), v)
}

// countSet counts the non-empty strings.
func countSet(fields ...string) int {
	n := 0
	for _, f := range fields {
		if f != "" {
			n++
		}
	}
	return n
}

// findMember resolves a lookup; it answers the error itself.
func (s *Server) findMember(w http.ResponseWriter, r *http.Request, q LookupRequest) (ledger.MemberView, bool) {
	var (
		v   ledger.MemberView
		err error
	)
	switch {
	case q.Card != "" || q.CardHash != "":
		h, ok := s.cardHash(w, r, q.Card, q.CardHash)
		if !ok {
			return v, false
		}
		v, err = s.o.Ledger.MemberByToken(h)
	case q.MemberID != "":
		v, err = s.o.Ledger.Member(q.MemberID)
	case q.MemberCode != "":
		if s.o.MemberCode == nil {
			s.fail(w, r, http.StatusNotImplemented, "member_code_unsupported", "this till does not take member codes", "本机不支持会员码", nil)
			return v, false
		}
		v, err = s.o.MemberCode(r.Context(), s.o.Till, q.MemberCode)
		var me *MemberCodeError
		if errors.As(err, &me) {
			status := http.StatusUnprocessableEntity
			if me.Code == "invalid" {
				status = http.StatusBadRequest
			}
			s.fail(w, r, status, me.Code, me.Message, me.MessageZH, nil)
			return v, false
		}
	case q.Mobile != "":
		m := cardSeparators.Replace(q.Mobile)
		if !mobileRe.MatchString(m) {
			s.invalid(w, r, "the mobile number must be digits (6 to 15)", "手机号格式错误")
			return v, false
		}
		v, err = s.o.Ledger.MemberByMobile(m)
	}
	if errors.Is(err, ledger.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "member_not_found",
			"no member with this card, id or mobile: check it, or enrol the customer", "未找到会员：请核对，或为顾客办理入会", nil)
		return v, false
	}
	if err != nil {
		s.ledgerError(w, r, err)
		return v, false
	}
	return v, true
}

// cardHash is the card token hash of a card number as typed, or a card_hash
// from a card_unknown event checked for form (card wins when both are
// given; callers reject that). It answers the error itself.
func (s *Server) cardHash(w http.ResponseWriter, r *http.Request, card, hash string) (string, bool) {
	if card != "" {
		tok, err := CardToken(s.o.Card, card)
		if err != nil {
			ce := errCardForeign
			errors.As(err, &ce)
			s.fail(w, r, http.StatusBadRequest, "bad_card", ce.EN, ce.ZH, nil)
			return "", false
		}
		return token.Hash(s.o.TokenKey, tok), true
	}
	if !hashRe.MatchString(hash) {
		s.invalid(w, r, "card_hash must be the 64 hex digits from a card_unknown event", "卡片标识格式错误")
		return "", false
	}
	return hash, true
}

// membersQuery is GET /v1/members?card=|card_hash=|token=|mobile=|member_id=
// (the same as POST /v1/members/lookup, for clients that prefer GET).
func (s *Server) membersQuery(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := LookupRequest{Card: v.Get("card"), CardHash: v.Get("card_hash"), MemberID: v.Get("member_id"), Mobile: v.Get("mobile")}
	if t := v.Get("token"); t != "" {
		if q.CardHash != "" {
			s.invalid(w, r, "token is another name for card_hash; send one", "参数重复")
			return
		}
		q.CardHash = t
	}
	s.answerLookup(w, r, q)
}

func (s *Server) memberByID(w http.ResponseWriter, r *http.Request) {
	v, ok := s.findMember(w, r, LookupRequest{MemberID: r.PathValue("id")})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.Summary(s.refresh(r, v)))
}

// EnrolRequest enrols a member at the till.
type EnrolRequest struct {
	// EnrolID is the idempotency key: the same id sent twice enrols once.
	// "key" is accepted as another name for it.
	EnrolID string `json:"enrol_id"`
	Key     string `json:"key,omitempty"`
	// ID is the new member's id; empty: the ledger generates one.
	ID       string `json:"id,omitempty"`
	Till     string `json:"till,omitempty"`
	Cashier  string `json:"cashier"`
	Name     string `json:"name"`
	Mobile   string `json:"mobile,omitempty"`
	Birthday string `json:"birthday,omitempty"` // MM-DD or YYYY-MM-DD
	// The member's card: the number as typed, or the card_hash of a
	// card_unknown event (a card just swiped). Optional.
	Card     string `json:"card,omitempty"`
	CardHash string `json:"card_hash,omitempty"`
	// The referrer (optional): referrer_id, or a lookup by card or mobile.
	ReferrerID string         `json:"referrer_id,omitempty"`
	Referrer   *LookupRequest `json:"referrer,omitempty"`
}

// EnrolResponse is the new member and the entries written.
type EnrolResponse struct {
	Member  MemberSummary  `json:"member"`
	Entries []*entry.Entry `json:"entries"`
}

var birthdayRe = regexp.MustCompile(`^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$`)

func (s *Server) enrol(w http.ResponseWriter, r *http.Request) {
	var q EnrolRequest
	till, ok := s.decodeTill(w, r, &q, &q.Till)
	if !ok {
		return
	}
	q.Name = strings.TrimSpace(q.Name)
	q.Mobile = cardSeparators.Replace(q.Mobile)
	if q.EnrolID == "" {
		q.EnrolID = q.Key
	}
	switch {
	case q.EnrolID == "":
		s.invalid(w, r, "enrol_id is required (a new unique id per enrolment; resending the same id enrols once)", "缺少入会单号")
		return
	case q.Key != "" && q.Key != q.EnrolID:
		s.invalid(w, r, "enrol_id and key differ; send one of them", "入会单号不一致")
		return
	case q.Name == "" || len(q.Name) > 100:
		s.invalid(w, r, "type the customer's name (at most 100 characters)", "请输入顾客姓名")
		return
	case q.Mobile != "" && !mobileRe.MatchString(q.Mobile):
		s.invalid(w, r, "type the customer's mobile number (digits only)", "请输入正确的手机号")
		return
	case q.Birthday != "" && !birthdayRe.MatchString(q.Birthday):
		s.invalid(w, r, "birthday must be MM-DD or YYYY-MM-DD", "生日格式应为 MM-DD 或 YYYY-MM-DD")
		return
	case q.Card != "" && q.CardHash != "":
		s.invalid(w, r, "give card or card_hash, not both", "卡号只能提供一种")
		return
	case q.ReferrerID != "" && q.Referrer != nil:
		s.invalid(w, r, "give referrer_id or referrer, not both", "推荐人只能提供一种")
		return
	}
	a, ok := s.actor(w, r, q.Cashier, s.cardNeed(q.Card))
	if !ok {
		return
	}
	var cardHash string
	if q.Card != "" || q.CardHash != "" {
		if cardHash, ok = s.cardHash(w, r, q.Card, q.CardHash); !ok {
			return
		}
	}
	referrer := q.ReferrerID
	if referrer != "" {
		rv, ok := s.findMember(w, r, LookupRequest{MemberID: referrer})
		if !ok {
			return
		}
		referrer = rv.Member.ID
	}
	if q.Referrer != nil && *q.Referrer != (LookupRequest{}) {
		rv, ok := s.findMember(w, r, *q.Referrer)
		if !ok {
			return
		}
		referrer = rv.Member.ID
	}
	req := ledger.EnrolRequest{
		Till: till, Key: q.EnrolID, Cashier: a.cashier, Approver: a.approver, ReferrerID: referrer,
		Member:    entry.Member{ID: q.ID, Name: q.Name, Mobile: q.Mobile, Birthday: q.Birthday},
		CardToken: cardHash, At: s.o.Now(),
	}
	entries, err := write(s, "enrol", func() ([]*entry.Entry, error) { return s.o.Ledger.Enrol(r.Context(), req) })
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	var id string
	for _, e := range entries {
		if e.Kind == entry.KindEnrol && e.Enrol != nil {
			id = e.Enrol.Member.ID
		}
	}
	v, err := s.o.Ledger.Member(id)
	if err != nil {
		s.ledgerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, EnrolResponse{Member: s.Summary(v), Entries: redactEntries(entries)})
}

// redactEntries copies entries with the enrolled member's mobile masked and
// card tokens dropped: the answer goes to the POS, which needs neither.
func redactEntries(in []*entry.Entry) []*entry.Entry {
	out := make([]*entry.Entry, len(in))
	for i, e := range in {
		c := *e
		if c.Enrol != nil {
			en := *c.Enrol
			en.Member.Mobile = loyalty.MaskMobile(en.Member.Mobile)
			en.Member.CardTokens = nil
			c.Enrol = &en
		}
		out[i] = &c
	}
	return out
}
