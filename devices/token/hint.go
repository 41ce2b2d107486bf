package token

import (
	"errors"

	"posagent/devices/decode"
)

// Hint is what the till tells the cashier about a read the card rule
// refused, in English and in Chinese; the two say the same thing. Each
// refusal has one of the kinds below, so the cashier hears "read it again"
// for a misread and "not our card" for a foreign card, in either language.
type Hint struct {
	Kind string // again | again_or_foreign | foreign | setup
	EN   string
	ZH   string
}

// The hints a card-rule error carries.
var (
	// HintAgain: the card was misread (a track with a parity error).
	HintAgain = Hint{"again", "swipe the card again", "请重新刷卡"}
	// HintAgainOrForeign: a misread or a card that is not ours look the
	// same (no track 2, a failed check digit); trying again tells which.
	HintAgainOrForeign = Hint{"again_or_foreign",
		"read the card again; if it fails again, this is not this store's member card or code",
		"请重新刷卡或扫码；如仍失败，这不是本店的会员卡或会员码"}
	// HintForeign: the read is good but it is not a member card or code of
	// this store (wrong prefix, pattern or number).
	HintForeign = Hint{"foreign",
		"this is not this store's member card or code",
		"这不是本店的会员卡或会员码"}
	// HintSetup: the reader's card rule does not fit the reader (a swipe
	// rule on a scanner, a rule that does not validate): no card reads.
	HintSetup = Hint{"setup",
		"this reader's card rule does not fit the reader; call support to fix the reader setup",
		"读卡器的卡规则设置有误，请联系技术支持检查读卡器设置"}
)

// Hints lists every hint kind, for the cashier page and tests.
var Hints = []Hint{HintAgain, HintAgainOrForeign, HintForeign, HintSetup}

// ruleError is a card-rule refusal with the hint pair h.
func ruleError(h Hint, format string, args ...any) *decode.Error {
	e := decode.NewError(decode.ErrRule, h.EN, format, args...)
	e.HintZH = h.ZH
	return e
}

// withHint gives a rule error from the decode package the hint pair h;
// other errors pass unchanged.
func withHint(err error, h Hint) error {
	var de *decode.Error
	if errors.As(err, &de) && errors.Is(err, decode.ErrRule) {
		return ruleError(h, "%s", de.Message)
	}
	return err
}
