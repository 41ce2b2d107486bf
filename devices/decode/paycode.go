package decode

import (
	"fmt"
	"log/slog"
)

// PayScheme names the wallet a payment code belongs to.
type PayScheme string

// Payment code schemes.
const (
	PayWeChat   PayScheme = "wechat"   // WeChat Pay 付款码
	PayAlipay   PayScheme = "alipay"   // Alipay 付款码
	PayUnionPay PayScheme = "unionpay" // UnionPay QR payment code (云闪付付款码)
)

// PayCode is a customer's payment code (the "auth_code" a POS sends to
// charge the customer's wallet). It is a bearer credential: whoever holds
// the digits can charge the wallet until the code expires (about a minute).
// The digits are unexported and every way of printing or encoding a PayCode
// (String, GoString, Format with any verb, LogValue, MarshalJSON,
// MarshalText) shows only the scheme, so a PayCode that reaches a log line,
// an error string or a JSON document by mistake does not leak it. Reveal is
// the one way to the digits; call it only to hand the code to the POS.
type PayCode struct {
	scheme PayScheme
	digits string
}

// Scheme is the code's wallet; empty for the zero PayCode.
func (p PayCode) Scheme() PayScheme { return p.scheme }

// Valid reports whether p holds a recognised code.
func (p PayCode) Valid() bool { return p.scheme != "" && p.digits != "" }

// Reveal returns the digits, for the POS that charges them and nothing else.
func (p PayCode) Reveal() string { return p.digits }

// String shows the scheme only.
func (p PayCode) String() string {
	if p.scheme == "" {
		return "payment code (none)"
	}
	return "payment code " + string(p.scheme) + " (redacted)"
}

// GoString redacts for %#v.
func (p PayCode) GoString() string { return "decode.PayCode{" + p.String() + "}" }

// Format redacts for every verb (%v, %+v, %s, %q, %x, %d…), which would
// otherwise print unexported fields through reflection.
func (p PayCode) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, p.GoString())
		return
	}
	fmt.Fprint(f, p.String())
}

// LogValue redacts for log/slog.
func (p PayCode) LogValue() slog.Value {
	return slog.GroupValue(slog.String("scheme", string(p.scheme)), slog.String("code", "redacted"))
}

// MarshalJSON encodes the scheme only.
func (p PayCode) MarshalJSON() ([]byte, error) {
	return []byte(`{"scheme":"` + string(p.scheme) + `"}`), nil // schemes are plain ASCII constants
}

// MarshalText encodes the scheme only.
func (p PayCode) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// PayCodeOf reports whether a read is a customer's payment code.
//
// Only scanned barcodes (Kind "barcode", any symbology: wallets show the
// code as Code 128 and QR) are payment codes. A magnetic-stripe swipe or an
// RFID UID never is, whatever its digits: a UnionPay bank card's number
// also starts with 62 and has 16–19 digits, but it comes from a card track,
// and a 19-digit 62… number read from a scanner is a phone's payment code,
// since bank cards carry no barcode. The check runs before any card rule so
// a payment code is never hashed or looked up as a member.
func PayCodeOf(rd Read) (PayCode, bool) {
	if rd.Kind != "barcode" {
		return PayCode{}, false
	}
	return ParsePayCode(rd.Data)
}

// ParsePayCode recognises the published formats of payment codes:
//
//   - WeChat Pay: 18 digits beginning 10–15 (WeChat Pay, "auth_code",
//     pay.weixin.qq.com/wiki/doc/api/wxpay/en/guide/pos/ImportantParameters.shtml:
//     10–14 mainland users, 15 Hong Kong users);
//   - Alipay: 16–24 digits beginning 25–30 (Alipay alipay.trade.pay,
//     "auth_code": 25~30开头的长度为16~24位的数字);
//   - UnionPay: 19 digits beginning 62 (UnionPay QR code payment, C2B
//     付款码: 62开头的19位数字; UnionPay's QR specification is given to
//     acquirers, not published: check it against the acquirer's API
//     documentation when adding a scheme or length).
//
// Anything else, including a near miss (17 digits beginning 13, a space or
// a letter in the digits), is not a payment code.
func ParsePayCode(s string) (PayCode, bool) {
	n := len(s)
	if n < 16 || n > 24 || !allDigits(s) {
		return PayCode{}, false
	}
	p := int(s[0]-'0')*10 + int(s[1]-'0')
	switch {
	case n == 18 && p >= 10 && p <= 15:
		return PayCode{scheme: PayWeChat, digits: s}, true
	case p >= 25 && p <= 30:
		return PayCode{scheme: PayAlipay, digits: s}, true
	case n == 19 && p == 62:
		return PayCode{scheme: PayUnionPay, digits: s}, true
	}
	return PayCode{}, false
}
