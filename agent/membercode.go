package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"posagent/agent/api"
	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices"
	"posagent/devices/decode"
	"posagent/ledger"
	"posagent/sync/client"
	"posagent/sync/membercode"
	"posagent/sync/wire"
)

// MemberCodeEvent is the data of the member_code_expired,
// member_code_foreign and member_code_repeat events: a member code that
// was not accepted, and what to tell the cashier. It never holds the code.
type MemberCodeEvent struct {
	Device    string `json:"device"`
	Symbology string `json:"symbology,omitempty"`
	// Member is the member the code names: set for an expired or repeated
	// code (its signature is HQ's), never for a foreign one.
	Member    string `json:"member,omitempty"`
	Reason    string `json:"reason"`  // expired | clock | unknown_key | bad_signature | repeat
	Message   string `json:"message"` // what to tell the cashier (English)
	MessageZH string `json:"message_zh"`
	// Repeat: where and when the code was used first. FirstStore is empty
	// when the first use was at this store (this ledger).
	FirstStore  string    `json:"first_store,omitempty"`
	FirstTill   string    `json:"first_till,omitempty"`
	FirstSeenAt time.Time `json:"first_seen_at,omitzero"`
}

// memberCodeKind is MemberEvent.Kind for a member identified by a code.
const memberCodeKind = "member_code"

// Cashier messages, English and Chinese.
var (
	msgCodeExpired = [2]string{"member code expired — ask the member to refresh the code on the phone",
		"会员码已过期，请会员在手机上刷新会员码"}
	msgCodeClock = [2]string{"member code is from the future — check this till's clock (date and time), then scan again",
		"会员码时间超前，请检查本机日期和时间后重新扫码"}
	msgCodeForeign = [2]string{"this member code is not from our chain (or was altered) — ask for our member code or the card",
		"此会员码不属于本店（或已被篡改），请出示本店会员码或会员卡"}
	msgCodeRepeat = [2]string{"this member code was already used — ask the member to refresh the code on the phone (a screenshot does not work)",
		"此会员码已使用过，请会员在手机上刷新会员码（截图无效）"}
	msgCodeNoKeys = [2]string{"this till cannot check member codes yet: it has not synced with HQ — connect it to HQ, or use the member's card or phone number",
		"本机尚未与总部同步，暂不能核验会员码；请连接总部，或使用会员卡、手机号"}
	msgCodeNotHere = [2]string{"member code valid, but this member has not reached this till yet — wait a minute for the sync, or use the phone number",
		"会员码有效，但该会员资料尚未同步到本机；请稍候一分钟，或用手机号查找"}
	msgStaticRefused = [2]string{"static member barcodes are not accepted here — ask the member to show the member code in the app",
		"本店不接受静态会员条码，请会员出示手机上的动态会员码"}
)

// codeRefusal is why a member code was not accepted: the event (or
// read_error code) and what to tell the cashier.
type codeRefusal struct {
	typ        string // event type: one of the member_code_* types, or read_error
	code       string // read_error's code; for the API, the error code
	reason     string
	msg        [2]string
	member     string
	firstStore string
	firstTill  string
	firstAt    time.Time
}

func refuse(typ, reason string, msg [2]string, member string) *codeRefusal {
	return &codeRefusal{typ: typ, code: typ, reason: reason, msg: msg, member: member}
}

func readRefusal(code string, msg [2]string) *codeRefusal {
	return &codeRefusal{typ: events.TypeReadError, code: code, msg: msg}
}

func (a *Agent) repeatRefusal(member, store, till string, at time.Time) *codeRefusal {
	if store == a.cfg.Store {
		store = ""
	}
	r := refuse(events.TypeMemberCodeRepeat, "repeat", msgCodeRepeat, member)
	r.firstStore, r.firstTill, r.firstAt = store, till, at
	return r
}

var (
	msgCodeLedger   = [2]string{"the member code could not be checked — use the card or phone number, or call support if it repeats", "无法核验会员码，请使用会员卡或手机号；如反复出现请联系技术支持"}
	msgCodeFormat   = [2]string{"scan again; if it repeats, ask the member to refresh the code", "请重新扫码；如反复失败，请会员刷新会员码"}
	msgShortWrong   = [2]string{"the typed member code does not match — check the digits, or scan the QR code", "输入的会员码不正确，请核对数字，或扫描二维码"}
	msgShortOffline = [2]string{"a typed member code can only be checked by HQ, which cannot be reached now — scan the QR code or use the card", "手输会员码需总部在线核验，当前无法连接总部；请扫描二维码或使用会员卡"}
)

// acceptMemberCode verifies a member code's text with HQ's public keys,
// finds the member, and records and claims the code. A code accepted here
// is kept until it expires (a second scan is a repeat) and claimed at HQ (a
// scan at another till is a repeat); with HQ unreachable the claim waits
// in the ledger and the code is accepted.
func (a *Agent) acceptMemberCode(ctx context.Context, till, text string, now time.Time) (ledger.MemberView, *codeRefusal) {
	var none ledger.MemberView
	lk, err := a.led.MemberCodeKeys()
	if err != nil {
		a.log.Error("reading the member-code keys", "err", err)
		return none, readRefusal("ledger", msgCodeLedger)
	}
	keys := make([]membercode.VerifyKey, len(lk))
	for i, k := range lk {
		keys[i] = membercode.VerifyKey{ID: k.ID, Public: ed25519.PublicKey(k.Public), NotAfter: k.NotAfter}
	}
	cl, err := membercode.Verify(keys, text, now)
	switch {
	case errors.Is(err, membercode.ErrNoKeys):
		return none, readRefusal("member_code_no_keys", msgCodeNoKeys)
	case errors.Is(err, membercode.ErrForeign):
		return none, refuse(events.TypeMemberCodeForeign, "unknown_key", msgCodeForeign, "")
	case errors.Is(err, membercode.ErrBadSignature):
		return none, refuse(events.TypeMemberCodeForeign, "bad_signature", msgCodeForeign, "")
	case errors.Is(err, membercode.ErrExpired) && now.Before(cl.Issued.Add(-membercode.Skew)):
		return none, refuse(events.TypeMemberCodeExpired, "clock", msgCodeClock, cl.MemberID)
	case errors.Is(err, membercode.ErrExpired):
		return none, refuse(events.TypeMemberCodeExpired, "expired", msgCodeExpired, cl.MemberID)
	case err != nil:
		return none, readRefusal("format", msgCodeFormat)
	}
	v, rf := a.codeMember(cl.MemberID)
	if rf != nil {
		return none, rf
	}
	use := ledger.MemberCodeUse{Code: cl.ID, Member: cl.MemberID, Till: till, SeenAt: now.UTC(), Expires: cl.Expires,
		Until: cl.Expires.Add(membercode.Skew)}
	first, repeat, err := a.led.UseMemberCode(ctx, use)
	if err != nil {
		a.log.Error("recording a member code", "till", till, "err", err)
		return none, readRefusal("ledger", msgCodeLedger)
	}
	if repeat {
		return none, a.repeatRefusal(cl.MemberID, "", first.Till, first.SeenAt)
	}
	if a.sync != nil {
		res, err := a.sync.ClaimMemberCode(ctx, claimOf(use), a.claimTimeout())
		switch {
		case err != nil:
			// HQ unreachable: accept, and claim later; HQ records a repeat
			// it then finds.
			a.log.Info("member code accepted offline; claim queued", "till", till, "member", cl.MemberID, "err", err)
			if qerr := a.led.QueueMemberCodeClaim(ctx, use); qerr != nil {
				a.log.Error("queueing a member-code claim", "err", qerr)
			}
		case res.Repeat:
			return none, a.repeatRefusal(cl.MemberID, res.FirstStore, res.FirstTill, res.FirstSeenAt)
		}
	}
	return v, nil
}

// acceptShortCode checks a typed short code at HQ (it carries no
// signature a till could check), which also claims it for the till.
func (a *Agent) acceptShortCode(ctx context.Context, till, short string, now time.Time) (ledger.MemberView, *codeRefusal) {
	var none ledger.MemberView
	if a.sync == nil {
		return none, readRefusal("member_code_offline", msgShortOffline)
	}
	ans, err := a.sync.CheckShortCode(ctx, short, till, now, a.claimTimeout())
	switch {
	case errors.Is(err, client.ErrMemberCodeExpired):
		return none, refuse(events.TypeMemberCodeExpired, "expired", msgCodeExpired, "")
	case errors.Is(err, client.ErrMemberCodeWrong):
		return none, readRefusal("member_code_wrong", msgShortWrong)
	case err != nil:
		a.log.Info("a typed member code could not be checked at HQ", "till", till, "err", err)
		return none, readRefusal("member_code_offline", msgShortOffline)
	case ans.Claim.Repeat:
		return none, a.repeatRefusal(ans.Member, ans.Claim.FirstStore, ans.Claim.FirstTill, ans.Claim.FirstSeenAt)
	}
	v, rf := a.codeMember(ans.Member)
	if rf != nil {
		return none, rf
	}
	// Kept like a scanned code, so the QR of the same step scanned here
	// next is a repeat too.
	first, repeat, err := a.led.UseMemberCode(ctx, ledger.MemberCodeUse{Code: ans.Claim.Code, Member: ans.Member, Till: till,
		SeenAt: now.UTC(), Expires: ans.Expires, Until: ans.Expires.Add(membercode.Skew)})
	switch {
	case err != nil:
		a.log.Error("recording a member code", "till", till, "err", err)
	case repeat:
		return none, a.repeatRefusal(ans.Member, "", first.Till, first.SeenAt)
	}
	return v, nil
}

func (a *Agent) codeMember(id string) (ledger.MemberView, *codeRefusal) {
	v, err := a.led.Member(id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return v, readRefusal("member_not_here", msgCodeNotHere)
	case err != nil:
		a.log.Error("member lookup for a member code failed", "err", err)
		return v, readRefusal("ledger", [2]string{"the member could not be looked up — use the card or phone number, or call support if it repeats",
			"无法查询会员，请使用会员卡或手机号；如反复出现请联系技术支持"})
	}
	return v, nil
}

func (a *Agent) claimTimeout() time.Duration {
	if t := a.cfg.MemberCodes.ClaimTimeout; t > 0 {
		return t
	}
	return config.DefaultClaimTimeout
}

// handleMemberCode takes a scanned member code and publishes the member,
// or why the code was refused.
func (a *Agent) handleMemberCode(ev devices.Event) {
	mc := ev.MemberCode
	v, rf := a.acceptMemberCode(context.Background(), ev.Till, mc.Code.Text(), time.Now())
	var err error
	switch {
	case rf == nil:
		a.metrics.Read(ev.Device, "member")
		v = a.refreshMember(context.Background(), v)
		_, err = a.hub.Publish(events.TypeMember, ev.Till, MemberEvent{Member: a.api.Summary(v), Device: ev.Device,
			Kind: memberCodeKind, Symbology: mc.Symbology, Masked: decode.Mask(v.Member.ID)})
	case rf.typ == events.TypeReadError:
		a.metrics.Read(ev.Device, "error")
		_, err = a.hub.Publish(events.TypeReadError, ev.Till, ReadErrorEvent{Device: ev.Device, Code: rf.code,
			Message: rf.msg[0], Hint: rf.msg[0], HintZH: rf.msg[1]})
	default:
		a.metrics.Read(ev.Device, rf.typ)
		a.log.Info("member code refused", "device", ev.Device, "till", ev.Till, "reason", rf.reason, "member", rf.member)
		_, err = a.hub.Publish(rf.typ, ev.Till, MemberCodeEvent{Device: ev.Device, Symbology: mc.Symbology, Member: rf.member,
			Reason: rf.reason, Message: rf.msg[0], MessageZH: rf.msg[1], FirstStore: rf.firstStore, FirstTill: rf.firstTill,
			FirstSeenAt: rf.firstAt})
	}
	if err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
}

// typedMemberCode takes a member code typed (or pasted) at the cashier
// page or sent by the POS: a short code, or the QR's text.
func (a *Agent) typedMemberCode(ctx context.Context, till, text string) (ledger.MemberView, error) {
	now := time.Now()
	var (
		v  ledger.MemberView
		rf *codeRefusal
	)
	if membercode.Looks(strings.TrimSpace(text)) {
		v, rf = a.acceptMemberCode(ctx, till, strings.TrimSpace(text), now)
	} else if _, _, err := membercode.ParseShort(text); err == nil {
		v, rf = a.acceptShortCode(ctx, till, text, now)
	} else {
		return v, &api.MemberCodeError{Code: "invalid", Message: "a member code is the member id, '-' and 8 digits (as under the QR code), or the QR's text",
			MessageZH: "会员码格式为：会员号-8位数字（二维码下方所示）"}
	}
	if rf != nil {
		if rf.typ != events.TypeReadError {
			a.log.Info("typed member code refused", "till", till, "reason", rf.reason, "member", rf.member)
		}
		return v, &api.MemberCodeError{Code: rf.code, Message: rf.msg[0], MessageZH: rf.msg[1]}
	}
	return v, nil
}

// staticRefused reports (and tells the cashier) that a static member
// barcode was read where the config takes only the phone's signed code.
func (a *Agent) staticRefused(ev devices.Event) bool {
	if ev.Data == nil || ev.Data.Kind != "barcode" || !strings.EqualFold(strings.TrimSpace(a.cfg.MemberCodes.Static), config.StaticRefuse) {
		return false
	}
	a.metrics.Read(ev.Device, "error")
	if _, err := a.hub.Publish(events.TypeReadError, ev.Till, ReadErrorEvent{Device: ev.Device, Code: "static_refused",
		Message: msgStaticRefused[0], Hint: msgStaticRefused[0], HintZH: msgStaticRefused[1]}); err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
	return true
}

func claimOf(u ledger.MemberCodeUse) wire.MemberCodeClaim {
	return wire.MemberCodeClaim{Code: u.Code, Member: u.Member, Till: u.Till, SeenAt: u.SeenAt, Expires: u.Expires}
}

// The till keeps HQ's member-code keys (client.MemberCodeInbox); a key
// whose id is not its own is refused.
func (in inbox) ApplyMemberCodeKeys(keys []wire.MemberCodeKey) error {
	out := make([]ledger.MemberCodeKey, len(keys))
	for i, k := range keys {
		if len(k.Public) != ed25519.PublicKeySize || membercode.KeyID(k.Public) != k.ID {
			return fmt.Errorf("member-code key %q from HQ is not an Ed25519 public key with that id", k.ID)
		}
		out[i] = ledger.MemberCodeKey{ID: k.ID, Public: k.Public, NotAfter: k.NotAfter}
	}
	return in.l.ApplyMemberCodeKeys(out)
}

var _ client.MemberCodeInbox = inbox{}

// outbox is the ledger as the sync client's outbox, with the member-code
// claims queued while HQ was unreachable (client.MemberCodeClaimOutbox).
type outbox struct{ *ledger.Ledger }

func (o outbox) PendingMemberCodeClaims(limit int) ([]wire.MemberCodeClaim, error) {
	us, err := o.QueuedMemberCodeClaims(limit)
	out := make([]wire.MemberCodeClaim, len(us))
	for i, u := range us {
		out[i] = claimOf(u)
		out[i].Late = true
	}
	return out, err
}

func (o outbox) MemberCodeClaimsSent(codes []string) error { return o.DropMemberCodeClaims(codes) }

var _ client.MemberCodeClaimOutbox = outbox{}
