package agent

import (
	"context"
	"errors"

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

// DeviceEvent is the data of a "device" event: a reader came or went.
type DeviceEvent struct {
	Device string `json:"device"`
	Online bool   `json:"online"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// dispatch turns reader events into stream events until the manager closes
// its channel (after ctx is done).
func (a *Agent) dispatch(ctx context.Context) {
	for ev := range a.dev.Events() {
		a.handleDeviceEvent(ev)
	}
}

func (a *Agent) handleDeviceEvent(ev devices.Event) {
	var err error
	switch {
	case ev.Data != nil:
		d := ev.Data
		v, lerr := a.led.MemberByToken(d.TokenHash)
		switch {
		case lerr == nil:
			a.metrics.Read(ev.Device, "member")
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
