package hqcli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
)

// kpiReport is what hq kpi writes: the KPIs or the fraud signals.
type kpiReport interface {
	Text(io.Writer) error
	HTML(io.Writer) error
}

// addFraudFlags adds the fraud thresholds as --fraud-* flags (0: HQ's
// setting, or the default).
func addFraudFlags(c *cobra.Command, s *hq.FraudSettings) {
	for _, f := range hq.FraudFlags(s) {
		c.Flags().IntVar(f.Value, f.Name, 0, f.Usage)
	}
}

type fraudOps interface {
	fraud(ctx context.Context, month string, over hq.FraudSettings, pii bool) (*hq.FraudReport, error)
}

func fraudReport(ctx context.Context, o ops, month string, over hq.FraudSettings, pii bool) (*hq.FraudReport, error) {
	fo, ok := o.(fraudOps)
	if !ok {
		return nil, fmt.Errorf("the fraud signals are not available here; run hq kpi --fraud on the storage (--db, --pg) or through a running HQ (--url)")
	}
	return fo.fraud(ctx, month, over, pii)
}

func (l *local) fraud(ctx context.Context, month string, over hq.FraudSettings, pii bool) (*hq.FraudReport, error) {
	return l.srv.FraudReport(ctx, month, over, pii)
}

func (r *remote) fraud(ctx context.Context, month string, over hq.FraudSettings, pii bool) (*hq.FraudReport, error) {
	var out hq.FraudReport
	return &out, r.call(ctx, "GET", "/kpi/fraud?format=json&"+hq.FraudQuery(month, over, pii), nil, &out)
}
