package poolstatus

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func TestPoolGaugesFollowThePool(t *testing.T) {
	// Start from no series, whatever other tests of the package left.
	published.Lock()
	allocatedIPs.Reset()
	totalIPs.Reset()
	clear(published.labels)
	published.Unlock()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collectors()...)
	names := []string{"spindle_controller_ippool_allocated_ips", "spindle_controller_ippool_total_ips"}
	expect := func(step, samples string) {
		t.Helper()
		want := `# HELP spindle_controller_ippool_allocated_ips Addresses of the SpiderIPPool held by SpiderIPClaims, as last counted (status.allocatedIPCount).
# TYPE spindle_controller_ippool_allocated_ips gauge
# HELP spindle_controller_ippool_total_ips Addresses the SpiderIPPool can hand out: ips minus excludeIPs, gateway and reserved addresses (status.totalIPCount); absent while the pool is invalid.
# TYPE spindle_controller_ippool_total_ips gauge
` + samples
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
			t.Errorf("%s: %v", step, err)
		}
	}
	total := int64(10)
	v6 := int64(6)
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24"}}
	other := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: v2beta1.IPPoolSpec{IPVersion: &v6, Subnet: "fd00::/64"}}

	observe(pool, Counts{Allocated: 3, Total: &total})
	observe(other, Counts{Allocated: 1, Total: &total})
	expect("two pools", `spindle_controller_ippool_allocated_ips{ip_version="4",pool="p",subnet="10.0.0.0/24"} 3
spindle_controller_ippool_allocated_ips{ip_version="6",pool="q",subnet="fd00::/64"} 1
spindle_controller_ippool_total_ips{ip_version="4",pool="p",subnet="10.0.0.0/24"} 10
spindle_controller_ippool_total_ips{ip_version="6",pool="q",subnet="fd00::/64"} 10
`)

	// The pool is recreated with another subnet and is invalid for now: its
	// old series go, and it has no total.
	pool.Spec.Subnet = "10.1.0.0/24"
	observe(pool, Counts{Allocated: 0})
	expect("subnet changed", `spindle_controller_ippool_allocated_ips{ip_version="4",pool="p",subnet="10.1.0.0/24"} 0
spindle_controller_ippool_allocated_ips{ip_version="6",pool="q",subnet="fd00::/64"} 1
spindle_controller_ippool_total_ips{ip_version="6",pool="q",subnet="fd00::/64"} 10
`)

	forget("p")
	forget("q")
	expect("pools deleted", "")
}
