package poolstatus

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// poolLabels are the labels of the pool gauges: the SpiderIPPool's name, its
// IP version ("4" or "6"; empty when the pool names neither) and its subnet.
var poolLabels = []string{"pool", "ip_version", "subnet"}

var (
	allocatedIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "spindle_controller_ippool_allocated_ips",
		Help: "Addresses of the SpiderIPPool held by SpiderIPClaims, as last counted (status.allocatedIPCount).",
	}, poolLabels)
	totalIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "spindle_controller_ippool_total_ips",
		Help: "Addresses the SpiderIPPool can hand out: ips minus excludeIPs, gateway and reserved addresses (status.totalIPCount); absent while the pool is invalid.",
	}, poolLabels)
)

// Collectors are the pool gauges the controller exports.
func Collectors() []prometheus.Collector { return []prometheus.Collector{allocatedIPs, totalIPs} }

var registerOnce sync.Once

// registerMetrics adds the pool gauges to the controller-runtime registry
// when the reconciler is set up.
func registerMetrics() {
	registerOnce.Do(func() {
		metrics.Registry.MustRegister(Collectors()...)
	})
}

// published are the label values each pool's series carry now, so that a
// pool whose subnet or IP version changed, or that was deleted, leaves no
// series behind.
var published = struct {
	sync.Mutex
	labels map[string][]string
}{labels: map[string][]string{}}

// observe publishes the counters of pool.
func observe(pool *v2beta1.SpiderIPPool, c Counts) {
	labels := []string{pool.Name, ipVersionLabel(&pool.Spec), pool.Spec.Subnet}
	published.Lock()
	defer published.Unlock()
	if old, ok := published.labels[pool.Name]; ok && !slices.Equal(old, labels) {
		allocatedIPs.DeleteLabelValues(old...)
		totalIPs.DeleteLabelValues(old...)
	}
	published.labels[pool.Name] = labels
	allocatedIPs.WithLabelValues(labels...).Set(float64(c.Allocated))
	if c.Total != nil {
		totalIPs.WithLabelValues(labels...).Set(float64(*c.Total))
	} else {
		totalIPs.DeleteLabelValues(labels...)
	}
}

// forget drops the series of a deleted pool.
func forget(pool string) {
	published.Lock()
	defer published.Unlock()
	if old, ok := published.labels[pool]; ok {
		allocatedIPs.DeleteLabelValues(old...)
		totalIPs.DeleteLabelValues(old...)
		delete(published.labels, pool)
	}
}

// ipVersionLabel is spec.ipVersion, or the family of spec.subnet when the
// pool does not set it.
func ipVersionLabel(spec *v2beta1.IPPoolSpec) string {
	if spec.IPVersion != nil {
		return strconv.FormatInt(*spec.IPVersion, 10)
	}
	if p, err := netip.ParsePrefix(spec.Subnet); err == nil {
		if p.Addr().Is4() {
			return "4"
		}
		return "6"
	}
	return ""
}
