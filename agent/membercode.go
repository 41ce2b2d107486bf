package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

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

// handleMemberCode verifies a scanned member code with HQ's public keys
// and publishes the member, or why the code was refused. A code accepted
// here is kept until it expires (a second scan is a repeat) and claimed at
// HQ (a scan at another till is a repeat); with HQ unreachable the claim
// waits in the ledger and the code is accepted.
func (a *Agent) handleMemberCode(ev devices.Event) {
	mc := ev.MemberCode
	now := time.Now()
	pub := func(typ string, reason string, msg [2]string, member string) {
		a.metrics.Read(ev.Device, typ)
		a.log.Info("member code refused", "device", ev.Device, "till", ev.Till, "reason", reason, "member", member)
		if _, err := a.hub.Publish(typ, ev.Till, MemberCodeEvent{Device: ev.Device, Symbology: mc.Symbology, Member: member,
			Reason: reason, Message: msg[0], MessageZH: msg[1]}); err != nil {
			a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
		}
	}
	readErr := func(code string, msg [2]string) {
		a.metrics.Read(ev.Device, "error")
		if _, err := a.hub.Publish(events.TypeReadError, ev.Till, ReadErrorEvent{Device: ev.Device, Code: code,
			Message: msg[0], Hint: msg[0], HintZH: msg[1]}); err != nil {
			a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
		}
	}
	lk, err := a.led.MemberCodeKeys()
	if err != nil {
		a.log.Error("reading the member-code keys", "err", err)
		readErr("ledger", [2]string{"the member code could not be checked — use the card or phone number, or call support if it repeats",
			"无法核验会员码，请使用会员卡或手机号；如反复出现请联系技术支持"})
		return
	}
	keys := make([]membercode.VerifyKey, len(lk))
	for i, k := range lk {
		keys[i] = membercode.VerifyKey{ID: k.ID, Public: ed25519.PublicKey(k.Public), NotAfter: k.NotAfter}
	}
	cl, err := membercode.Verify(keys, mc.Code.Text(), now)
	switch {
	case errors.Is(err, membercode.ErrNoKeys):
		readErr("member_code_no_keys", msgCodeNoKeys)
		return
	case errors.Is(err, membercode.ErrForeign):
		pub(events.TypeMemberCodeForeign, "unknown_key", msgCodeForeign, "")
		return
	case errors.Is(err, membercode.ErrBadSignature):
		pub(events.TypeMemberCodeForeign, "bad_signature", msgCodeForeign, "")
		return
	case errors.Is(err, membercode.ErrExpired) && now.Before(cl.Issued.Add(-membercode.Skew)):
		pub(events.TypeMemberCodeExpired, "clock", msgCodeClock, cl.MemberID)
		return
	case errors.Is(err, membercode.ErrExpired):
		pub(events.TypeMemberCodeExpired, "expired", msgCodeExpired, cl.MemberID)
		return
	case err != nil:
		readErr("format", [2]string{"scan again; if it repeats, ask the member to refresh the code", "请重新扫码；如反复失败，请会员刷新会员码"})
		return
	}
	v, err := a.led.Member(cl.MemberID)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		readErr("member_not_here", msgCodeNotHere)
		return
	case err != nil:
		a.log.Error("member lookup for a member code failed", "device", ev.Device, "err", err)
		readErr("ledger", [2]string{"the member could not be looked up — use the card or phone number, or call support if it repeats",
			"无法查询会员，请使用会员卡或手机号；如反复出现请联系技术支持"})
		return
	}
	ctx := context.Background()
	use := ledger.MemberCodeUse{Code: cl.ID, Member: cl.MemberID, Till: ev.Till, SeenAt: now.UTC(), Expires: cl.Expires,
		Until: cl.Expires.Add(membercode.Skew)}
	first, repeat, err := a.led.UseMemberCode(ctx, use)
	if err != nil {
		a.log.Error("recording a member code", "device", ev.Device, "err", err)
		readErr("ledger", [2]string{"the member code could not be recorded — use the card or phone number, or call support if it repeats",
			"无法记录会员码，请使用会员卡或手机号；如反复出现请联系技术支持"})
		return
	}
	if repeat {
		a.publishRepeat(ev, cl.MemberID, "", first.Till, first.SeenAt)
		return
	}
	if a.sync != nil {
		timeout := a.cfg.MemberCodes.ClaimTimeout
		if timeout <= 0 {
			timeout = config.DefaultClaimTimeout
		}
		wc := claimOf(use)
		res, err := a.sync.ClaimMemberCode(ctx, wc, timeout)
		switch {
		case err != nil:
			// HQ unreachable: accept, and claim later; HQ records a repeat
			// it then finds.
			a.log.Info("member code accepted offline; claim queued", "device", ev.Device, "member", cl.MemberID, "err", err)
			use.SeenAt = wc.SeenAt
			if qerr := a.led.QueueMemberCodeClaim(ctx, use); qerr != nil {
				a.log.Error("queueing a member-code claim", "err", qerr)
			}
		case res.Repeat:
			a.publishRepeat(ev, cl.MemberID, res.FirstStore, res.FirstTill, res.FirstSeenAt)
			return
		}
	}
	a.metrics.Read(ev.Device, "member")
	if _, err := a.hub.Publish(events.TypeMember, ev.Till, MemberEvent{Member: a.api.Summary(v), Device: ev.Device,
		Kind: memberCodeKind, Symbology: mc.Symbology, Masked: decode.Mask(cl.MemberID)}); err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
}

func (a *Agent) publishRepeat(ev devices.Event, member, store, till string, at time.Time) {
	if store == a.cfg.Store {
		store = ""
	}
	a.metrics.Read(ev.Device, events.TypeMemberCodeRepeat)
	where := till
	if store != "" {
		where = store + "/" + till
	}
	a.log.Warn("member code used again", "device", ev.Device, "till", ev.Till, "member", member, "first", where)
	e := MemberCodeEvent{Device: ev.Device, Symbology: ev.MemberCode.Symbology, Member: member, Reason: "repeat",
		Message: msgCodeRepeat[0], MessageZH: msgCodeRepeat[1], FirstStore: store, FirstTill: till, FirstSeenAt: at}
	if _, err := a.hub.Publish(events.TypeMemberCodeRepeat, ev.Till, e); err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
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
