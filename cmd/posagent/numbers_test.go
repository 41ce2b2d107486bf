package main

import (
	"strings"
	"testing"
)

// TestCLINumbersTooLarge: a number too large for its field is answered as
// too large, with the maximum, before anything is sent to the agent.
func TestCLINumbersTooLarge(t *testing.T) {
	huge := "99999999999999999999" // beyond int64
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sale", "--receipt", "R1", "--line", "A:" + huge + ":1"}, "at most 1000000000"},
		{[]string{"quote", "--line", "A:" + huge + ":1"}, "at most 1000000000"},
		{[]string{"sale", "--receipt", "R1", "--line", "A:1:" + huge}, "at most 1000000000000 yuan"},
		{[]string{"sale", "--receipt", "R1", "--line", "A:1:1", "--redeem", huge}, "at most 1000000000000000"},
		{[]string{"sale", "--receipt", "R1", "--line", "A:1:1", "--stored-value", huge}, "at most 1000000000000 yuan"},
		{[]string{"topup", "--member", "M1", "--id", "T1", "--amount", huge}, "at most 1000000000000 yuan"},
		{[]string{"refund", "--receipt", "R1", "--id", "RF1", "--line", "1:" + huge}, "at most 1000000000"},
		{[]string{"refund", "--receipt", "R1", "--id", "RF1", "--line", huge + ":1"}, "at most 10000"},
	} {
		code, out, errOut := runCLI(t, append(tc.args, "--api", "http://127.0.0.1:1", "--token", "cli-test-token-0123456789")...)
		msg := out + errOut
		if code == 0 || !strings.Contains(msg, "too large") || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: exit %d, %q; want too large, %s", tc.args, code, msg, tc.want)
		}
	}
}
