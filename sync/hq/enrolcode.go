package hq

import (
	"context"
	"time"
)

// memberCode is the member's current code: QR text, short number, expiry.
func (s *Server) memberCode(ctx context.Context, id string) (text, short string, expires time.Time, err error) {
	c, err := s.IssueMemberCode(ctx, id)
	return c.Text, c.Short, c.Expires, err
}
