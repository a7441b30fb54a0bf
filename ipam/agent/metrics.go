package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the agent's Prometheus series. Each Agent owns a registry so
// several agents can live in one process (tests, benchmarks).
type Metrics struct {
	Registry    *prometheus.Registry
	Allocations *prometheus.CounterVec
	Releases    *prometheus.CounterVec
	Failures    *prometheus.CounterVec
	Conflicts   prometheus.Counter
	// AddressConflicts counts conflict reports of the coordinator by action.
	AddressConflicts *prometheus.CounterVec
	AddDuration      prometheus.Histogram
	DelDuration      prometheus.Histogram
	InFlight         *prometheus.GaugeVec
}

// NewMetrics creates and registers the agent's series.
func NewMetrics() *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_allocations_total", Help: "Addresses allocated (claims created or re-bound), by IP version.",
		}, []string{"ip_version"}),
		Releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_releases_total", Help: "Addresses released (claims deleted), by IP version.",
		}, []string{"ip_version"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_failures_total", Help: "Failed requests by operation (add, del, check, gc) and reason.",
		}, []string{"op", "reason"}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spindle_ipam_claim_conflicts_total", Help: "Claim creates that found the address already taken (AlreadyExists) and moved on to the next free slot.",
		}),
		AddressConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_conflicts_total", Help: "Addresses the coordinator found already used by another machine, by action (released: the address was released and quarantined; kept: a StatefulSet replica's fixed address).",
		}, []string{"action"}),
		AddDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spindle_ipam_add_duration_seconds", Help: "Duration of ADD requests.", Buckets: buckets,
		}),
		DelDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spindle_ipam_del_duration_seconds", Help: "Duration of DEL requests.", Buckets: buckets,
		}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spindle_ipam_inflight_requests", Help: "Requests being served, by operation.",
		}, []string{"op"}),
	}
	m.Registry.MustRegister(m.Allocations, m.Releases, m.Failures, m.Conflicts, m.AddressConflicts, m.AddDuration, m.DelDuration, m.InFlight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
