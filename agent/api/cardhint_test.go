package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
)

// TestTypedCardMessagesAgree: a typed card number the card rule refuses
// gets a message about typing (not swiping) in both languages, and the
// English and Chinese say the same thing for each kind of refusal.
func TestTypedCardMessagesAgree(t *testing.T) {
	good := luhnCard(t)
	bad := good[:len(good)-1] + string(rune('0'+(good[len(good)-1]-'0'+1)%10)) // wrong check digit
	type says struct{ retype, foreign bool }
	for _, tc := range []struct {
		name  string
		rule  config.CardRule
		typed string
		want  says
	}{
		{"check digit", config.CardRule{Luhn: true}, bad, says{retype: true, foreign: true}},
		{"prefix", config.CardRule{Prefix: "8888"}, good, says{retype: true, foreign: true}},
		{"length", config.CardRule{MinLength: 20}, good, says{retype: true}},
		{"empty", config.CardRule{}, "  ", says{retype: true}},
	} {
		_, err := CardToken(tc.rule, tc.typed)
		var ce *CardError
		require.True(t, errors.As(err, &ce), "%s: %v", tc.name, err)
		require.Equal(t, ce.EN, err.Error())
		en := says{retype: strings.Contains(ce.EN, "type it again") || strings.Contains(ce.EN, "type the card number"),
			foreign: strings.Contains(ce.EN, "not this store's")}
		zh := says{retype: strings.Contains(ce.ZH, "重新输入") || strings.Contains(ce.ZH, "请输入卡号"),
			foreign: strings.Contains(ce.ZH, "不是本店")}
		require.Equal(t, tc.want, en, "%s: English %q", tc.name, ce.EN)
		require.Equal(t, tc.want, zh, "%s: Chinese %q", tc.name, ce.ZH)
		for _, swipe := range []string{"swipe", "read the card", "scan"} {
			require.NotContains(t, ce.EN, swipe, "%s: a typed number is not read again", tc.name)
		}
	}

	// The API answers the pair.
	f := newFixture(t, nil)
	code, raw := f.call(t, "POST", "/v1/members/lookup", apiToken, map[string]string{"card": bad})
	require.Equal(t, http.StatusBadRequest, code)
	e := errCode(t, raw)
	require.Equal(t, "bad_card", e.Code)
	require.Contains(t, e.Message, "check digit")
	require.Contains(t, e.MessageZH, "校验")
}
