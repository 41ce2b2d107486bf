package hq

import (
	"context"
	"errors"
	"time"
)

// memberCode is the member's current code: QR text, short number, expiry.
func (s *Server) memberCode(ctx context.Context, id string) (text, short string, expires time.Time, err error) {
	return "", "", time.Time{}, errors.New("member codes are not available in this build")
}
