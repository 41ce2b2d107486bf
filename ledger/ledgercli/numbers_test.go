package ledgercli

import (
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
)

// TestNumbersTooLarge: a number too large for the field (beyond int64, or
// beyond what the loyalty rules allow) is answered "too large" with the
// maximum, not as if it were malformed; malformed and negative numbers keep
// their own message.
func TestNumbersTooLarge(t *testing.T) {
	maxQty := strconv.FormatInt(loyalty.MaxQty, 10)
	for _, tc := range []struct {
		line, want, not string
	}{
		{"A:99999999999999999999:1", "too large", "whole number"}, // beyond int64
		{"A:9223372036854775807:1", "too large", "whole number"},  // int64 max, beyond MaxQty
		{"A:" + strconv.FormatInt(loyalty.MaxQty+1, 10) + ":1", "too large", "whole number"},
		{"A:1:99999999999999999999", "too large", "two decimals"}, // price beyond int64 fen
		{"A:1:1000000000001", "too large", "two decimals"},        // price beyond the maximum
		{"A:-99999999999999999999:1", "whole number of 1 or more", "too large"},
		{"A:0:1", "whole number of 1 or more", "too large"},
		{"A:x:1", "whole number of 1 or more", "too large"},
	} {
		_, err := ParseLine(1, tc.line)
		require.Error(t, err, tc.line)
		require.Contains(t, err.Error(), tc.want, tc.line)
		require.NotContains(t, err.Error(), tc.not, tc.line)
		if tc.want == "too large" && strings.Split(tc.line, ":")[1] != "1" {
			require.Contains(t, err.Error(), "at most "+maxQty, tc.line)
		}
	}
	l, err := ParseLine(1, "A:"+maxQty+":1")
	require.NoError(t, err, "the largest quantity is accepted")
	require.Equal(t, loyalty.MaxQty, l.Qty)

	// Points on the command line.
	for _, tc := range []struct{ in, want string }{
		{"99999999999999999999", "too large"},
		{strconv.FormatInt(loyalty.MaxPoints+1, 10), "too large"},
		{"-5", "0 or more"},
		{"12x", "whole number"},
	} {
		var p int64
		fs := (&cobra.Command{}).Flags()
		fs.Var(Points(&p), "redeem", "points to redeem")
		err := fs.Parse([]string{"--redeem", tc.in})
		require.Error(t, err, tc.in)
		require.Contains(t, err.Error(), tc.want, tc.in)
		if tc.want == "too large" {
			require.Contains(t, err.Error(), "at most "+strconv.FormatInt(loyalty.MaxPoints, 10), tc.in)
		}
	}
	var p int64
	fs := (&cobra.Command{}).Flags()
	fs.Var(Points(&p), "redeem", "points to redeem")
	require.NoError(t, fs.Parse([]string{"--redeem", "1500"}))
	require.Equal(t, int64(1500), p)
}
