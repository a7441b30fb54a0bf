package selection

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

type poolOpt func(*v2beta1.SpiderIPPool)

func pool(name, subnet string, opts ...poolOpt) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{Spec: v2beta1.IPPoolSpec{Subnet: subnet}}
	p.Name = name
	for _, o := range opts {
		o(p)
	}
	return p
}

func isDefault(p *v2beta1.SpiderIPPool)   { t := true; p.Spec.Default = &t }
func disabled(p *v2beta1.SpiderIPPool)    { t := true; p.Spec.Disable = &t }
func terminating(p *v2beta1.SpiderIPPool) { now := metav1.Now(); p.DeletionTimestamp = &now }
func nodeName(n ...string) poolOpt        { return func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = n } }
func nsName(n ...string) poolOpt          { return func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceName = n } }
func multus(n ...string) poolOpt          { return func(p *v2beta1.SpiderIPPool) { p.Spec.MultusName = n } }
func nodeAff(k, v string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) {
		p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}
func nsAff(k, v string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) {
		p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}
func podAff(k, v string) poolOpt {
	return func(p *v2beta1.SpiderIPPool) {
		p.Spec.PodAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}
func version(v int64) poolOpt { return func(p *v2beta1.SpiderIPPool) { p.Spec.IPVersion = &v } }

// baseRequest: pod app/web-0 on worker-1 (zone a), IPv4 only, eth0.
func baseRequest() *Request {
	return &Request{
		PodNamespace: "app", PodName: "web-0",
		PodLabels:            map[string]string{"app": "web"},
		PodAnnotations:       map[string]string{},
		NamespaceLabels:      map[string]string{"team": "blue", "kubernetes.io/metadata.name": "app"},
		NamespaceAnnotations: map[string]string{},
		NodeName:             "worker-1",
		NodeLabels:           map[string]string{"zone": "a", "kubernetes.io/hostname": "worker-1"},
		Interface:            "eth0",
		SystemNamespace:      "kube-system",
		EnableIPv4:           true,
	}
}

type tcase struct {
	name   string
	pools  []*v2beta1.SpiderIPPool
	mod    func(r *Request)
	v4, v6 []string
	rule4  Rule
	rule6  Rule
	clean  bool
	err    string // exact error text when set
	errHas string // substring of the error when set
}

func anno(kv ...string) func(r *Request) {
	return func(r *Request) {
		for i := 0; i < len(kv); i += 2 {
			r.PodAnnotations[kv[i]] = kv[i+1]
		}
	}
}

func chain(fs ...func(r *Request)) func(r *Request) {
	return func(r *Request) {
		for _, f := range fs {
			f(r)
		}
	}
}

func iface(name string) func(r *Request) { return func(r *Request) { r.Interface = name } }
func dual(r *Request)                    { r.EnableIPv6 = true }
func v6only(r *Request)                  { r.EnableIPv4, r.EnableIPv6 = false, true }

var (
	a4  = pool("a4", "10.1.0.0/16")
	b4  = pool("b4", "10.2.0.0/16")
	c4  = pool("c4", "10.3.0.0/16")
	a6  = pool("a6", "fd00:1::/64")
	b6  = pool("b6", "fd00:2::/64")
	d4  = pool("d4", "10.9.0.0/16", isDefault)
	d6  = pool("d6", "fd00:9::/64", isDefault)
	all = []*v2beta1.SpiderIPPool{a4, b4, c4, a6, b6, d4, d6}
)

func TestSelect(t *testing.T) {
	tests := []tcase{
		// Rule 1: ipam.spidernet.io/ippools.
		{
			name:  "ippools entry of the interface, with cleangateway",
			pools: all,
			mod: chain(iface("net1"), anno(annotations.PodIPPools,
				`[{"interface":"eth0","ipv4":["a4"]},{"interface":"net1","ipv4":["b4"],"cleangateway":true}]`)),
			v4: []string{"b4"}, rule4: RulePodIPPools, clean: true,
		},
		{
			name:  "ippools wins over ippool",
			pools: all,
			mod: anno(annotations.PodIPPools, `[{"interface":"eth0","ipv4":["a4"]}]`,
				annotations.PodIPPool, `{"ipv4":["b4"]}`),
			v4: []string{"a4"}, rule4: RulePodIPPools,
		},
		{
			name:  "unnamed ippools entries map by position: eth0",
			pools: all,
			mod:   anno(annotations.PodIPPools, `[{"ipv4":["a4"]},{"ipv4":["b4"]},{"ipv4":["c4"]}]`),
			v4:    []string{"a4"}, rule4: RulePodIPPools,
		},
		{
			name:  "unnamed ippools entries map by position: net2 without networks annotation",
			pools: all,
			mod:   chain(iface("net2"), anno(annotations.PodIPPools, `[{"ipv4":["a4"]},{"ipv4":["b4"]},{"ipv4":["c4"]}]`)),
			v4:    []string{"c4"}, rule4: RulePodIPPools,
		},
		{
			name:  "unnamed ippools entries map by position to interfaces named in the networks annotation",
			pools: all,
			mod: chain(iface("data0"), anno(annotations.PodIPPools, `[{"ipv4":["a4"]},{"ipv4":["b4"],"cleangateway":true}]`,
				annotations.MultusNetworks, "kube-system/macvlan@data0")),
			v4: []string{"b4"}, rule4: RulePodIPPools, clean: true,
		},
		{
			name:  "ippools without an entry for the interface is an error",
			pools: all,
			mod:   chain(iface("net2"), anno(annotations.PodIPPools, `[{"interface":"eth0","ipv4":["a4"]},{"interface":"net1","ipv4":["b4"]}]`)),
			err: `failed to select pools for net2 of pod app/web-0: annotation "ipam.spidernet.io/ippools" has no entry for interface "net2"; ` +
				`add an entry such as {"interface":"net2","ipv4":["<pool>"]} or remove the annotation`,
		},
		{
			name:   "malformed ippools annotation",
			pools:  all,
			mod:    anno(annotations.PodIPPools, `{"interface":"eth0"}`),
			errHas: `failed to parse pod app/web-0: invalid annotation "ipam.spidernet.io/ippools": json: cannot unmarshal object`,
		},
		// Rule 2: ipam.spidernet.io/ippool.
		{
			name: "ippool applies to any interface", pools: all,
			mod: chain(iface("net3"), anno(annotations.PodIPPool, `{"ipv4":["b4","a4"]}`)),
			v4:  []string{"b4", "a4"}, rule4: RulePodIPPool,
		},
		{
			name: "ippool dual stack", pools: all,
			mod: chain(dual, anno(annotations.PodIPPool, `{"ipv4":["a4"],"ipv6":["a6"]}`)),
			v4:  []string{"a4"}, v6: []string{"a6"}, rule4: RulePodIPPool, rule6: RulePodIPPool,
		},
		{
			name: "ippool naming only IPv4 in a dual-stack cluster gives IPv4 only", pools: all,
			mod: chain(dual, anno(annotations.PodIPPool, `{"ipv4":["a4"]}`)),
			v4:  []string{"a4"}, rule4: RulePodIPPool,
		},
		{
			name: "ippool naming only IPv6 in an IPv4 cluster", pools: all,
			mod: anno(annotations.PodIPPool, `{"ipv6":["a6"]}`),
			err: `failed to select pools for eth0 of pod app/web-0: pod annotation ipam.spidernet.io/ippool names no IPv4 pool for it; add one or remove the annotation`,
		},
		{
			name: "ippool in an IPv6-only cluster", pools: all,
			mod: chain(v6only, anno(annotations.PodIPPool, `{"ipv4":["a4"],"ipv6":["b6"]}`)),
			v6:  []string{"b6"}, rule6: RulePodIPPool,
		},
		// Rule 3: namespace annotations.
		{
			name: "namespace default pools", pools: all,
			mod: func(r *Request) {
				r.NamespaceAnnotations[annotations.NamespaceDefaultIPv4Pool] = `["b4","a4"]`
				r.DefaultIPv4Pools = []string{"c4"}
			},
			v4: []string{"b4", "a4"}, rule4: RuleNamespace,
		},
		{
			name: "namespace names IPv4 only: IPv6 falls through to the CNI configuration", pools: all,
			mod: chain(dual, func(r *Request) {
				r.NamespaceAnnotations[annotations.NamespaceDefaultIPv4Pool] = `["b4"]`
				r.DefaultIPv6Pools = []string{"b6"}
			}),
			v4: []string{"b4"}, v6: []string{"b6"}, rule4: RuleNamespace, rule6: RuleCNIConfig,
		},
		{
			name: "empty namespace list falls through", pools: all,
			mod: func(r *Request) { r.NamespaceAnnotations[annotations.NamespaceDefaultIPv4Pool] = `[]` },
			v4:  []string{"d4"}, rule4: RuleClusterDefault,
		},
		{
			name: "malformed namespace annotation", pools: all,
			mod:    chain(dual, func(r *Request) { r.NamespaceAnnotations[annotations.NamespaceDefaultIPv6Pool] = `b6` }),
			errHas: `failed to parse namespace "app": invalid annotation "ipam.spidernet.io/default-ipv6-ippool": invalid character 'b'`,
		},
		{
			name: "pod annotation wins over namespace", pools: all,
			mod: chain(anno(annotations.PodIPPool, `{"ipv4":["a4"]}`), func(r *Request) {
				r.NamespaceAnnotations[annotations.NamespaceDefaultIPv4Pool] = `["b4"]`
			}),
			v4: []string{"a4"}, rule4: RulePodIPPool,
		},
		// Rule 4: CNI configuration.
		{
			name: "CNI configuration defaults", pools: all,
			mod: chain(dual, func(r *Request) { r.DefaultIPv4Pools, r.DefaultIPv6Pools = []string{"c4"}, []string{"a6"} }),
			v4:  []string{"c4"}, v6: []string{"a6"}, rule4: RuleCNIConfig, rule6: RuleCNIConfig,
		},
		{
			name: "Calico's namespace pools mean the namespace default pools", pools: all,
			mod: chain(dual, func(r *Request) {
				r.NamespaceAnnotations[annotations.CalicoIPv4Pools] = `["b4"]`
				r.NamespaceAnnotations[annotations.CalicoIPv6Pools] = `["a6"]`
			}),
			v4: []string{"b4"}, v6: []string{"a6"}, rule4: RuleNamespace, rule6: RuleNamespace,
		},
		{
			name: "the native namespace annotation before Calico's", pools: all,
			mod: func(r *Request) {
				r.NamespaceAnnotations[annotations.NamespaceDefaultIPv4Pool] = `["c4"]`
				r.NamespaceAnnotations[annotations.CalicoIPv4Pools] = `["b4"]`
			},
			v4: []string{"c4"}, rule4: RuleNamespace,
		},
		// A network whose CNI configuration names one family only.
		{
			name: "IPv4-only network on a dual-stack node: no IPv6 from the cluster defaults", pools: all,
			mod: chain(dual, iface("net1"), func(r *Request) { r.DefaultIPv4Pools = []string{"c4"} }),
			v4:  []string{"c4"}, rule4: RuleCNIConfig,
		},
		{
			name: "IPv6-only network on a dual-stack node, no IPv4 pool anywhere", pools: []*v2beta1.SpiderIPPool{a6},
			mod: chain(dual, iface("net1"), func(r *Request) { r.DefaultIPv6Pools = []string{"a6"} }),
			v6:  []string{"a6"}, rule6: RuleCNIConfig,
		},
		{
			name: "a single-family network still takes the namespace's pool of the other family", pools: all,
			mod: chain(dual, iface("net1"), func(r *Request) {
				r.DefaultIPv4Pools = []string{"c4"}
				r.NamespaceAnnotations[annotations.NamespaceDefaultIPv6Pool] = `["b6"]`
			}),
			v4: []string{"c4"}, v6: []string{"b6"}, rule4: RuleCNIConfig, rule6: RuleNamespace,
		},
		{
			name: "a network naming no pool needs both families", pools: []*v2beta1.SpiderIPPool{a4, d4}, mod: chain(dual, iface("net1")),
			errHas: `no pool for net1 IPv6: no pool is named`,
		},
		// Rule 5: cluster defaults.
		{
			name: "cluster default pools", pools: all, mod: dual,
			v4: []string{"d4"}, v6: []string{"d6"}, rule4: RuleClusterDefault, rule6: RuleClusterDefault,
		},
		{
			name:  "no pool anywhere",
			pools: []*v2beta1.SpiderIPPool{a4}, mod: dual,
			err: `no pool for eth0 IPv4: no pool is named by the pod, its namespace or the CNI configuration, and no IPv4 pool has spec.default: true; ` +
				`create one, or name a pool in the pod annotation ipam.spidernet.io/ippool`,
		},
		{
			name:  "only an IPv4 default pool in a dual-stack cluster",
			pools: []*v2beta1.SpiderIPPool{d4}, mod: dual,
			errHas: `no pool for eth0 IPv6: no pool is named`,
		},
		{
			name:  "disabled and terminating default pools are listed",
			pools: []*v2beta1.SpiderIPPool{pool("d1", "10.1.0.0/16", isDefault, disabled), pool("d2", "10.2.0.0/16", isDefault, terminating)},
			err:   `no pool for eth0 IPv4: pool "d1": disabled; pool "d2": terminating`,
		},
		// Wildcards.
		{
			name:  "wildcard expands in name order",
			pools: []*v2beta1.SpiderIPPool{pool("zone-b", "10.2.0.0/16"), pool("zone-a", "10.1.0.0/16"), pool("other", "10.3.0.0/16"), pool("zone-6", "fd00::/64")},
			mod:   anno(annotations.PodIPPool, `{"ipv4":["zone-?","other"]}`),
			v4:    []string{"zone-a", "zone-b", "other"}, rule4: RulePodIPPool,
		},
		{
			name:  "wildcard and explicit name do not duplicate",
			pools: all,
			mod:   anno(annotations.PodIPPool, `{"ipv4":["b4","*4"]}`),
			v4:    []string{"b4", "a4", "c4", "d4"}, rule4: RulePodIPPool,
		},
		{
			name:  "pattern without match and unknown name",
			pools: all,
			mod:   anno(annotations.PodIPPool, `{"ipv4":["x-*","nope"]}`),
			err:   `no pool for eth0 IPv4: pool "x-*": no pool matches this pattern; pool "nope": not found`,
		},
		// Filters.
		{
			name:  "the error lists every candidate",
			pools: []*v2beta1.SpiderIPPool{pool("a", "10.1.0.0/16", nodeAff("zone", "b")), pool("b", "10.2.0.0/16", disabled), pool("c", "fd00::/64")},
			mod:   chain(func(r *Request) { r.NodeName = "worker-2" }, anno(annotations.PodIPPool, `{"ipv4":["a","b","c"]}`)),
			err:   `no pool for eth0 IPv4: pool "a": node affinity does not match node "worker-2"; pool "b": disabled; pool "c": is an IPv6 pool`,
		},
		{
			name:  "rejected candidates are reported next to the usable ones",
			pools: []*v2beta1.SpiderIPPool{a4, pool("off", "10.5.0.0/16", disabled)},
			mod:   anno(annotations.PodIPPool, `{"ipv4":["off","a4"]}`),
			v4:    []string{"a4"}, rule4: RulePodIPPool,
		},
		{
			name: "pool with ipVersion 6 and no usable family", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", version(6))},
			mod: chain(v6only, anno(annotations.PodIPPool, `{"ipv6":["p"]}`)),
			v6:  []string{"p"}, rule6: RulePodIPPool, // ipVersion decides; ranges.ParsePool reports the mismatch at allocation
		},
		{
			name: "pool with a bad subnet and no ipVersion", pools: []*v2beta1.SpiderIPPool{pool("p", "bogus")},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": invalid spec.subnet "bogus": netip.ParsePrefix("bogus"): no '/'`,
		},
		// Node affinity.
		{
			name: "nodeName matches", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nodeName("master", "worker-1"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "nodeName does not match", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nodeName("master", "worker-2"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": nodeName [master worker-2] does not include node "worker-1"`,
		},
		{
			name: "nodeName takes precedence over nodeAffinity", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nodeName("worker-1"), nodeAff("zone", "z"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "nodeAffinity matches", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nodeAff("zone", "a"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "nodeAffinity with expressions", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", func(p *v2beta1.SpiderIPPool) {
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "kubernetes.io/hostname", Operator: metav1.LabelSelectorOpIn, Values: []string{"worker-3"}}}}
			})},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": node affinity does not match node "worker-1"`,
		},
		{
			name: "invalid nodeAffinity", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", func(p *v2beta1.SpiderIPPool) {
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}
			})},
			mod:    anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			errHas: `pool "p": invalid spec.nodeAffinity: "Bogus" is not a valid label selector operator`,
		},
		// Namespace affinity.
		{
			name: "namespaceName matches", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nsName("app"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "namespaceName does not match", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nsName("kube-system"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": namespaceName [kube-system] does not include namespace "app"`,
		},
		{
			name: "namespaceName takes precedence over namespaceAffinity", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nsName("app"), nsAff("team", "red"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "namespaceAffinity matches", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nsAff("team", "blue"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "namespaceAffinity does not match", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", nsAff("team", "red"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": namespace affinity does not match namespace "app"`,
		},
		// Pod affinity.
		{
			name: "podAffinity matches", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", podAff("app", "web"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`), v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name: "podAffinity does not match", pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", podAff("app", "db"))},
			mod: anno(annotations.PodIPPool, `{"ipv4":["p"]}`),
			err: `no pool for eth0 IPv4: pool "p": pod affinity does not match pod app/web-0`,
		},
		{
			name:  "affinity is enforced on cluster default pools",
			pools: []*v2beta1.SpiderIPPool{pool("d-other", "10.1.0.0/16", isDefault, podAff("app", "db")), pool("d-web", "10.2.0.0/16", isDefault, podAff("app", "web"))},
			v4:    []string{"d-web"}, rule4: RuleClusterDefault,
		},
		// Multus affinity.
		{
			name:  "multusName: eth0 is the pod's default-network annotation",
			pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", multus("kube-system/macvlan-ens192"))},
			mod:   anno(annotations.PodIPPool, `{"ipv4":["p"]}`, annotations.MultusDefaultNetwork, "kube-system/macvlan-ens192"),
			v4:    []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name:  "multusName: eth0 is the cluster default network",
			pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", isDefault, multus("kube-system/calico"))},
			mod:   func(r *Request) { r.ClusterDefaultNetwork = "kube-system/calico" },
			v4:    []string{"p"}, rule4: RuleClusterDefault,
		},
		{
			name:  "multusName: eth0 with unknown network",
			pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", isDefault, multus("kube-system/calico"))},
			err:   `no pool for eth0 IPv4: pool "p": multusName [kube-system/calico] cannot be checked: the network of eth0 is unknown`,
		},
		{
			name: "multusName: net1 and net2 map to the networks annotation (spiderpool multus affinity example)",
			pools: []*v2beta1.SpiderIPPool{
				pool("test-ippool-eth0", "10.6.0.0/16", isDefault, multus("default/macvlan-vlan0-eth0")),
				pool("test-ippool-eth1", "10.7.0.0/16", isDefault, multus("kube-system/macvlan-vlan0-eth1")),
				pool("test-ippool-eth2", "10.8.0.0/16", isDefault, multus("macvlan-vlan0-eth2")),
			},
			mod: chain(iface("net2"), anno(annotations.MultusDefaultNetwork, "default/macvlan-vlan0-eth0",
				annotations.MultusNetworks, "kube-system/macvlan-vlan0-eth1,kube-system/macvlan-vlan0-eth2")),
			v4: []string{"test-ippool-eth2"}, rule4: RuleClusterDefault, // no namespace: the system namespace
		},
		{
			name: "multusName: net1",
			pools: []*v2beta1.SpiderIPPool{
				pool("p0", "10.6.0.0/16", isDefault, multus("default/macvlan-vlan0-eth0")),
				pool("p1", "10.7.0.0/16", isDefault, multus("kube-system/macvlan-vlan0-eth1")),
			},
			mod: chain(iface("net1"), anno(annotations.MultusDefaultNetwork, "default/macvlan-vlan0-eth0",
				annotations.MultusNetworks, `[{"name":"macvlan-vlan0-eth1","namespace":"kube-system"}]`)),
			v4: []string{"p1"}, rule4: RuleClusterDefault,
		},
		{
			name: "multusName: eth0 of the same pod",
			pools: []*v2beta1.SpiderIPPool{
				pool("p0", "10.6.0.0/16", isDefault, multus("default/macvlan-vlan0-eth0")),
				pool("p1", "10.7.0.0/16", isDefault, multus("kube-system/macvlan-vlan0-eth1")),
			},
			mod: anno(annotations.MultusDefaultNetwork, "default/macvlan-vlan0-eth0",
				annotations.MultusNetworks, "kube-system/macvlan-vlan0-eth1"),
			v4: []string{"p0"}, rule4: RuleClusterDefault,
		},
		{
			name:  "multusName mismatch",
			pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", multus("kube-system/macvlan-a"))},
			mod:   chain(iface("net1"), anno(annotations.PodIPPool, `{"ipv4":["p"]}`, annotations.MultusNetworks, "macvlan-b")),
			err:   `no pool for net1 IPv4: pool "p": multusName [kube-system/macvlan-a] does not include network "app/macvlan-b" of net1`,
		},
		{
			name:  "explicit network in the request wins over annotations",
			pools: []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", multus("kube-system/macvlan-a"))},
			mod: chain(iface("net1"), anno(annotations.PodIPPool, `{"ipv4":["p"]}`, annotations.MultusNetworks, "macvlan-b"),
				func(r *Request) { r.Network = "kube-system/macvlan-a" }),
			v4: []string{"p"}, rule4: RulePodIPPool,
		},
		{
			name:   "malformed networks annotation only matters when needed",
			pools:  []*v2beta1.SpiderIPPool{pool("p", "10.1.0.0/16", multus("kube-system/macvlan-a"))},
			mod:    chain(iface("net1"), anno(annotations.PodIPPool, `{"ipv4":["p"]}`, annotations.MultusNetworks, "a/b/c")),
			errHas: `pool "p": multusName [kube-system/macvlan-a] cannot be checked: invalid annotation "k8s.v1.cni.cncf.io/networks"`,
		},
		{
			name:  "malformed networks annotation ignored when no pool needs it",
			pools: all,
			mod:   chain(iface("net1"), anno(annotations.PodIPPool, `{"ipv4":["a4"]}`, annotations.MultusNetworks, "a/b/c")),
			v4:    []string{"a4"}, rule4: RulePodIPPool,
		},
		// Order.
		{
			name: "candidates are ordered by affinity specificity, ties keep their order",
			pools: []*v2beta1.SpiderIPPool{
				pool("plain1", "10.1.0.0/16"), pool("plain2", "10.2.0.0/16"),
				pool("ns", "10.3.0.0/16", nsName("app")),
				pool("node", "10.4.0.0/16", nodeName("worker-1")),
				pool("pod", "10.5.0.0/16", podAff("app", "web")),
				pool("pod-node", "10.6.0.0/16", podAff("app", "web"), nodeAff("zone", "a")),
				pool("multus", "10.7.0.0/16", multus("kube-system/m")),
			},
			mod: anno(annotations.PodIPPool, `{"ipv4":["plain1","multus","ns","plain2","node","pod","pod-node"]}`,
				annotations.MultusDefaultNetwork, "kube-system/m"),
			v4: []string{"pod-node", "pod", "node", "ns", "multus", "plain1", "plain2"}, rule4: RulePodIPPool,
		},
		// Request validation.
		{
			name: "no interface", pools: all, mod: iface(""),
			err: "failed to select pools for pod app/web-0: no interface name given",
		},
		{
			name: "no family", pools: all, mod: func(r *Request) { r.EnableIPv4 = false },
			err: "failed to select pools for pod app/web-0: neither IPv4 nor IPv6 is enabled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := baseRequest()
			if tt.mod != nil {
				tt.mod(req)
			}
			res, err := Select(tt.pools, req)
			if tt.err != "" || tt.errHas != "" {
				if err == nil {
					t.Fatalf("got %+v, want error", res)
				}
				if tt.err != "" && err.Error() != tt.err {
					t.Fatalf("error\n got: %s\nwant: %s", err, tt.err)
				}
				if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error\n got: %s\nwant it to contain: %s", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.IPv4.Pools, tt.v4) || !reflect.DeepEqual(res.IPv6.Pools, tt.v6) {
				t.Errorf("pools v4 %v v6 %v, want %v %v (rejected %v %v)", res.IPv4.Pools, res.IPv6.Pools, tt.v4, tt.v6, res.IPv4.Rejected, res.IPv6.Rejected)
			}
			if res.IPv4.Rule != tt.rule4 || res.IPv6.Rule != tt.rule6 {
				t.Errorf("rules %v / %v, want %v / %v", res.IPv4.Rule, res.IPv6.Rule, tt.rule4, tt.rule6)
			}
			if res.CleanGateway != tt.clean {
				t.Errorf("cleanGateway %v, want %v", res.CleanGateway, tt.clean)
			}
			if res.Interface != req.Interface {
				t.Errorf("interface %q", res.Interface)
			}
		})
	}
}

func TestNoPoolErrorCanBeExtended(t *testing.T) {
	pools := []*v2beta1.SpiderIPPool{pool("a", "10.1.0.0/16", disabled), pool("b", "10.2.0.0/16")}
	req := baseRequest()
	req.PodAnnotations[annotations.PodIPPool] = `{"ipv4":["a","b"]}`
	res, err := Select(pools, req)
	if err != nil {
		t.Fatal(err)
	}
	// The allocator finds b exhausted and reports every candidate.
	fr := res.Family(ranges.V4)
	e := &NoPoolError{Interface: res.Interface, Family: ranges.V4, Rule: fr.Rule,
		Rejected: append(fr.Rejected, RejectedPool{Name: "b", Reason: "254/254 allocated"})}
	var wrapped error = e
	var target *NoPoolError
	if !errors.As(wrapped, &target) {
		t.Fatal("errors.As failed")
	}
	if got, want := e.Error(), `no pool for eth0 IPv4: pool "a": disabled; pool "b": 254/254 allocated`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestSelectErrorIsNoPoolError(t *testing.T) {
	_, err := Select([]*v2beta1.SpiderIPPool{pool("a", "10.1.0.0/16", disabled)}, func() *Request {
		r := baseRequest()
		r.PodAnnotations[annotations.PodIPPool] = `{"ipv4":["a"]}`
		return r
	}())
	var npe *NoPoolError
	if !errors.As(err, &npe) || npe.Family != ranges.V4 || npe.Rule != RulePodIPPool || len(npe.Rejected) != 1 {
		t.Errorf("error %#v is not the expected NoPoolError", err)
	}
}

func TestResultNetwork(t *testing.T) {
	req := baseRequest()
	req.Interface = "net1"
	req.PodAnnotations[annotations.MultusNetworks] = "kube-system/macvlan"
	res, err := Select(all, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Network != "kube-system/macvlan" {
		t.Errorf("network %q", res.Network)
	}
}

func TestIndexIsReusable(t *testing.T) {
	x := NewIndex(all)
	for _, n := range []string{"a4", "b4"} {
		req := baseRequest()
		req.PodAnnotations[annotations.PodIPPool] = `{"ipv4":["` + n + `"]}`
		res, err := x.Select(req)
		if err != nil || len(res.IPv4.Pools) != 1 || res.IPv4.Pools[0] != n {
			t.Errorf("select %s: %+v %v", n, res, err)
		}
	}
}

func TestPodNetworks(t *testing.T) {
	p, err := ParsePodNetworks("app", map[string]string{
		annotations.MultusNetworks: "a,kube-system/b@data0,c",
	}, "kube-system/calico")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"eth0", "net1", "data0", "net3", "net4"} {
		if got := p.InterfaceAt(i); got != want {
			t.Errorf("InterfaceAt(%d) = %q, want %q", i, got, want)
		}
	}
	for iface, want := range map[string]string{"eth0": "kube-system/calico", "net1": "app/a", "data0": "kube-system/b", "net3": "app/c", "net2": ""} {
		got, ok := p.NetworkOf(iface)
		if got != want || ok != (want != "") {
			t.Errorf("NetworkOf(%s) = %q %v, want %q", iface, got, ok, want)
		}
	}
}

func TestRoutesFor(t *testing.T) {
	routes, err := annotations.ParseRoutes(`[{"dst":"10.0.0.0/16","gw":"192.168.1.1"},{"dst":"172.10.40.0/24","gw":"172.18.40.1"},{"dst":"fd10::/64","gw":"fd00:18::1"}]`)
	if err != nil {
		t.Fatal(err)
	}
	eth0 := RoutesFor(routes, netip.MustParsePrefix("192.168.0.0/16"))
	net1 := RoutesFor(routes, netip.MustParsePrefix("172.18.0.0/16"), netip.MustParsePrefix("fd00:18::/64"))
	none := RoutesFor(routes, netip.MustParsePrefix("10.9.0.0/16"))
	if len(eth0) != 1 || eth0[0].Gw.String() != "192.168.1.1" {
		t.Errorf("eth0 routes %v", eth0)
	}
	if len(net1) != 2 || net1[0].Dst.String() != "172.10.40.0/24" || net1[1].Dst.String() != "fd10::/64" {
		t.Errorf("net1 routes %v", net1)
	}
	if len(none) != 0 {
		t.Errorf("unrelated subnet got routes %v", none)
	}
}

func BenchmarkSelect(b *testing.B) {
	var pools []*v2beta1.SpiderIPPool
	for i := range 200 {
		pools = append(pools, pool("pool-"+string(rune('a'+i%26))+"-"+itoa(i), "10.0.0.0/16", nodeAff("zone", "a"), podAff("app", "web"), nsAff("team", "blue")))
	}
	pools = append(pools, pool("d", "10.9.0.0/16", isDefault, nodeName("worker-1")))
	x := NewIndex(pools)
	req := baseRequest()
	req.PodAnnotations[annotations.PodIPPool] = `{"ipv4":["pool-b-*","d"]}`
	for b.Loop() {
		if _, err := x.Select(req); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func gateway(gw string) poolOpt { return func(p *v2beta1.SpiderIPPool) { p.Spec.Gateway = &gw } }
func ips(r ...string) poolOpt   { return func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = r } }

// Fixed addresses of every dialect: served only from a pool that contains
// them and that the pod may use; pools named by the pod still decide.
func TestSelectFixedAddresses(t *testing.T) {
	pools := []*v2beta1.SpiderIPPool{
		pool("def", "10.0.0.0/24", ips("10.0.0.10-10.0.0.20"), isDefault),
		pool("fixed", "10.16.0.0/24", ips("10.16.0.10-10.16.0.20"), gateway("10.16.0.1")),
		pool("fixed-red", "10.16.0.0/24", ips("10.16.0.15"), nsAff("team", "red")),
		pool("calico-1", "172.23.19.0/30", ips("172.23.19.0-172.23.19.3")),
		pool("v6", "fd00:10:16::/64", ips("fd00:10:16::10-fd00:10:16::20")),
	}
	x := NewIndex(pools)
	two := 2
	for _, tc := range []struct {
		name string
		mod  func(r *Request)
		want string // v4 rule, pools, addresses; or the error
	}{
		{"Calico address, no pool named: the pools containing it the pod may use", anno(annotations.CalicoIPAddrs, `["10.16.0.15"]`),
			`pools containing the requested addresses [fixed] [10.16.0.15] rejected=[fixed-red: namespace affinity does not match namespace "app"]`},
		{"Kube-OVN dual stack", chain(dual, anno(annotations.OVNIPAddress, "10.16.0.15,fd00:10:16::15")),
			`pools containing the requested addresses [fixed] [10.16.0.15] rejected=[fixed-red: namespace affinity does not match namespace "app"] | v6 pools containing the requested addresses [v6] [fd00:10:16::15]`},
		{"a dual-stack pod with a fixed IPv4 address only", chain(dual, anno(annotations.KubeIPAMIP, "10.16.0.11")),
			`pools containing the requested addresses [fixed] [10.16.0.11] | v6 no rule [] []`},
		{"fixed addresses and pools for the other family", chain(dual, anno(annotations.CalicoIPAddrs, `["10.16.0.11"]`, annotations.CalicoIPv6Pools, `["v6"]`)),
			`pools containing the requested addresses [fixed] [10.16.0.11] | v6 pod annotations cni.projectcalico.org/ipv4pools/cni.projectcalico.org/ipv6pools [v6] []`},
		{"pools named by the pod decide", anno(annotations.PodIPPool, `{"ipv4":["def"]}`, annotations.CalicoIPAddrs, `["10.16.0.15"]`),
			`pod annotation ipam.spidernet.io/ippool [def] [10.16.0.15]`},
		{"Calico pools", anno(annotations.CalicoIPv4Pools, `["calico-1"]`),
			`pod annotations cni.projectcalico.org/ipv4pools/cni.projectcalico.org/ipv6pools [calico-1] []`},
		{"native pools before Calico's", anno(annotations.PodIPPool, `{"ipv4":["def"]}`, annotations.CalicoIPv4Pools, `["calico-1"]`),
			`pod annotation ipam.spidernet.io/ippool [def] []`},
		{"no pool contains it", anno(annotations.CalicoIPAddrs, `["192.168.9.9"]`),
			`error: no pool for eth0 IPv4: no IPv4 pool contains 192.168.9.9 (asked by cni.projectcalico.org/ipAddrs); create a SpiderIPPool that does, or change the annotation`},
		{"a workload list", anno(annotations.OVNIPPool, "10.16.0.15,10.16.0.16"),
			`pools containing the requested addresses [fixed] [10.16.0.15 10.16.0.16] rejected=[fixed-red: namespace affinity does not match namespace "app"]`},
		{"a StatefulSet replica gets its entry", chain(anno(annotations.OVNIPPool, "10.16.0.15,10.16.0.16,10.16.0.17"), func(r *Request) { r.Ordinal = &two }),
			`pools containing the requested addresses [fixed] [10.16.0.17]`},
		{"a replica beyond the list", chain(anno(annotations.OVNIPPool, "10.16.0.15,10.16.0.16"), func(r *Request) { r.Ordinal = &two }),
			`error: no pool for eth0 IPv4: annotation "ovn.kubernetes.io/ip_pool" lists 2 entries and this StatefulSet replica has ordinal 2: the list is used up; add entries`},
		{"a fixed IPv6 address on an IPv4-only node", anno(annotations.OVNIPAddress, "fd00:10:16::15"),
			`error: failed to select addresses for eth0 of pod app/web-0: ovn.kubernetes.io/ip_address asks for IPv6 addresses, but this node allocates only IPv4; change the annotation`},
		{"kube-ipam address with the pool's netmask and gateway",
			anno(annotations.KubeIPAMIP, "10.16.0.12", annotations.KubeIPAMNetmask, "255.255.255.0", annotations.KubeIPAMGateway, "10.16.0.1"),
			`pools containing the requested addresses [fixed] [10.16.0.12]`},
		{"kube-ipam addresses the first interface Spindle serves (net1 here)", chain(iface("net1"), anno(annotations.KubeIPAMIP, "10.16.0.12"),
			func(r *Request) { r.KubeIPAMInterface, r.DefaultIPv4Pools = "net1", []string{"def"} }),
			`pools containing the requested addresses [fixed] [10.16.0.12]`},
		{"kube-ipam does not address a later interface", chain(iface("net2"), anno(annotations.KubeIPAMIP, "10.16.0.12"),
			func(r *Request) { r.KubeIPAMInterface, r.DefaultIPv4Pools = "net1", []string{"def"} }),
			`CNI configuration default pools [def] []`},
		{"kube-ipam netmask disagrees", anno(annotations.KubeIPAMIP, "10.16.0.12", annotations.KubeIPAMNetmask, "255.255.0.0"),
			`error: no pool for eth0 IPv4: pool "fixed": kube-ipam.netmask 255.255.0.0 (/16) disagrees with the pool's subnet 10.16.0.0/24; change the annotation or serve the address from a pool with that netmask`},
		{"kube-ipam gateway disagrees", anno(annotations.KubeIPAMIP, "10.16.0.12", annotations.KubeIPAMGateway, "10.16.0.254"),
			`error: no pool for eth0 IPv4: pool "fixed": kube-ipam.gateway 10.16.0.254 disagrees with the pool's gateway 10.16.0.1; change the annotation or the pool's spec.gateway`},
		{"the workload's annotations when the pod has none", func(r *Request) {
			r.Owner, r.OwnerAnnotations = "StatefulSet app/web", map[string]string{annotations.CalicoIPv4Pools: `["calico-1"]`}
		}, `pod annotations cni.projectcalico.org/ipv4pools/cni.projectcalico.org/ipv6pools [calico-1] []`},
		{"the pod's own annotations before the workload's", chain(anno(annotations.PodIPPool, `{"ipv4":["def"]}`), func(r *Request) {
			r.Owner, r.OwnerAnnotations = "StatefulSet app/web", map[string]string{annotations.CalicoIPv4Pools: `["calico-1"]`}
		}), `pod annotation ipam.spidernet.io/ippool [def] []`},
		{"a malformed workload annotation names the workload", func(r *Request) {
			r.Owner, r.OwnerAnnotations = "Deployment app/web", map[string]string{annotations.OVNIPPool: "10.16.0.15,,"}
		}, `error: failed to parse Deployment app/web (owner of pod app/web-0): invalid annotation "ovn.kubernetes.io/ip_pool": "" is not an IP address; ` +
			`want addresses separated by commas (10.16.0.15,10.16.0.16), or dual-stack pairs separated by semicolons (10.16.0.15,fd00:10:16::f;10.16.0.16,fd00:10:16::10)`},
		{"contradicting dialects", anno(annotations.CalicoIPAddrs, `["10.16.0.15"]`, annotations.OVNIPAddress, "10.16.0.16"),
			`error: failed to parse pod app/web-0: annotations "cni.projectcalico.org/ipAddrs" (10.16.0.15) and "ovn.kubernetes.io/ip_address" (10.16.0.16) ask for different addresses; keep one of them`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.mod(req)
			res, err := x.Select(req)
			var got string
			if err != nil {
				got = "error: " + err.Error()
			} else {
				got = describeFixed(&res.IPv4)
				if req.EnableIPv6 {
					got += " | v6 " + describeFixed(&res.IPv6)
				}
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func describeFixed(fr *FamilyResult) string {
	s := fr.Rule.String() + " [" + strings.Join(fr.Pools, " ") + "]"
	var a []string
	for _, x := range fr.Addresses {
		a = append(a, x.String())
	}
	s += " [" + strings.Join(a, " ") + "]"
	if len(fr.Rejected) > 0 {
		var r []string
		for _, x := range fr.Rejected {
			r = append(r, x.Name+": "+x.Reason)
		}
		s += " rejected=[" + strings.Join(r, "; ") + "]"
	}
	return s
}

func TestSelectApplicationSubnetPools(t *testing.T) {
	web := subnets.App{Kind: "Deployment", Namespace: "app", Name: "web", UID: "u"}
	auto4 := subnets.AutoPoolName(web, "eth0", ranges.V4)
	affinity := func(p *v2beta1.SpiderIPPool) { p.Spec.PodAffinity = subnets.AppAffinity(web) }
	x := NewIndex([]*v2beta1.SpiderIPPool{pool(auto4, "10.252.0.0/16", ips("10.252.1.1-10.252.1.3"), affinity), d4})
	ann := anno(annotations.SubnetOne, `{"ipv4":["team"]}`)
	asApp := func(r *Request) {
		r.App = &web
		r.PodLabels = map[string]string{"app": "web"}
		for k, v := range subnets.AppLabels(web) {
			r.PodLabels[k] = v
		}
	}
	cloneSet := subnets.App{Kind: "CloneSet", Namespace: "app", Name: "web", UID: "c"}
	withDefault := func(r *Request) { r.DefaultSubnet = &annotations.SubnetRequest{IPv4: "team"} }
	for _, tc := range []struct {
		name string
		mod  func(r *Request)
		want string
	}{
		{"the application's pool", chain(ann, asApp), "the application's pool from annotation ipam.spidernet.io/subnet/ipam.spidernet.io/subnets [" + auto4 + "] []"},
		{"another application's pod is refused by the pool's affinity", chain(ann, asApp, func(r *Request) {
			other := subnets.App{Kind: "Deployment", Namespace: "app", Name: "web"}
			r.PodLabels = subnets.AppLabels(subnets.App{Kind: "StatefulSet", Namespace: "app", Name: "db"})
			r.App = &other
		}), `error: no pool for eth0 IPv4: pool "` + auto4 + `": pod affinity does not match pod app/web-0`},
		{"not carved yet: waiting", chain(ann, func(r *Request) { r.App = &subnets.App{Kind: "StatefulSet", Namespace: "app", Name: "db"} }),
			`error: no pool for eth0 IPv4: pool "` + subnets.AutoPoolName(subnets.App{Kind: "StatefulSet", Namespace: "app", Name: "db"}, "eth0", ranges.V4) +
				`" of StatefulSet app/db is not carved from SpiderSubnet "team" yet; spindle-controller creates it, and the pod starts then`},
		{"a pod without a controller", ann,
			`error: failed to select pools for eth0 of pod app/web-0: annotation "ipam.spidernet.io/subnet" gives pools to the pods of an application, and this pod has no controller; create it through a Deployment, StatefulSet or another controller, or name a pool with "ipam.spidernet.io/ippool"`},
		{"a third-party controller without a fixed number", chain(ann, func(r *Request) { r.App = &cloneSet }),
			`error: failed to select pools for eth0 of pod app/web-0: annotation "ipam.spidernet.io/subnet" gives pools to the pods of CloneSet app/web, a controller whose replicas spindle-controller cannot read; set "ipam.spidernet.io/ippool-ip-number" to a fixed number of addresses such as "5"`},
		{"a third-party controller with a fixed number: waiting", chain(ann, anno(annotations.PoolIPNumber, "3"), func(r *Request) { r.App = &cloneSet }),
			`error: no pool for eth0 IPv4: pool "` + subnets.AutoPoolName(cloneSet, "eth0", ranges.V4) + `" of CloneSet app/web is not carved from SpiderSubnet "team" yet; spindle-controller creates it, and the pod starts then`},
		{"the default subnet serves an application naming nothing", chain(asApp, withDefault), "the application's pool from annotation ipam.spidernet.io/subnet/ipam.spidernet.io/subnets [" + auto4 + "] []"},
		{"the default subnet: not carved yet: waiting", chain(withDefault, func(r *Request) { r.App = &subnets.App{Kind: "StatefulSet", Namespace: "app", Name: "db"} }),
			`error: no pool for eth0 IPv4: pool "` + subnets.AutoPoolName(subnets.App{Kind: "StatefulSet", Namespace: "app", Name: "db"}, "eth0", ranges.V4) +
				`" of StatefulSet app/db is not carved from SpiderSubnet "team" yet; spindle-controller creates it, and the pod starts then`},
		{"the default subnet does not serve a bare pod", withDefault, "cluster default pools [d4] []"},
		{"the default subnet does not serve a third-party controller", chain(withDefault, func(r *Request) { r.App = &cloneSet }), "cluster default pools [d4] []"},
		{"the default subnet serves eth0 only", chain(asApp, withDefault, func(r *Request) { r.Interface = "net1" }), "cluster default pools [d4] []"},
		{"a named pool wins over the default subnet", chain(asApp, withDefault, anno(annotations.PodIPPool, `{"ipv4":["d4"]}`)), "pod annotation ipam.spidernet.io/ippool [d4] []"},
		{"ippool before the application's pool", chain(ann, asApp, anno(annotations.PodIPPool, `{"ipv4":["d4"]}`)), "pod annotation ipam.spidernet.io/ippool [d4] []"},
		{"the annotation names another interface only", chain(asApp, anno(annotations.SubnetMany, `[{"interface":"net1","ipv4":["team"]}]`)), "cluster default pools [d4] []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest()
			tc.mod(req)
			res, err := x.Select(req)
			got := ""
			if err != nil {
				got = "error: " + err.Error()
				var npe *NoPoolError
				if errors.As(err, &npe) && strings.Contains(tc.name, "waiting") != npe.Waiting {
					t.Errorf("Waiting = %v", npe.Waiting)
				}
			} else {
				got = describeFixed(&res.IPv4)
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
