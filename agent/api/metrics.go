package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the agent's Prometheus metrics, on a registry of their own
// (so several agents in one test process do not collide).
type Metrics struct {
	reg    *prometheus.Registry
	commit *prometheus.HistogramVec
	reads  *prometheus.CounterVec
	fresh  *prometheus.HistogramVec
}

// NewMetrics registers the metrics; backlog feeds the sync gauges at
// scrape time.
func NewMetrics(backlog func() (int, time.Time, error)) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "posagent_commit_seconds",
			Help:    "Time to commit a ledger write (sale, refund, void, topup, enrol), durable on disk.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op", "result"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posagent_reads_total",
			Help: "Card and code reads per device, by result (member, unknown, error).",
		}, []string{"device", "result"}),
		fresh: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "posagent_member_refresh_seconds",
			Help:    "Time to refresh an identified member's balances from HQ, by result (applied; offline, error, unknown, marks: answered from the till).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"result"}),
	}
	reg.MustRegister(m.commit, m.reads, m.fresh,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if backlog != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "posagent_sync_backlog_entries",
			Help: "Ledger entries not yet acknowledged by HQ.",
		}, func() float64 {
			n, _, err := backlog()
			if err != nil {
				return -1
			}
			return float64(n)
		}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "posagent_sync_oldest_pending_seconds",
			Help: "Age of the oldest entry not yet acknowledged by HQ (0 when none).",
		}, func() float64 {
			n, oldest, err := backlog()
			if err != nil || n == 0 || oldest.IsZero() {
				return 0
			}
			return time.Since(oldest).Seconds()
		}))
	}
	return m
}

// ObserveCommit records one ledger write.
func (m *Metrics) ObserveCommit(op string, d time.Duration, err error) {
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.commit.WithLabelValues(op, res).Observe(d.Seconds())
}

// Read counts one read of device with result member, unknown or error.
func (m *Metrics) Read(device, result string) {
	m.reads.WithLabelValues(device, result).Inc()
}

// Refresh records one refresh of a member from HQ that took d.
func (m *Metrics) Refresh(result string, d time.Duration) {
	m.fresh.WithLabelValues(result).Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
