package hq

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"posagent/ledger/loyalty"
)

// cardView is what the card page shows.
type cardView struct {
	Token        string
	Name, Mobile string
	TierName     string
	Discount     string // e.g. 95折 / 5% off
	NextTier     string // "" at the top tier or when only HQ grants the next
	NextRule     string
	Points       int64
	Expiries     []pointsExpiry
	PointsWorth  int64 // fen the points can pay, before the per-sale cap
	MaxShare     string
	StoredValue  int64
	Coupons      []couponView
	Code         *MemberCodeView
}

type pointsExpiry struct{ Earned, Until string }

type couponView struct {
	Name             string
	Value, Threshold int64
	Until            string
}

// MemberCodeView is a member code as the card page draws it.
type MemberCodeView struct {
	SVG     template.HTML `json:"svg"`
	Short   string        `json:"short"`
	Expires time.Time     `json:"expires"`
	// RefreshMS is when the page fetches the next code: a little before
	// this one expires.
	RefreshMS int64 `json:"refresh_ms"`
}

// cardMember resolves a card link token to its live link's member.
func (s *Server) cardMember(ctx context.Context, tok string) (string, error) {
	es, err := s.enrolStore()
	if err != nil {
		return "", err
	}
	if tok == "" || len(tok) > 100 {
		return "", ErrNotFound
	}
	l, err := es.CardLink(ctx, cardHash(tok))
	if err != nil {
		return "", err
	}
	if !l.RevokedAt.IsZero() {
		return "", ErrRevoked
	}
	return l.Member, nil
}

func (s *Server) handleCard(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	id, err := s.cardMember(r.Context(), tok)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrRevoked):
		s.fail(w, r, http.StatusGone, "card_gone")
		return
	case err != nil:
		s.o.Log.Error("card page", "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "storage")
		return
	}
	m, err := s.st.Member(r.Context(), id)
	if err != nil {
		s.o.Log.Error("card page member", "member", id, "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "storage")
		return
	}
	progs, err := s.programs(r.Context())
	if err != nil {
		s.o.Log.Error("card page programs", "err", err)
		s.fail(w, r, http.StatusServiceUnavailable, "storage")
		return
	}
	now := s.o.Now()
	p, err := progs.At(now)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "storage")
		return
	}
	l := lang(r)
	v := cardFor(p, m, l, now)
	v.Token = tok
	if c, err := s.memberCodeView(r.Context(), id); err == nil {
		v.Code = &c
	} else {
		s.o.Log.Warn("card page member code", "member", id, "err", err)
	}
	s.render(w, http.StatusOK, "card.html", custPage{Lang: l, Title: texts[l]["card_title"], Other: otherLang(r, l), Card: &v})
}

// handleCardCode answers the page's refresh with the next member code.
func (s *Server) handleCardCode(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	id, err := s.cardMember(r.Context(), r.PathValue("token"))
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrRevoked):
		writeError(w, http.StatusGone, "card_gone", "this card link no longer works; ask the store for a new one")
		return
	case err != nil:
		s.o.Log.Error("card code", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "try again")
		return
	}
	c, err := s.memberCodeView(r.Context(), id)
	if err != nil {
		s.o.Log.Error("card code", "member", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "the member code could not be made; try again")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// memberCodeView issues a member code and draws it.
func (s *Server) memberCodeView(ctx context.Context, id string) (MemberCodeView, error) {
	text, short, expires, err := s.memberCode(ctx, id)
	if err != nil {
		return MemberCodeView{}, err
	}
	svg, err := QRSVG(text, 6)
	if err != nil {
		return MemberCodeView{}, err
	}
	left := expires.Sub(s.o.Now())
	// Refresh a little before expiry, never in a busy loop.
	refresh := max(left-5*time.Second, 2*time.Second)
	return MemberCodeView{SVG: template.HTML(svg), Short: short, Expires: expires.UTC(), RefreshMS: refresh.Milliseconds()}, nil
}

// QRSVG draws text as a QR code (medium error correction) in SVG, each
// module scale px, with the four-module quiet zone.
func QRSVG(text string, scale int) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bm := q.Bitmap() // includes the quiet zone
	n := len(bm)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" shape-rendering="crispEdges" role="img"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`,
		n, n, n*scale, n*scale, n, n)
	for y, row := range bm {
		for x := 0; x < len(row); x++ {
			if !row[x] {
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run - 1
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}

// cardFor is the card of member m under program p, in language l, at now.
func cardFor(p *loyalty.Program, m Member, l string, now time.Time) cardView {
	t := texts[l]
	loc := p.Location()
	v := cardView{Points: m.Points, StoredValue: m.StoredValue}
	tierID := p.EnrolTier
	if m.Data != nil {
		v.Name, v.Mobile = m.Data.Name, loyalty.MaskMobile(m.Data.Mobile)
		if m.Data.Tier != "" {
			tierID = m.Data.Tier
		}
	}
	rank := -1
	for i, tr := range p.Tiers {
		if tr.ID == tierID {
			rank = i
			v.TierName = tierName(tr, l)
			v.Discount = discountText(tr.DiscountBP, l)
		}
	}
	if rank >= 0 && rank+1 < len(p.Tiers) {
		next := p.Tiers[rank+1]
		if u := next.Upgrade; u != nil {
			v.NextTier = tierName(next, l)
			var parts []string
			if u.SalesPerQuarter > 0 {
				parts = append(parts, fmt.Sprintf(t["rule_sales"], u.SalesPerQuarter))
			}
			if u.Spend365 > 0 {
				parts = append(parts, fmt.Sprintf(t["rule_spend"], fenYuan(u.Spend365)))
			}
			v.NextRule = strings.Join(parts, t["or"])
		}
	}
	// The points held can only be from lots earned this year or last year:
	// older lots have expired (written off at the till by rule).
	year := now.In(loc).Year()
	for _, y := range []int{year - 1, year} {
		exp := p.LotExpiry(time.Date(y, 6, 1, 12, 0, 0, 0, loc))
		v.Expiries = append(v.Expiries, pointsExpiry{Earned: fmt.Sprint(y), Until: exp.In(loc).AddDate(0, 0, -1).Format("2006-01-02")})
	}
	if r := p.Redemption; r.PointsPerYuan > 0 && m.Points > 0 {
		pts := m.Points
		if r.Step > 0 {
			pts -= pts % r.Step
		}
		v.PointsWorth = pts * 100 / r.PointsPerYuan
		v.MaxShare = bpText(r.MaxShareBP)
	}
	for _, c := range m.State().Coupons {
		until, err := time.Parse(time.RFC3339, c.ValidUntil)
		if err == nil && !now.Before(until) {
			continue // expired: the till would refuse it
		}
		cv := couponView{Name: c.Name, Value: c.Value, Threshold: c.Threshold}
		if err == nil {
			cv.Until = until.In(loc).Add(-time.Second).Format("2006-01-02")
		}
		v.Coupons = append(v.Coupons, cv)
	}
	return v
}

func tierName(t loyalty.Tier, l string) string {
	if l == "en" && t.NameEN != "" {
		return t.NameEN
	}
	if t.NameZH != "" {
		return t.NameZH
	}
	return t.ID
}

// discountText: 500 bp → "95折" or "5% off".
func discountText(bp int64, l string) string {
	if bp <= 0 {
		return ""
	}
	if l == "en" {
		return bpText(bp) + " off"
	}
	z := 10000 - bp // 9500 → 95折, 8800 → 88折, 8000 → 8折, 9250 → 92.5折
	switch {
	case z%1000 == 0:
		return fmt.Sprintf("%d折", z/1000)
	case z%100 == 0:
		return fmt.Sprintf("%d折", z/100)
	default:
		return fmt.Sprintf("%d.%d折", z/100, z%100/10)
	}
}

// bpText: 500 → "5%", 1250 → "12.5%".
func bpText(bp int64) string {
	if bp%100 == 0 {
		return fmt.Sprintf("%d%%", bp/100)
	}
	return strings.TrimRight(fmt.Sprintf("%d.%02d", bp/100, bp%100), "0") + "%"
}

// fenYuan: 500000 → "5,000".
func fenYuan(f int64) string {
	y := f / 100
	s := fmt.Sprint(y)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if f%100 != 0 {
		fmt.Fprintf(&b, ".%02d", f%100)
	}
	return b.String()
}
