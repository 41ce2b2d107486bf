package agent

import (
	"context"
	"errors"
)

// warmMembers reads the ledger's member index and records into the page
// cache once the agent answers, so the first card lookups after a start
// find their pages there instead of waiting on the disk (a chain's members
// are hundreds of MB that a cold start has not read). It runs beside the
// agent's work, never before readiness, and holds only a read buffer.
func (a *Agent) warmMembers(ctx context.Context) {
	st, err := a.led.WarmMembers(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("reading member pages into the cache", "err", err)
		return
	}
	a.log.Info("member pages read into the cache", "pages", st.Pages, "bytes", st.Bytes, "took", st.Took, "complete", err == nil)
}
