package token

import (
	"errors"
	"strings"
	"testing"

	"posagent/devices/decode"
)

// TestHintsSayTheSame pairs each kind of card-rule hint with its English
// and Chinese text and checks that both tell the cashier the same thing:
// a misread says read again in both, a foreign card says it is not this
// store's card in both, and so on.
func TestHintsSayTheSame(t *testing.T) {
	type says struct{ again, foreign, support bool }
	want := map[string]says{
		HintAgain.Kind:          {again: true},
		HintAgainOrForeign.Kind: {again: true, foreign: true},
		HintForeign.Kind:        {foreign: true},
		HintSetup.Kind:          {support: true},
	}
	if len(Hints) != len(want) {
		t.Fatalf("%d hints, %d kinds in this table: add the new kind here", len(Hints), len(want))
	}
	for _, h := range Hints {
		w, ok := want[h.Kind]
		if !ok {
			t.Errorf("hint kind %q is not in this table", h.Kind)
			continue
		}
		en := says{
			again:   strings.Contains(h.EN, "again"),
			foreign: strings.Contains(h.EN, "not this store's"),
			support: strings.Contains(h.EN, "call support"),
		}
		zh := says{
			again:   strings.Contains(h.ZH, "重新"),
			foreign: strings.Contains(h.ZH, "不是本店的会员卡"),
			support: strings.Contains(h.ZH, "联系技术支持"),
		}
		if en != w {
			t.Errorf("%s: English %q says %+v, want %+v", h.Kind, h.EN, en, w)
		}
		if zh != w {
			t.Errorf("%s: Chinese %q says %+v, want %+v", h.Kind, h.ZH, zh, w)
		}
	}
}

// TestRuleErrorHints: every way the card rule refuses a read carries the
// hint pair of its kind, English and Chinese together.
func TestRuleErrorHints(t *testing.T) {
	good := msr(t, "%B"+pan+"^LI/LEI^3012?;"+pan+"=3012101?\r")
	track2 := Rule{Source: SourceTrack2PAN, Prefix: "6222,6223", Luhn: true}
	for _, tc := range []struct {
		name string
		rule Rule
		r    decode.Read
		want Hint
	}{
		{"track 2 misread (parity)", track2, msr(t, "%B"+pan+"^LI/LEI^3012?;E?"), HintAgain},
		{"track 2 not read", track2, msr(t, "%B"+pan+"^LI/LEI^3012?"), HintAgainOrForeign},
		{"luhn failure", track2, msr(t, ";6222021234567890127=3012?"), HintAgainOrForeign},
		{"luhn failure, barcode", Rule{Source: SourceBarcodeRegex, Luhn: true}, decode.Read{Kind: "barcode", Data: "6222021234567890127"}, HintAgainOrForeign},
		{"prefix", Rule{Source: SourceTrack2PAN, Prefix: "4"}, good, HintForeign},
		{"no card number on track 2", Rule{Source: SourceTrack2PAN}, msr(t, ";12345=3012?"), HintForeign},
		{"not a member code", Rule{Source: SourceBarcodeRegex, Regex: `^M(\d{8})$`, Group: 1}, decode.Read{Kind: "barcode", Data: "6901234567892"}, HintForeign},
		{"empty token", Rule{Source: SourceBarcodeRegex}, decode.Read{Kind: "barcode", Data: ""}, HintForeign},
		{"UID too short", Rule{Source: SourceUID, UIDFormat: "dec10"}, decode.Read{Kind: "rfid", UID: []byte{1, 2}}, HintForeign},
		{"swipe rule, barcode read", track2, decode.Read{Kind: "barcode", Data: pan}, HintSetup},
		{"barcode rule, swipe", Rule{Source: SourceBarcodeRegex}, good, HintSetup},
		{"uid rule, no UID", Rule{Source: SourceUID}, decode.Read{Kind: "barcode", Data: "x"}, HintSetup},
		{"broken rule", Rule{Source: "nonsense"}, good, HintSetup},
	} {
		_, err := tc.rule.Token(tc.r)
		var de *decode.Error
		if !errors.As(err, &de) || !errors.Is(err, decode.ErrRule) {
			t.Errorf("%s: want a rule error, got %v", tc.name, err)
			continue
		}
		if de.Hint != tc.want.EN || de.HintZH != tc.want.ZH {
			t.Errorf("%s: hint %q / %q, want the %s pair %q / %q", tc.name, de.Hint, de.HintZH, tc.want.Kind, tc.want.EN, tc.want.ZH)
		}
	}
}
