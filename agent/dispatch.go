package agent

import (
	"context"
	"errors"
	"sync"

	"posagent/agent/api"
	"posagent/agent/events"
	"posagent/devices"
	"posagent/ledger"
)

// MemberEvent is the data of a "member" event: a read identified a member.
type MemberEvent struct {
	Member    api.MemberSummary `json:"member"`
	Device    string            `json:"device"`
	Kind      string            `json:"kind"` // msr | rfid | barcode
	Symbology string            `json:"symbology,omitempty"`
	Masked    string            `json:"masked"` // the card number, masked
}

// CardUnknownEvent is the data of a "card_unknown" event: a good read that
// no member holds. CardHash can be sent to enrol (card_hash) so the new
// member gets this card without anyone typing its number.
type CardUnknownEvent struct {
	Device    string `json:"device"`
	Kind      string `json:"kind"`
	Symbology string `json:"symbology,omitempty"`
	Masked    string `json:"masked"`
	CardHash  string `json:"card_hash"`
}

// ReadErrorEvent is the data of a "read_error" event.
type ReadErrorEvent struct {
	Device  string `json:"device"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint"`    // what to tell the cashier (English)
	HintZH  string `json:"hint_zh"` // the same in Chinese
}

// PaymentCodeEvent is the data of a "payment_code" event: a customer's
// payment code, for the POS of the till to charge. It is published live
// only (events.Hub.PublishLive): never kept in the ring, never sent to a
// cashier page, never logged.
type PaymentCodeEvent struct {
	Device    string `json:"device"`
	Scheme    string `json:"scheme"` // wechat | alipay | unionpay
	Code      string `json:"code"`   // the digits, as the wallet's "auth_code"
	Symbology string `json:"symbology,omitempty"`
}

// String redacts, so the event printed by mistake shows no code.
func (e PaymentCodeEvent) String() string {
	return "payment_code device=" + e.Device + " scheme=" + e.Scheme + " code=(redacted)"
}

// GoString redacts too.
func (e PaymentCodeEvent) GoString() string { return e.String() }

// PaymentCodeReadEvent is the data of a "payment_code_read" event, kept in
// the ring for the till's clients (the cashier page among them): that a
// payment code was read and what became of it, without any of its digits.
type PaymentCodeReadEvent struct {
	Device    string `json:"device"`
	Scheme    string `json:"scheme"`
	Delivered bool   `json:"delivered"` // a POS of the till took it
	Dropped   bool   `json:"dropped"`   // payment_codes: drop
	Message   string `json:"message"`   // what to tell the cashier (English)
	MessageZH string `json:"message_zh"`
}

// DeviceEvent is the data of a "device" event: a reader came or went.
type DeviceEvent struct {
	Device string `json:"device"`
	Online bool   `json:"online"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// deviceOptions are added to the device manager's options; tests set them
// to replay recorded HID reports through a real agent.
var deviceOptions []devices.Option

// dispatch turns reader events into stream events until the manager closes
// its channel (after ctx is done). Each reader has its own queue: its reads
// are answered in the order read, and a read that waits (a member code's
// claim at HQ, up to the claim timeout; a member's refresh from HQ, up to
// the refresh timeout) holds up only the reads of its own reader, never
// those of the till's other readers.
func (a *Agent) dispatch(ctx context.Context) {
	queues := map[string]chan devices.Event{}
	var wg sync.WaitGroup
	for ev := range a.dev.Events() {
		q, ok := queues[ev.Device]
		if !ok {
			// Room for a burst of reads behind a pending claim; a reader
			// that outpaces it blocks the loop rather than growing memory.
			q = make(chan devices.Event, readQueue)
			queues[ev.Device] = q
			wg.Go(func() {
				for ev := range q {
					a.handleDeviceEvent(ev)
				}
			})
		}
		q <- ev
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

// readQueue is how many reads of one reader wait for its answer in hand.
const readQueue = 64

func (a *Agent) handleDeviceEvent(ev devices.Event) {
	var err error
	switch {
	case ev.Data != nil && a.staticRefused(ev):
	case ev.Data != nil:
		d := ev.Data
		v, lerr := a.led.MemberByToken(d.TokenHash)
		switch {
		case lerr == nil:
			a.metrics.Read(ev.Device, "member")
			v = a.refreshMember(context.Background(), v)
			_, err = a.hub.Publish(events.TypeMember, ev.Till, MemberEvent{Member: a.api.Summary(v),
				Device: ev.Device, Kind: d.Kind, Symbology: d.Symbology, Masked: d.Masked})
		case errors.Is(lerr, ledger.ErrNotFound):
			a.metrics.Read(ev.Device, "unknown")
			_, err = a.hub.Publish(events.TypeCardUnknown, ev.Till, CardUnknownEvent{
				Device: ev.Device, Kind: d.Kind, Symbology: d.Symbology, Masked: d.Masked, CardHash: d.TokenHash})
		default:
			a.metrics.Read(ev.Device, "error")
			a.log.Error("member lookup for a read failed", "device", ev.Device, "err", lerr)
			_, err = a.hub.Publish(events.TypeReadError, ev.Till, ReadErrorEvent{Device: ev.Device, Code: "ledger",
				Message: "the member could not be looked up", Hint: "type the card number, or call support if it repeats",
				HintZH: "无法查询会员，请手动输入卡号；如反复出现请联系技术支持"})
		}
	case ev.Payment != nil:
		a.handlePayment(ev)
	case ev.MemberCode != nil:
		a.handleMemberCode(ev)
	case ev.Error != nil:
		a.metrics.Read(ev.Device, "error")
		hint, zh := ev.Error.Hint, ev.Error.HintZH
		if hint == "" {
			hint, zh = "swipe or scan again", "请重新刷卡或扫码"
		}
		if zh == "" {
			zh = hintZH(ev.Error.Code)
		}
		_, err = a.hub.Publish(events.TypeReadError, ev.Till, ReadErrorEvent{Device: ev.Device, Code: ev.Error.Code,
			Message: ev.Error.Message, Hint: hint, HintZH: zh})
	case ev.Status != nil:
		a.log.Info("reader state", "device", ev.Device, "online", ev.Status.Online, "state", ev.Status.State, "detail", ev.Status.Detail)
		_, err = a.hub.Publish(events.TypeDevice, ev.Till, DeviceEvent{Device: ev.Device, Online: ev.Status.Online,
			State: ev.Status.State, Detail: ev.Status.Detail})
	}
	if err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
}

// handlePayment hands a payment code to the POS of the till only, and
// tells the till's clients (without the code) what became of it. Nothing
// here writes the code anywhere: not the ledger, not a log line, not the
// metrics (their labels are the device and "payment_code"), not the ring.
func (a *Agent) handlePayment(ev devices.Event) {
	p := ev.Payment
	a.metrics.Read(ev.Device, "payment_code")
	read := PaymentCodeReadEvent{Device: ev.Device, Scheme: string(p.Scheme), Dropped: p.Dropped}
	if !p.Dropped && p.Code.Valid() {
		n, err := a.hub.PublishLive(events.TypePaymentCode, ev.Till, PaymentCodeEvent{Device: ev.Device,
			Scheme: string(p.Scheme), Code: p.Code.Reveal(), Symbology: p.Symbology})
		if err != nil {
			a.log.Warn("handing a payment code to the POS", "device", ev.Device, "scheme", string(p.Scheme), "err", err)
		}
		read.Delivered = n > 0
	}
	switch {
	case read.Delivered:
		read.Message, read.MessageZH = "payment code sent to the POS — finish the payment there", "付款码已发送到收银系统，请在收银系统完成收款"
	case p.Dropped:
		read.Message, read.MessageZH = "payment code read — this scanner does not take payments; charge it in the POS", "已读取付款码，本扫码枪不用于收款，请在收银系统扫码收款"
	default:
		read.Message, read.MessageZH = "payment code read — charge it in the POS", "已读取付款码，请在收银系统收款"
	}
	a.log.Info("payment code read", "device", ev.Device, "till", ev.Till, "scheme", string(p.Scheme),
		"delivered", read.Delivered, "dropped", read.Dropped)
	if _, err := a.hub.Publish(events.TypePaymentCodeRead, ev.Till, read); err != nil {
		a.log.Warn("publishing a reader event", "device", ev.Device, "err", err)
	}
}

// hintZH is what to tell the cashier in Chinese, by the devices' error
// code, for errors whose hint the devices layer has only in English. The
// card rule's errors carry their own pair (token.Hints), so "rule" here is
// only a fallback.
func hintZH(code string) string {
	switch code {
	case "rule":
		return "这不是本店的会员卡或会员码，请核对"
	case "checksum", "bad_read", "format", "framing", "too_long", "report":
		return "读卡失败，请重新刷卡或扫码"
	}
	return "读卡失败，请重试；也可手动输入卡号"
}
