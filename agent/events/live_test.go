package events

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A live event reaches only the POS subscribers of its till, and no
// resume or replay hands it out again.
func TestPublishLiveOnlyToThePOSOfTheTill(t *testing.T) {
	h := NewHub(8)
	before := h.LastID()
	posT1, _, _ := h.SubscribePOS("T1", 0, false, 4)
	posT2, _, _ := h.SubscribePOS("T2", 0, false, 4)
	posAll, _, _ := h.SubscribePOS("", 0, false, 4)
	pageT1, _, _ := h.Subscribe("T1", 0, false, 4)
	_, err := h.Publish(TypeMember, "T1", map[string]string{"a": "1"})
	require.NoError(t, err)
	n, err := h.PublishLive(TypePaymentCode, "T1", map[string]string{"code": "134567890123456789"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = h.Publish(TypeMember, "T1", map[string]string{"a": "2"})
	require.NoError(t, err)

	got := func(s *Sub) []string {
		var out []string
		for len(s.C) > 0 {
			e := <-s.C
			out = append(out, e.Type)
		}
		return out
	}
	require.Equal(t, []string{TypeMember, TypePaymentCode, TypeMember}, got(posT1))
	require.Empty(t, got(posT2))
	require.Equal(t, []string{TypeMember, TypeMember}, got(posAll), "a POS of every till is not the POS of this till")
	require.Equal(t, []string{TypeMember, TypeMember}, got(pageT1))

	// Resuming from before it, as a POS of that till: the ring has not got it.
	_, backlog, gap := h.SubscribePOS("T1", before, true, 8)
	require.False(t, gap)
	require.Len(t, backlog, 2)
	for i, e := range backlog {
		require.NotContains(t, string(e.encode()), "134567890123456789")
		if i > 0 {
			require.Greater(t, e.ID, backlog[i-1].ID)
		}
	}

	// Nobody to take it: delivered is 0 and nothing is kept.
	n, err = h.PublishLive(TypePaymentCode, "T9", map[string]string{"code": "x"})
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = h.PublishLive(TypePaymentCode, "", nil)
	require.Error(t, err)
	_, err = h.PublishLive(TypePaymentCode, "T1", map[string]any{"code": "134567890123456789", "bad": func() {}})
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "1345"), err.Error())
}
