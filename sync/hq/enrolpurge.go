package hq

import (
	"context"
	"errors"
	"time"
)

// Pending sign-ups would otherwise be kept forever: a code sent and never
// confirmed leaves its record (mobile, name, birthday) behind. Each HQ
// process purges the stale ones on a timer; the stores judge each record
// under the lock that deletes it, so processes purging at once, or a
// customer asking for a code meanwhile, lose nothing.

// PurgePending deletes the pending sign-ups whose code expired more than
// Enrol.PendingMaxAge ago and whose mobile's send window (Enrol.Window) is
// over, and says how many.
func (s *Server) PurgePending(ctx context.Context) (int, error) {
	es, err := s.enrolStore()
	if err != nil {
		return 0, err
	}
	now := s.o.Now()
	o := s.o.Enrol
	return es.PurgePending(ctx, now.Add(-o.PendingMaxAge), now.Add(-o.Window))
}

// RunPendingPurge purges at once and then every Enrol.PurgeEvery until ctx
// ends; a storage without self-enrolment returns at once.
func (s *Server) RunPendingPurge(ctx context.Context) {
	if _, err := s.enrolStore(); errors.Is(err, ErrNoEnrolStore) {
		return
	}
	t := time.NewTicker(s.o.Enrol.PurgeEvery)
	defer t.Stop()
	for {
		n, err := s.PurgePending(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.o.Log.Warn("purging unconfirmed sign-ups failed; tried again at the next round", "err", err)
		case n > 0:
			s.o.Log.Info("purged unconfirmed sign-ups", "n", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
