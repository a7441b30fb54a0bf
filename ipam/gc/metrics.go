package gc

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	collectedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spindle_controller_gc_collected_total",
		Help: "Pod allocations (all claims and the SpiderEndpoint of one pod incarnation) collected, by reason.",
	}, []string{"reason"})
	releasedIPsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spindle_controller_gc_released_ips_total",
		Help: "Addresses (SpiderIPClaims) released by the garbage collector, by reason.",
	}, []string{"reason"})
	raceAvoidedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spindle_controller_gc_precondition_conflicts_total",
		Help: "Deletions skipped because the claim or SpiderEndpoint changed after it was read (re-bound to a new pod).",
	})
)

// Collectors are the garbage collector's series.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{collectedTotal, releasedIPsTotal, raceAvoidedTotal}
}

var registerOnce sync.Once

// registerMetrics adds the collector's metrics to the controller-runtime
// registry. It is called when the collector is set up, so processes that
// only use lifecycle.Decide (the agent) do not export them.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(Collectors()...)
	})
}
