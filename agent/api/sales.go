package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

// Line is one basket line. Discountable and EarnsPoints default to true
// when left out (most goods are both); send false for special-price goods.
type Line struct {
	LineNo       int    `json:"line_no,omitempty"` // default: position, from 1
	SKU          string `json:"sku"`
	Qty          int64  `json:"qty"`
	UnitPrice    int64  `json:"unit_price"` // fen
	Discountable *bool  `json:"discountable,omitempty"`
	EarnsPoints  *bool  `json:"earns_points,omitempty"`
}

// SaleRequest is a basket to quote or a sale to commit.
type SaleRequest struct {
	ReceiptID string `json:"receipt_id,omitempty"` // required to commit; the idempotency key
	Till      string `json:"till,omitempty"`
	// The member: member_id, or a card number / card_hash to look up.
	// None: a non-member sale (no discount, no points).
	MemberID     string `json:"member_id,omitempty"`
	Card         string `json:"card,omitempty"`
	CardHash     string `json:"card_hash,omitempty"`
	Cashier      string `json:"cashier,omitempty"`
	CouponID     string `json:"coupon_id,omitempty"`
	Lines        []Line `json:"lines"`
	RedeemPoints int64  `json:"redeem_points,omitempty"`
	StoredValue  int64  `json:"stored_value,omitempty"` // part of the amount due paid from stored value, fen
	// At is the sale time (RFC 3339) when the POS commits a sale made
	// earlier; default now (the agent's clock). It must lie within the
	// ledger's window (ledger.Options.ClockSkew ahead, MaxBackdate behind)
	// and, when backdated, not before the member enrolled; else 400 bad_time.
	At string `json:"at,omitempty"`
}

const maxLines = 1000

// toLedger checks the basket and resolves the member; it answers the
// error itself. unconfirmed: the sale falls under the offline cap though
// HQ is reachable, because HQ could not confirm the member's balances.
func (s *Server) toLedger(w http.ResponseWriter, r *http.Request, q SaleRequest) (out ledger.SaleRequest, unconfirmed, ok bool) {
	till, ok := s.till(w, r, q.Till)
	if !ok {
		return out, false, false
	}
	if len(q.Lines) == 0 || len(q.Lines) > maxLines {
		s.invalid(w, r, fmt.Sprintf("a basket needs 1 to %d lines", maxLines), "购物清单为空或过长")
		return out, false, false
	}
	if q.RedeemPoints < 0 || q.StoredValue < 0 {
		s.invalid(w, r, "redeem_points and stored_value must not be negative", "积分和储值不能为负数")
		return out, false, false
	}
	seen := map[int]bool{}
	for i, l := range q.Lines {
		ln := loyalty.Line{LineNo: l.LineNo, SKU: l.SKU, Qty: l.Qty, UnitPrice: l.UnitPrice, Discountable: true, EarnsPoints: true}
		if ln.LineNo == 0 {
			ln.LineNo = i + 1
		}
		if l.Discountable != nil {
			ln.Discountable = *l.Discountable
		}
		if l.EarnsPoints != nil {
			ln.EarnsPoints = *l.EarnsPoints
		}
		switch {
		case ln.LineNo < 0 || seen[ln.LineNo]:
			s.invalid(w, r, fmt.Sprintf("lines[%d]: line_no %d is negative or used twice", i, ln.LineNo), "行号重复或无效")
			return out, false, false
		case ln.SKU == "":
			s.invalid(w, r, fmt.Sprintf("lines[%d]: sku is required", i), "商品编码不能为空")
			return out, false, false
		case ln.Qty <= 0 || ln.Qty > 1_000_000:
			s.invalid(w, r, fmt.Sprintf("lines[%d]: qty must be 1 to 1000000", i), "数量无效")
			return out, false, false
		case ln.UnitPrice < 0 || ln.UnitPrice > 1_000_000_000_00:
			s.invalid(w, r, fmt.Sprintf("lines[%d]: unit_price must be 0 to 100000000000 fen", i), "单价无效")
			return out, false, false
		}
		seen[ln.LineNo] = true
		out.Lines = append(out.Lines, ln)
	}
	var at time.Time // zero: the ledger stamps its own clock
	if q.At != "" {
		t, err := time.Parse(time.RFC3339, q.At)
		if err != nil {
			s.invalid(w, r, "at must be an RFC 3339 time such as 2025-03-18T10:15:00+08:00", "时间格式错误")
			return out, false, false
		}
		at = t
	}
	if countSet(q.MemberID, q.Card, q.CardHash) > 1 {
		s.invalid(w, r, "name the member once: member_id, card or card_hash", "会员只能用一种方式指定")
		return out, false, false
	}
	memberID := q.MemberID
	if q.Card != "" || q.CardHash != "" {
		v, ok := s.findMember(w, r, LookupRequest{Card: q.Card, CardHash: q.CardHash})
		if !ok {
			return out, false, false
		}
		memberID = v.Member.ID
	}
	offline := false
	if s.o.Offline != nil {
		offline = s.o.Offline()
	}
	// Only a redemption waits for HQ: the balance matters to nothing else.
	if !offline && q.RedeemPoints > 0 && memberID != "" && s.o.BalancesConfirmed != nil && !s.o.BalancesConfirmed(r.Context(), memberID) {
		offline, unconfirmed = true, true
	}
	out.Till, out.ReceiptID, out.MemberID, out.Cashier, out.CouponID = till, q.ReceiptID, memberID, q.Cashier, q.CouponID
	out.RedeemPoints, out.StoredValue, out.At, out.Offline = q.RedeemPoints, q.StoredValue, at, offline
	return out, unconfirmed, true
}

func (s *Server) quote(w http.ResponseWriter, r *http.Request) {
	var q SaleRequest
	if !s.decode(w, r, &q) {
		return
	}
	req, unconfirmed, ok := s.toLedger(w, r, q)
	if !ok {
		return
	}
	res, err := s.o.Ledger.Quote(r.Context(), req)
	s.answerSale(w, r, res, capWhy(err, unconfirmed))
}

// sale commits a sale. The receipt id is the idempotency key: the same
// request again answers 200 with the first sale's entry, byte for byte; the
// same receipt id with another basket is 409.
func (s *Server) sale(w http.ResponseWriter, r *http.Request) {
	var q SaleRequest
	if !s.decode(w, r, &q) {
		return
	}
	if q.ReceiptID == "" || len(q.ReceiptID) > 128 {
		s.invalid(w, r, "receipt_id is required (the POS receipt id, at most 128 characters); it makes the sale idempotent", "缺少小票号")
		return
	}
	a, ok := s.actor(w, r, q.Cashier, s.cardNeed(q.Card))
	if !ok {
		return
	}
	req, unconfirmed, ok := s.toLedger(w, r, q)
	if !ok {
		return
	}
	req.Cashier, req.Approver = a.cashier, a.approver
	e, err := write(s, "sale", func() (*entry.Entry, error) { return s.o.Ledger.CommitSale(r.Context(), req) })
	s.answerSale(w, r, e, capWhy(err, unconfirmed))
}

// answerSale is answer with a sale time the ledger refused explained in
// both languages: the POS fixes its clock or leaves at out.
func (s *Server) answerSale(w http.ResponseWriter, r *http.Request, v any, err error) {
	var te *ledger.TimeError
	if !errors.As(err, &te) {
		s.answer(w, r, v, err)
		return
	}
	at := te.At.Format(time.RFC3339)
	var en, zh string
	switch te.Kind {
	case ledger.TimeAhead:
		en = fmt.Sprintf("the sale time at=%s is more than %s ahead of the till's clock; fix the POS clock, or leave at out to record the sale now", at, durEN(te.Limit))
		zh = fmt.Sprintf("销售时间 %s 比收银机时钟快了%s以上：请校正POS时间，或不传销售时间（at），按当前时间记账", at, durZH(te.Limit))
	case ledger.TimeTooOld:
		en = fmt.Sprintf("the sale time at=%s is more than %s before the till's clock, too old to record with its own time; leave at out to record the sale now, or check the POS clock", at, durEN(te.Limit))
		zh = fmt.Sprintf("销售时间 %s 比收银机时钟早了%s以上，不能按原时间补记：请不传销售时间（at），按当前时间记账，或检查POS时间", at, durZH(te.Limit))
	default:
		en = fmt.Sprintf("the sale time at=%s is before the member enrolled (%s); check the POS clock, or leave at out to record the sale now", at, te.Since.In(s.o.Location).Format(time.RFC3339))
		zh = fmt.Sprintf("销售时间 %s 早于该会员的入会时间（%s）：请检查POS时间，或不传销售时间（at），按当前时间记账", at, te.Since.In(s.o.Location).Format(time.RFC3339))
	}
	s.fail(w, r, http.StatusBadRequest, "bad_time", en, zh, err)
}

func durEN(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return d.String()
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func durZH(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d天", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d小时", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d分钟", d/time.Minute)
	}
	return d.String()
}

// unconfirmedError marks the error of a sale held to the offline cap
// because HQ, though reachable, could not confirm the member's balances.
type unconfirmedError struct{ error }

func (e unconfirmedError) Unwrap() error { return e.error }

// capWhy marks err as unconfirmedError when the sale was held to the cap
// for that reason, so the refusal says so.
func capWhy(err error, unconfirmed bool) error {
	if err == nil || !unconfirmed {
		return err
	}
	return unconfirmedError{err}
}

// offlineCapMessages tell the cashier that the member's daily offline
// redemption limit is reached (not that points are missing: the member may
// hold plenty) and what can be done now. unconfirmed: the till reaches HQ,
// but HQ could not confirm the member's points in time.
func offlineCapMessages(ce *ledger.OfflineCapError, unconfirmed bool) (en, zh string) {
	if unconfirmed {
		if ce.Left <= 0 {
			return fmt.Sprintf("HQ could not confirm this member's points just now, so the till allows at most %d points a day, as when offline, and today's are used: take this sale without redeeming points, or try again when HQ answers; the member keeps the points", ce.Cap),
				fmt.Sprintf("总部暂时无法确认该会员的积分，收银机按离线规则每天最多抵扣%d积分，今日额度已用完：请本单不用积分结账，或待总部响应后再试；会员积分不会减少", ce.Cap)
		}
		return fmt.Sprintf("HQ could not confirm this member's points just now, so the till allows at most %d points a day, as when offline: redeem at most %d points now, or take the sale without redeeming points, or try again when HQ answers", ce.Cap, ce.Left),
			fmt.Sprintf("总部暂时无法确认该会员的积分，收银机按离线规则每天最多抵扣%d积分：请改为最多抵扣%d积分，或本单不用积分结账，或待总部响应后再试", ce.Cap, ce.Left)
	}
	if ce.Left <= 0 {
		return fmt.Sprintf("today's offline points limit for this member is reached (%d points a day while the till cannot reach HQ): take this sale without redeeming points, or redeem once the till is back online; the member keeps the points", ce.Cap),
			fmt.Sprintf("该会员今日离线积分抵扣已达上限（收银机连不上总部时每天%d积分）：请本单不用积分结账，或待收银机恢复联网后再抵扣；会员积分不会减少", ce.Cap)
	}
	return fmt.Sprintf("today's offline points limit for this member is nearly used up: while the till cannot reach HQ, only %d more points can be redeemed today (%d a day): redeem at most %d points now, or take the sale without redeeming points; the rest can be redeemed once the till is back online", ce.Left, ce.Cap, ce.Left),
		fmt.Sprintf("该会员今日离线积分抵扣额度即将用完：收银机连不上总部期间，今天最多还能抵扣%d积分（每天%d积分）。请改为最多抵扣%d积分，或本单不用积分结账；其余积分待收银机恢复联网后再抵扣", ce.Left, ce.Cap, ce.Left)
}

// RefundItem is a quantity of one sale line to refund.
type RefundItem struct {
	LineNo int   `json:"line_no"`
	Qty    int64 `json:"qty"`
}

// RefundRequest refunds part or all of a sale.
type RefundRequest struct {
	RefundID  string `json:"refund_id"`
	ReceiptID string `json:"receipt_id"`
	Till      string `json:"till,omitempty"`
	// SaleTill is the till of the original sale when it differs (a refund
	// at another till of this agent); default: till.
	SaleTill string       `json:"sale_till,omitempty"`
	Cashier  string       `json:"cashier,omitempty"`
	Lines    []RefundItem `json:"lines,omitempty"`
	Full     bool         `json:"full,omitempty"`
	// WithoutReceipt: the customer has no receipt (the sale was found
	// another way); the cashier page then asks for a supervisor when the
	// config says so.
	WithoutReceipt bool `json:"without_receipt,omitempty"`
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	var q RefundRequest
	till, ok := s.decodeTill(w, r, &q, &q.Till)
	if !ok {
		return
	}
	switch {
	case q.RefundID == "" || q.ReceiptID == "":
		s.invalid(w, r, "refund_id (this refund's own id, for idempotency) and receipt_id (the sale) are required", "缺少退货单号或原小票号")
		return
	case q.Full == (len(q.Lines) > 0):
		s.invalid(w, r, "give either full: true or the lines to refund", "请选择整单退货或指定退货行")
		return
	}
	saleTill := till
	if q.SaleTill != "" {
		if saleTill, ok = s.till(w, r, q.SaleTill); !ok {
			return
		}
	}
	need := ""
	if q.WithoutReceipt && s.o.Supervisor.RefundsWithoutReceipt {
		need = needNoReceipt
	}
	a, ok := s.actor(w, r, q.Cashier, need)
	if !ok {
		return
	}
	req := ledger.RefundRequest{Till: till, SaleTill: saleTill, RefundID: q.RefundID, ReceiptID: q.ReceiptID, Cashier: a.cashier, Approver: a.approver, Full: q.Full, At: s.o.Now()}
	for i, l := range q.Lines {
		if l.LineNo <= 0 || l.Qty <= 0 {
			s.invalid(w, r, fmt.Sprintf("lines[%d]: line_no and qty must be above 0", i), "退货行号和数量必须大于0")
			return
		}
		req.Lines = append(req.Lines, ledger.RefundItem{LineNo: l.LineNo, Qty: l.Qty})
	}
	e, err := write(s, "refund", func() (*entry.Entry, error) { return s.o.Ledger.Refund(r.Context(), req) })
	s.answer(w, r, e, err)
}

// VoidRequest voids a whole sale.
type VoidRequest struct {
	ReceiptID string `json:"receipt_id"`
	Till      string `json:"till,omitempty"`
	Cashier   string `json:"cashier,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

func (s *Server) void(w http.ResponseWriter, r *http.Request) {
	var q VoidRequest
	till, ok := s.decodeTill(w, r, &q, &q.Till)
	if !ok {
		return
	}
	if q.ReceiptID == "" {
		s.invalid(w, r, "receipt_id of the sale to void is required", "缺少要作废的小票号")
		return
	}
	need := ""
	if s.o.Supervisor.Voids {
		need = needVoid
	}
	a, ok := s.actor(w, r, q.Cashier, need)
	if !ok {
		return
	}
	req := ledger.VoidRequest{Till: till, ReceiptID: q.ReceiptID, Cashier: a.cashier, Approver: a.approver, Reason: q.Reason, At: s.o.Now()}
	e, err := write(s, "void", func() (*entry.Entry, error) { return s.o.Ledger.Void(r.Context(), req) })
	s.answer(w, r, e, err)
}

// TopUpRequest adds stored value to a member.
type TopUpRequest struct {
	TopUpID  string `json:"topup_id"`
	MemberID string `json:"member_id"`
	Amount   int64  `json:"amount"` // fen paid in; the program's bonus is added
	Till     string `json:"till,omitempty"`
	Cashier  string `json:"cashier,omitempty"`
}

func (s *Server) topUp(w http.ResponseWriter, r *http.Request) {
	var q TopUpRequest
	till, ok := s.decodeTill(w, r, &q, &q.Till)
	if !ok {
		return
	}
	switch {
	case q.TopUpID == "" || q.MemberID == "":
		s.invalid(w, r, "topup_id (for idempotency) and member_id are required", "缺少充值单号或会员号")
		return
	case q.Amount <= 0 || q.Amount > 100_000_000_00:
		s.invalid(w, r, "amount must be 1 to 10000000000 fen", "充值金额无效")
		return
	}
	need := ""
	if s.o.Supervisor.TopUpOver > 0 && q.Amount > s.o.Supervisor.TopUpOver {
		need = needTopUp
	}
	a, ok := s.actor(w, r, q.Cashier, need)
	if !ok {
		return
	}
	req := ledger.TopUpRequest{Till: till, TopUpID: q.TopUpID, MemberID: q.MemberID, Cashier: a.cashier, Approver: a.approver, Amount: q.Amount, At: s.o.Now()}
	e, err := write(s, "topup", func() (*entry.Entry, error) { return s.o.Ledger.TopUp(r.Context(), req) })
	s.answer(w, r, e, err)
}

func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	if s.o.Sync != nil {
		out["summary"] = s.o.Sync()
	} else {
		st := SyncStatus{}
		if n, oldest, err := s.o.Ledger.Backlog(); err == nil {
			st.Backlog, st.OldestPending = n, oldest
		}
		out["summary"] = st
	}
	if s.o.SyncDetail != nil {
		out["client"] = s.o.SyncDetail()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) syncNow(w http.ResponseWriter, r *http.Request) {
	if s.o.SyncNow == nil {
		s.fail(w, r, http.StatusConflict, "no_hq", "this till has no HQ configured (hq.url); nothing to sync", "未配置总部地址，无需同步", nil)
		return
	}
	if err := s.o.SyncNow(r.Context()); err != nil {
		s.fail(w, r, http.StatusBadGateway, "sync_failed", "HQ could not be reached or refused the sync; sales go on offline and sync later", "无法与总部同步，销售可继续离线进行", err)
		return
	}
	s.syncStatus(w, r)
}
