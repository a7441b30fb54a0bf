package v2beta1_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/kubeapi"
	"github.com/spindle-net/spindle/test/prereq"
)

// TestAPIServerAcceptsSpiderpoolManifests loads the generated CRDs into a real
// API server and checks that documented Spiderpool manifests apply unchanged,
// that the validation rules refuse bad values, and that the server renders
// the printer columns kubectl shows.
func TestAPIServerAcceptsSpiderpoolManifests(t *testing.T) {
	_, c := startAPIServer(t)
	ctx := context.Background()

	apply := func(manifest string) error {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
			t.Fatal(err)
		}
		return c.Create(ctx, u)
	}
	for _, m := range []string{
		// Calico quick start.
		`
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
`,
		// SpiderIPPool reference.
		`
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
`,
		`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: test-pod-ippool
spec:
  subnet: 10.6.0.0/16
  ips: [10.6.168.101-10.6.168.110]
  nodeName: [master, worker1]
  multusName: [kube-system/macvlan-vlan0]
  nodeAffinity:
    matchExpressions:
    - {key: kubernetes.io/hostname, operator: In, values: [node1]}
`,
		`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: custom-ipv6-ippool
spec:
  ipVersion: 6
  subnet: fd00:6::/64
  ips: [fd00:6::10-fd00:6::ff]
  gateway: fd00:6::1
`,
		`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderReservedIP
metadata:
  name: exclude-ips
spec:
  ipVersion: 4
  ips: [172.18.40.40-172.18.40.44, 172.18.40.55]
`,
		`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata:
  name: default-v4-subnet
spec:
  ipVersion: 4
  ips: [172.22.40.2-172.22.40.254]
  subnet: 172.22.0.0/16
  excludeIPs: [172.22.40.10-172.22.40.20]
  gateway: 172.22.40.1
`,
		`
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
  macvlan:
    master: ["eth0"]
    vlanID: 100
    ippools:
      ipv4: ["default-pool-v4"]
      ipv6: ["default-pool-v6"]
`,
		`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderCoordinator
metadata:
  name: default
spec:
  detectGateway: false
  detectIPConflict: false
  hostRPFilter: 0
  hostRuleTable: 500
  mode: underlay
  podCIDRType: cluster
  podDefaultRouteNIC: eth0
  podMACPrefix: ""
  tunePodRoutes: true
`,
	} {
		if err := apply(m); err != nil {
			t.Errorf("failed to apply manifest:%s\nerror: %v", m, err)
		}
	}

	// Defaults from the CRD.
	var pool v2beta1.SpiderIPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "nginx-ippool-v4"}, &pool); err != nil {
		t.Fatal(err)
	}
	if pool.Spec.Default == nil || *pool.Spec.Default || pool.Spec.Disable == nil || *pool.Spec.Disable {
		t.Errorf("default/disable not defaulted to false: %+v", pool.Spec)
	}
	var smc v2beta1.SpiderMultusConfig
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo"}, &smc); err != nil {
		t.Fatal(err)
	}
	if smc.Spec.EnableCoordinator == nil || !*smc.Spec.EnableCoordinator {
		t.Errorf("enableCoordinator not defaulted to true")
	}

	// Validation refuses bad values with the field in the message.
	for _, tt := range []struct{ manifest, want string }{
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"bad1"},"spec":{"subnet":"10.6.0.0"}}`, "subnet must be a CIDR"},
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"bad2"},"spec":{"subnet":"10.6.0.0/16","gateway":"10.6.0"}}`, "gateway must be an IP address"},
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"bad3"},"spec":{"subnet":"10.6.0.0/16","ipVersion":5}}`, "spec.ipVersion"},
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"bad4"},"spec":{"ips":["10.6.0.1"]}}`, "spec.subnet"},
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderMultusConfig","metadata":{"name":"bad5","namespace":"default"},"spec":{"cniType":"bridge"}}`, "spec.cniType"},
		{`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPClaim","metadata":{"name":"10.6.0.9"},"spec":{"pool":"p","address":"10.6.0.9/16","ipVersion":4}}`, "address must be an IP address"},
	} {
		err := apply(tt.manifest)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("applying %s: error %v, want it to mention %q", tt.manifest, err, tt.want)
		}
	}

	// A claim's name is the address; a second claim of it is refused, and
	// the address cannot change.
	addr := "10.6.168.101"
	claim := &v2beta1.SpiderIPClaim{
		ObjectMeta: metav1.ObjectMeta{Name: addr, Labels: map[string]string{v2beta1.LabelPool: "test-pod-ippool"}},
		Spec:       v2beta1.IPClaimSpec{Pool: "test-pod-ippool", Address: addr, IPVersion: 4, PodNamespace: "default", PodName: "web-0", Interface: "net1", Node: "worker1"},
	}
	if err := c.Create(ctx, claim.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, claim.DeepCopy()); err == nil {
		t.Error("a second claim of the same address was accepted")
	}
	var got v2beta1.SpiderIPClaim
	if err := c.Get(ctx, client.ObjectKey{Name: addr}, &got); err != nil {
		t.Fatal(err)
	}
	got.Spec.Address = "10.6.168.102"
	if err := c.Update(ctx, &got); err == nil || !strings.Contains(err.Error(), "address is immutable") {
		t.Errorf("changing the address: %v", err)
	}

	// An endpoint is written whole, as Spiderpool's: no status subresource,
	// so a create keeps the status it carries.
	ip, p := "10.6.168.101/16", "test-pod-ippool"
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0"},
		Status: v2beta1.WorkloadEndpointStatus{
			Current:             v2beta1.PodIPAllocation{UID: "u1", Node: "worker1", ContainerID: "c1", IPs: []v2beta1.IPAllocationDetail{{Interface: "eth0", IPv4: &ip, IPv4Pool: &p}}},
			OwnerControllerType: "StatefulSet", OwnerControllerName: "web",
		}}
	if err := c.Create(ctx, se.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	var seGot v2beta1.SpiderEndpoint
	if err := c.Get(ctx, client.ObjectKeyFromObject(se), &seGot); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seGot.Status, se.Status) {
		t.Errorf("SpiderEndpoint status after create: %+v, want %+v", seGot.Status, se.Status)
	}
}

type tableClient struct {
	http *http.Client
	host string
}

func restClient(t *testing.T, cfg *rest.Config) *tableClient {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &tableClient{http: hc, host: strings.TrimSuffix(cfg.Host, "/")}
}

// table fetches path as the Table kubectl prints and returns its columns and
// its only row, as column name -> cell.
func (rc *tableClient) table(t *testing.T, path string) ([]metav1.TableColumnDefinition, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rc.host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := rc.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s as Table: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as Table: %s %s %v", path, resp.Status, body, err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 || len(table.Rows[0].Cells) != len(table.ColumnDefinitions) {
		t.Fatalf("%s: want one row with a cell per column, got %s", path, body)
	}
	cells := map[string]any{}
	for i, c := range table.ColumnDefinitions {
		cell := table.Rows[0].Cells[i]
		if f, ok := cell.(float64); ok {
			cell = int64(f)
		}
		cells[c.Name] = cell
	}
	return table.ColumnDefinitions, cells
}

// startAPIServer starts a real API server loaded with the generated CRDs,
// stopped when t ends, and a client of it. Under make test a missing
// prerequisite, -short included, fails the test.
func startAPIServer(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	if testing.Short() {
		prereq.Missing(t, "starts an API server; not run with -short")
	}
	prereq.Tier(t, prereq.Envtest)
	env, err := kubeapi.Start()
	if errors.Is(err, kubeapi.ErrNoAssets) {
		prereq.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	scheme := runtime.NewScheme()
	if err := v2beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return env.Config, c
}
