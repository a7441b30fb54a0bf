package v2beta1

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

const crdDir = "../../../charts/spindle/crds"

func loadCRD(t *testing.T, plural string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(crdDir, GroupVersion.Group+"_"+plural+".yaml"))
	if err != nil {
		t.Fatalf("failed to read CRD %q (run make generate): %v", plural, err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatalf("failed to decode CRD %q: %v", plural, err)
	}
	return crd
}

// columns renders the printer columns of crd for obj the way the API server's
// table convertor does, keyed by column name.
func columns(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, obj runtime.Object) map[string]string {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		jp := jsonpath.New(col.Name)
		jp.AllowMissingKeys(true)
		if err := jp.Parse(fmt.Sprintf("{%s}", col.JSONPath)); err != nil {
			t.Fatalf("column %s: bad JSONPath %q: %v", col.Name, col.JSONPath, err)
		}
		var buf bytes.Buffer
		if err := jp.Execute(&buf, u); err != nil {
			t.Fatalf("column %s: %v", col.Name, err)
		}
		out[col.Name] = buf.String()
	}
	return out
}

func TestCRDNamesAndScope(t *testing.T) {
	tests := []struct {
		plural, kind, short string
		scope               apiextensionsv1.ResourceScope
		status              bool
	}{
		{"spiderippools", "SpiderIPPool", "sp", apiextensionsv1.ClusterScoped, true},
		{"spiderendpoints", "SpiderEndpoint", "se", apiextensionsv1.NamespaceScoped, false}, // as Spiderpool's: written whole
		{"spiderreservedips", "SpiderReservedIP", "sr", apiextensionsv1.ClusterScoped, false},
		{"spidersubnets", "SpiderSubnet", "ss", apiextensionsv1.ClusterScoped, true},
		{"spidermultusconfigs", "SpiderMultusConfig", "smc", apiextensionsv1.NamespaceScoped, false},
		{"spidercoordinators", "SpiderCoordinator", "scc", apiextensionsv1.ClusterScoped, true},
		{"spideripclaims", "SpiderIPClaim", "sic", apiextensionsv1.ClusterScoped, false},
	}
	for _, tt := range tests {
		crd := loadCRD(t, tt.plural)
		n := crd.Spec.Names
		if n.Kind != tt.kind || len(n.ShortNames) != 1 || n.ShortNames[0] != tt.short || crd.Spec.Scope != tt.scope {
			t.Errorf("%s: kind %q shortNames %v scope %q; want %q [%s] %q", tt.plural, n.Kind, n.ShortNames, crd.Spec.Scope, tt.kind, tt.short, tt.scope)
		}
		v := crd.Spec.Versions
		if len(v) != 1 || v[0].Name != "v2beta1" || !v[0].Served || !v[0].Storage {
			t.Errorf("%s: versions %+v, want one served storage version v2beta1", tt.plural, v)
		}
		if got := v[0].Subresources != nil && v[0].Subresources.Status != nil; got != tt.status {
			t.Errorf("%s: status subresource %v, want %v", tt.plural, got, tt.status)
		}
	}
}

func TestIPPoolPrinterColumns(t *testing.T) {
	crd := loadCRD(t, "spiderippools")
	var names, wide []string
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		if c.Priority == 0 {
			names = append(names, c.Name)
		} else {
			wide = append(wide, c.Name)
		}
	}
	if got, want := strings.Join(names, " "), "VERSION SUBNET ALLOCATED-IP-COUNT TOTAL-IP-COUNT DEFAULT DISABLE AGE"; got != want {
		t.Errorf("default columns %q, want %q", got, want)
	}
	if got, want := strings.Join(wide, " "), "NODENAME MULTUSNAME APP-NAMESPACE"; got != want {
		t.Errorf("wide columns %q, want %q", got, want)
	}

	v4, total, alloc, f := int64(4), int64(10), int64(1), false
	pool := &SpiderIPPool{
		Spec: IPPoolSpec{
			IPVersion: &v4, Subnet: "10.6.0.0/16", Default: &f, Disable: &f,
			NodeName:    []string{"master", "worker1"},
			MultusName:  []string{"kube-system/macvlan-vlan0"},
			PodAffinity: nil,
		},
		Status: IPPoolStatus{TotalIPCount: &total, AllocatedIPCount: &alloc},
	}
	got := columns(t, crd, pool)
	want := map[string]string{
		"VERSION": "4", "SUBNET": "10.6.0.0/16", "ALLOCATED-IP-COUNT": "1", "TOTAL-IP-COUNT": "10",
		"DEFAULT": "false", "DISABLE": "false", "NODENAME": `["master","worker1"]`,
		"MULTUSNAME": `["kube-system/macvlan-vlan0"]`, "APP-NAMESPACE": "",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("column %s = %q, want %q", k, got[k], w)
		}
	}

	var auto SpiderIPPool
	if err := yaml.UnmarshalStrict([]byte(`
spec:
  subnet: 172.100.0.0/16
  podAffinity:
    matchLabels:
      ipam.spidernet.io/app-namespace: kube-system
      ipam.spidernet.io/app-name: demo-deploy
`), &auto); err != nil {
		t.Fatal(err)
	}
	if got := columns(t, crd, &auto)["APP-NAMESPACE"]; got != "kube-system" {
		t.Errorf("APP-NAMESPACE = %q, want kube-system", got)
	}
}

func TestEndpointPrinterColumns(t *testing.T) {
	crd := loadCRD(t, "spiderendpoints")
	ip, pool := "10.6.0.5/16", "pool-a"
	se := &SpiderEndpoint{Status: WorkloadEndpointStatus{Current: PodIPAllocation{
		UID: "u", Node: "worker-1",
		IPs:       []IPAllocationDetail{{Interface: "eth0", IPv4: &ip, IPv4Pool: &pool}, {Interface: "net1"}},
		Addresses: "eth0=10.6.0.5/16 net1=",
	}}}
	got := columns(t, crd, se)
	want := map[string]string{"ADDRESSES": "eth0=10.6.0.5/16 net1=", "INTERFACE": "eth0", "IPV4POOL": "pool-a", "IPV4": "10.6.0.5/16", "IPV6POOL": "", "IPV6": "", "NODE": "worker-1"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("column %s = %q, want %q", k, got[k], w)
		}
	}
}

func TestIPClaimPrinterColumns(t *testing.T) {
	crd := loadCRD(t, "spideripclaims")
	c := &SpiderIPClaim{Spec: IPClaimSpec{Pool: "p", Address: "10.6.0.5", IPVersion: 4, PodNamespace: "ns", PodName: "web-0", Interface: "net1", Node: "n1"}}
	got := columns(t, crd, c)
	want := map[string]string{"ADDRESS": "10.6.0.5", "POOL": "p", "NAMESPACE": "ns", "POD": "web-0", "INTERFACE": "net1", "NODE": "n1"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("column %s = %q, want %q", k, got[k], w)
		}
	}
}

// Manifests from Spiderpool's documentation decode into the Go types without
// unknown or mistyped fields.
func TestSpiderpoolManifestsDecodeStrictly(t *testing.T) {
	manifests := []struct {
		obj  any
		yaml string
	}{
		{&SpiderIPPool{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: nginx-ippool-v4
  labels:
    ipam.spidernet.io/subnet-cidr: 10-244-0-0-16
spec:
  ips:
  - 10.244.100.0-10.244.200.1
  subnet: 10.244.0.0/16
`},
		{&SpiderIPPool{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: master-172
spec:
  ipVersion: 4
  subnet: 172.31.192.0/20
  ips:
    - 172.31.199.180-172.31.199.189
    - 172.31.199.205-172.31.199.209
  excludeIPs:
    - 172.31.199.186-172.31.199.188
    - 172.31.199.207
  gateway: 172.31.207.253
  default: true
  disable: false
  vlan: 0
  routes:
  - dst: 10.0.0.0/16
    gw: 172.31.207.1
  nodeName: [master]
  namespaceName: [kube-system]
  multusName: [kube-system/macvlan-vlan0]
  nodeAffinity:
    matchExpressions:
    - {key: kubernetes.io/hostname, operator: In, values: [master]}
status:
  allocatedIPs: '{}'
  allocatedIPCount: 0
  totalIPCount: 12
`},
		{&SpiderEndpoint{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderEndpoint
metadata:
  name: test-app-1-9dc78fb9-rs99d
  namespace: default
status:
  current:
    ips:
    - cleanGateway: false
      interface: eth0
      ipv4: 172.31.199.193/20
      ipv4Gateway: 172.31.207.253
      ipv4Pool: worker-172
      vlan: 0
      routes: [{dst: 10.0.0.0/16, gw: 172.31.207.1}]
    node: dc-test02
    uid: e7b50a38-25c2-41d0-b332-7f619c69194e
  ownerControllerName: test-app-1
  ownerControllerType: Deployment
`},
		{&SpiderReservedIP{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata:
  name: exclude-ips
spec:
  ipVersion: 4
  ips:
  - 172.18.40.40-172.18.40.44
  - 172.18.40.55
`},
		{&SpiderSubnet{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata:
  name: default-v4-subnet
spec:
  ipVersion: 4
  ips:
    - 172.22.40.2-172.22.40.254
  subnet: 172.22.0.0/16
  excludeIPs:
    - 172.22.40.10-172.22.40.20
  gateway: 172.22.40.1
`},
		{&SpiderMultusConfig{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: demo
  namespace: default
  annotations:
    multus.spidernet.io/cr-name: "macvlan-100"
    multus.spidernet.io/cni-version: 0.4.0
spec:
  cniType: macvlan
  enableCoordinator: true
  macvlan:
    master: ["eth0"]
    vlanID: 100
    ippools:
      ipv4: ["default-pool-v4"]
      ipv6: ["default-pool-v6"]
  coordinator:
    podDefaultRouteNIC: net1
    hijackCIDR: [169.254.0.0/16]
`},
		{&SpiderMultusConfig{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: sriov
  namespace: kube-system
spec:
  cniType: sriov
  sriov:
    resourceName: spidernet.io/sriov_netdevice
    vlanID: 200
    enableRdma: true
    ippools:
      ipv4: [sriov-ippool]
`},
		{&SpiderMultusConfig{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderMultusConfig
metadata:
  name: ovs
  namespace: kube-system
spec:
  cniType: ovs
  ovs:
    bridge: br1
    vlan: 30
    trunk: [{minID: 10, maxID: 20}, {id: 40}]
    ippools:
      ipv4: [vlan30]
`},
		{&SpiderCoordinator{}, `
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  name: default
spec:
  detectGateway: false
  detectIPConflict: false
  hostRPFilter: 0
  podRPFilter: 0
  hostRuleTable: 500
  mode: underlay
  podCIDRType: cluster
  podDefaultRouteNIC: eth0
  podMACPrefix: ""
  tunePodRoutes: true
  txQueueLen: 0
  vethLinkAddress: 169.254.100.1
status:
  overlayPodCIDR:
  - 10.233.64.0/18
  phase: Synced
  serviceCIDR:
  - 10.233.0.0/18
`},
	}
	for i, m := range manifests {
		if err := yaml.UnmarshalStrict([]byte(m.yaml), m.obj); err != nil {
			t.Errorf("manifest %d (%T): %v", i, m.obj, err)
		}
	}
}
