package poolstatus

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	allocatedIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "spindle_controller_ippool_allocated_ips",
		Help: "Addresses of the SpiderIPPool held by SpiderIPClaims, as last counted (status.allocatedIPCount).",
	}, []string{"pool"})
	totalIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "spindle_controller_ippool_total_ips",
		Help: "Addresses the SpiderIPPool can hand out: ips minus excludeIPs, gateway and reserved addresses (status.totalIPCount); absent while the pool is invalid.",
	}, []string{"pool"})
)

var registerOnce sync.Once

// registerMetrics adds the pool gauges to the controller-runtime registry
// when the reconciler is set up.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(allocatedIPs, totalIPs)
	})
}

// observe publishes the counters of pool; forget drops a deleted pool.
func observe(pool string, c Counts) {
	allocatedIPs.WithLabelValues(pool).Set(float64(c.Allocated))
	if c.Total != nil {
		totalIPs.WithLabelValues(pool).Set(float64(*c.Total))
	} else {
		totalIPs.DeleteLabelValues(pool)
	}
}

func forget(pool string) {
	allocatedIPs.DeleteLabelValues(pool)
	totalIPs.DeleteLabelValues(pool)
}
