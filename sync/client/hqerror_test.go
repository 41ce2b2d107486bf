package client

import (
	"net/http"
	"strings"
	"testing"
)

// The hint points at what the store's staff must fix.
func TestHQErrorHint(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		want   string
	}{
		{http.StatusForbidden, "client_cert_mismatch", "client certificate"},
		{http.StatusForbidden, "client_cert_required", "client certificate"},
		{http.StatusUnauthorized, "unauthorized", "HQ token"},
		{http.StatusForbidden, "forbidden", "HQ token"},
		{http.StatusServiceUnavailable, "busy", "retrying later"},
	} {
		msg := (&hqError{status: c.status, code: c.code, message: "m"}).Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("%d %s: %q does not mention %q", c.status, c.code, msg, c.want)
		}
	}
}
