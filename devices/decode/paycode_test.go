package decode

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParsePayCode(t *testing.T) {
	cases := []struct {
		name, in string
		want     PayScheme // "" = not a payment code
	}{
		{"wechat 10", "101234567890123456", PayWeChat},
		{"wechat 13", "134567890123456789", PayWeChat},
		{"wechat 15 (Hong Kong)", "151234567890123456", PayWeChat},
		{"wechat 17 digits", "13456789012345678", ""},
		{"wechat 19 digits", "1345678901234567890", ""},
		{"wechat prefix 16", "161234567890123456", ""},
		{"wechat prefix 09", "091234567890123456", ""},
		{"alipay 16 digits 25", "2512345678901234", PayAlipay},
		{"alipay 18 digits 28", "287634438256643941", PayAlipay},
		{"alipay 24 digits 30", "301234567890123456789012", PayAlipay},
		{"alipay 15 digits", "281234567890123", ""},
		{"alipay 25 digits", "2812345678901234567890123", ""},
		{"alipay prefix 24", "241234567890123456", ""},
		{"alipay prefix 31", "311234567890123456", ""},
		{"unionpay 19 digits", "6227001234567890123", PayUnionPay},
		{"unionpay 18 digits", "622700123456789012", ""},
		{"unionpay 16 digits (a bank card number)", "6222021234567890", ""},
		{"unionpay 20 digits", "62270012345678901234", ""},
		{"unionpay prefix 63", "6327001234567890123", ""},
		{"space inside", "13456789 123456789", ""},
		{"letter inside", "13456789A123456789", ""},
		{"leading space", " 34567890123456789", ""},
		{"full-width digits", "１３４５６７８９０１２３４５６７８９", ""},
		{"member code", "MEMBER:12345", ""},
		{"EAN-13", "4006381333931", ""},
		{"empty", "", ""},
		{"GS1 SSCC", "001234560000000018", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, ok := ParsePayCode(c.in)
			if ok != (c.want != "") || p.Scheme() != c.want {
				t.Fatalf("ParsePayCode(%q) = %v %v, want %q", c.in, p.Scheme(), ok, c.want)
			}
			if ok && (p.Reveal() != c.in || !p.Valid()) {
				t.Fatalf("Reveal does not give back the digits")
			}
		})
	}
}

// A swipe or tap never is a payment code, whatever its digits: the same
// 19 digits from a card track are a UnionPay bank card.
func TestPayCodeOfBySource(t *testing.T) {
	const up = "6227001234567890123"
	if _, ok := PayCodeOf(Read{Kind: "barcode", Symbology: "QR", Data: up}); !ok {
		t.Fatal("a scanned UnionPay payment code not recognised")
	}
	if _, ok := PayCodeOf(Read{Kind: "barcode", Symbology: "Code 128", Data: "134567890123456789"}); !ok {
		t.Fatal("a scanned WeChat code not recognised")
	}
	swipe, err := MSR([]byte("%B" + up + "^ZHANG/SAN^2512101000000?;" + up + "=25121010000000?\r"))
	if err != nil {
		t.Fatal(err)
	}
	swipe.Data = up // even with the PAN as its data
	if _, ok := PayCodeOf(swipe); ok {
		t.Fatal("a card swipe taken for a payment code")
	}
	if _, ok := PayCodeOf(Read{Kind: "rfid", Data: up}); ok {
		t.Fatal("an RFID read taken for a payment code")
	}
}

func TestPayCodeRedacts(t *testing.T) {
	const code = "134567890123456789"
	p, ok := ParsePayCode(code)
	if !ok {
		t.Fatal("not recognised")
	}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10.3s"} {
		outs = append(outs, fmt.Sprintf(f, p))
	}
	type holder struct {
		P  PayCode
		PP *PayCode
	}
	h := holder{P: p, PP: &p}
	outs = append(outs, fmt.Sprintf("%v %+v %#v", h, h, h), fmt.Sprint(p), fmt.Sprintln(p), p.String(), p.GoString(),
		fmt.Errorf("charging %v: %w", p, fmt.Errorf("x")).Error())
	j, _ := json.Marshal(h)
	outs = append(outs, string(j))
	txt, _ := p.MarshalText()
	outs = append(outs, string(txt))
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("read", "code", p, "holder", h)
	slog.New(slog.NewTextHandler(&b, nil)).Info("read", "code", p)
	outs = append(outs, b.String())
	for _, o := range outs {
		if strings.Contains(o, code) || strings.Contains(o, code[len(code)-6:]) || strings.Contains(o, fmt.Sprintf("%x", code)[:12]) {
			t.Errorf("the code leaks: %s", o)
		}
		if !strings.Contains(o, "wechat") && !strings.Contains(o, "%!") {
			t.Errorf("the scheme is not shown: %s", o)
		}
	}
}
