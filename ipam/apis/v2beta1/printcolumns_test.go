package v2beta1_test

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/store"
)

// TestAPIServerPrinterColumns creates one object of every kind in a real API
// server loaded with the generated CRDs and reads each back as the Table
// kubectl prints: the columns of `kubectl get` and `kubectl get -o wide`, in
// order, and the values in their cells.
func TestAPIServerPrinterColumns(t *testing.T) {
	cfg, c := startAPIServer(t)
	ctx := context.Background()
	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("failed to create %T %q: %v", obj, obj.GetName(), err)
		}
	}
	ptr := func(v int64) *int64 { return &v }

	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-v4"},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr(4), Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.10-10.6.0.19"}, NodeName: []string{"worker1"}},
	}
	create(pool)
	pool.Status = v2beta1.IPPoolStatus{AllocatedIPCount: ptr(2), TotalIPCount: ptr(10)}
	if err := c.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}

	subnet := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: "subnet-v6"},
		Spec:       v2beta1.SubnetSpec{IPVersion: ptr(6), Subnet: "fd00:6::/64", IPs: []string{"fd00:6::10-fd00:6::ff"}},
	}
	create(subnet)
	subnet.Status = v2beta1.SubnetStatus{AllocatedIPCount: ptr(20), TotalIPCount: ptr(240)}
	if err := c.Status().Update(ctx, subnet); err != nil {
		t.Fatal(err)
	}

	create(&v2beta1.SpiderReservedIP{
		ObjectMeta: metav1.ObjectMeta{Name: "reserved"},
		Spec:       v2beta1.ReservedIPSpec{IPVersion: ptr(4), IPs: []string{"10.6.0.1"}},
	})

	v6 := netip.MustParseAddr("fd00:6::15")
	claim := v2beta1.NewClaim(v6, v2beta1.IPClaimSpec{Pool: "pool-v6", PodNamespace: "default", PodName: "web-0", PodUID: "u1",
		Interface: "eth0", Node: "worker1", OwnerKind: "StatefulSet", OwnerName: "web", MAC: "0a:1b:00:00:00:05"})
	create(claim)

	// The SpiderEndpoint of a pod with two interfaces, as the agent derives
	// it from the pod's claims.
	facts := map[string]store.PoolFacts{"pool-v4": {PrefixLen: 16}, "pool-v6": {PrefixLen: 64}, "pool-net1": {PrefixLen: 24}}
	claims := []*v2beta1.SpiderIPClaim{
		claim,
		v2beta1.NewClaim(netip.MustParseAddr("10.6.0.15"), v2beta1.IPClaimSpec{Pool: "pool-v4", PodUID: "u1", Interface: "eth0", Node: "worker1"}),
		v2beta1.NewClaim(netip.MustParseAddr("10.7.0.15"), v2beta1.IPClaimSpec{Pool: "pool-net1", PodUID: "u1", Interface: "net1", Node: "worker1"}),
	}
	want := store.EndpointFromClaims("default", "web-0", claims, func(p string) (store.PoolFacts, bool) { f, ok := facts[p]; return f, ok })
	// Written whole, status included (no status subresource).
	create(&v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0"}, Status: want.Status})

	mode := v2beta1.CoordinatorModeUnderlay
	coord := &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v2beta1.CoordinatorSpec{Mode: &mode}}
	create(coord)
	coord.Status = v2beta1.CoordinatorStatus{Phase: "Synced"}
	if err := c.Status().Update(ctx, coord); err != nil {
		t.Fatal(err)
	}

	create(&v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "macvlan-eth1"},
		Spec:       v2beta1.MultusCNIConfigSpec{CniType: v2beta1.CNITypeMacvlan, MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}},
	})

	const api = "/apis/spiderpool.spidernet.io/v2beta1/"
	rc := restClient(t, cfg)
	for _, tt := range []struct {
		path          string
		columns, wide string
		cells         map[string]any // nil: empty cell
	}{{
		path:    api + "spiderippools/pool-v4",
		columns: "Name VERSION SUBNET ALLOCATED-IP-COUNT TOTAL-IP-COUNT DEFAULT DISABLE AGE",
		wide:    "NODENAME MULTUSNAME APP-NAMESPACE",
		cells: map[string]any{"Name": "pool-v4", "VERSION": int64(4), "SUBNET": "10.6.0.0/16", "ALLOCATED-IP-COUNT": int64(2),
			"TOTAL-IP-COUNT": int64(10), "DEFAULT": false, "DISABLE": false, "NODENAME": `["worker1"]`, "MULTUSNAME": nil},
	}, {
		path:    api + "spidersubnets/subnet-v6",
		columns: "Name VERSION SUBNET ALLOCATED-IP-COUNT TOTAL-IP-COUNT AGE",
		wide:    "CONTROLLED-IPPOOLS",
		cells:   map[string]any{"VERSION": int64(6), "SUBNET": "fd00:6::/64", "ALLOCATED-IP-COUNT": int64(20), "TOTAL-IP-COUNT": int64(240)},
	}, {
		path:    api + "spiderreservedips/reserved",
		columns: "Name VERSION AGE",
		cells:   map[string]any{"VERSION": int64(4)},
	}, {
		path:    api + "spideripclaims/" + v2beta1.ClaimName(v6),
		columns: "Name ADDRESS POOL NAMESPACE POD INTERFACE NODE AGE",
		wide:    "OWNER-KIND OWNER MAC",
		cells: map[string]any{"ADDRESS": "fd00:6::15", "POOL": "pool-v6", "NAMESPACE": "default", "POD": "web-0", "INTERFACE": "eth0",
			"NODE": "worker1", "OWNER-KIND": "StatefulSet", "OWNER": "web", "MAC": "0a:1b:00:00:00:05"},
	}, {
		path:    api + "namespaces/default/spiderendpoints/web-0",
		columns: "Name ADDRESSES NODE AGE",
		wide:    "INTERFACE IPV4POOL IPV4 IPV6POOL IPV6",
		cells: map[string]any{"ADDRESSES": "eth0=10.6.0.15/16,fd00:6::15/64 net1=10.7.0.15/24", "NODE": "worker1",
			"INTERFACE": "eth0", "IPV4POOL": "pool-v4", "IPV4": "10.6.0.15/16", "IPV6POOL": "pool-v6", "IPV6": "fd00:6::15/64"},
	}, {
		path:    api + "spidercoordinators/default",
		columns: "Name MODE PHASE AGE",
		cells:   map[string]any{"MODE": "underlay", "PHASE": "Synced"},
	}, {
		path:    api + "namespaces/default/spidermultusconfigs/macvlan-eth1",
		columns: "Name CNITYPE AGE",
		cells:   map[string]any{"CNITYPE": "macvlan"},
	}} {
		cols, cells := rc.table(t, tt.path)
		var def, wide []string
		for _, c := range cols {
			if c.Priority == 0 {
				def = append(def, c.Name)
			} else {
				wide = append(wide, c.Name)
			}
		}
		if got := strings.Join(def, " "); got != tt.columns {
			t.Errorf("%s: kubectl get columns %q, want %q", tt.path, got, tt.columns)
		}
		if got := strings.Join(wide, " "); got != tt.wide {
			t.Errorf("%s: -o wide adds %q, want %q", tt.path, got, tt.wide)
		}
		for col, want := range tt.cells {
			if got, ok := cells[col]; !ok || got != want {
				t.Errorf("%s: %s = %#v, want %#v", tt.path, col, got, want)
			}
		}
		// AGE is rendered by the server from creationTimestamp, e.g. "3s".
		if age, _ := cells["AGE"].(string); !regexp.MustCompile(`^[0-9]+s$`).MatchString(age) {
			t.Errorf("%s: AGE = %#v, want the object's age in seconds", tt.path, cells["AGE"])
		}
	}
}
