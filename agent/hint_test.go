//go:build linux

package agent

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/agent/config"
	"posagent/agent/events"
	"posagent/devices/token"
)

// TestReadErrorHintsAgree: swipes the card rule refuses reach the stream
// with English and Chinese hints of the same kind — a misread says swipe
// again in both languages, a card of another program says it is not this
// store's card in both.
func TestReadErrorHintsAgree(t *testing.T) {
	r := newReader(t)
	rn := startWith(t, func(c *config.Config) {
		c.Devices[0].Rule = token.Rule{Source: token.SourceTrack2PAN, Prefix: "6222", Luhn: true}
	}, r)
	s := rn.stream(t, "T1")
	for _, tc := range []struct {
		name, swipe string
		want        token.Hint
	}{
		// Track 2 with a parity error ('E' is no track-2 character).
		{"track 2 misread", "%B" + pan + "^ZHANG/SAN^2512101000000?;E?\r", token.HintAgain},
		// The last digit of a Luhn-valid number changed.
		{"check digit", ";6222021234567890124=25121010000000?\r", token.HintAgainOrForeign},
		{"other program", ";4111111111111111=25121010000000?\r", token.HintForeign},
	} {
		r.write(t, tc.swipe)
		e := s.next(t, events.TypeReadError)
		var re ReadErrorEvent
		require.NoError(t, json.Unmarshal(e.Data, &re))
		require.Equal(t, "rule", re.Code, tc.name)
		require.Equal(t, tc.want.EN, re.Hint, tc.name)
		require.Equal(t, tc.want.ZH, re.HintZH, "%s: the Chinese hint must say what the English one says", tc.name)
	}
}
