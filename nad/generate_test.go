package nad

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func smc(name string, spec v2beta1.MultusCNIConfigSpec) *v2beta1.SpiderMultusConfig {
	return &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: spec}
}

func TestGenerateGolden(t *testing.T) {
	pools := &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4-a", "v4-b"}, IPv6IPPool: []string{"v6-a"}}
	tests := []struct {
		golden string
		m      *v2beta1.SpiderMultusConfig
	}{
		{"macvlan-dual", smc("macvlan-dual", v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master: []string{"eth1"}, SpiderpoolConfigPools: pools}})},
		{"macvlan-vlan-overrides", smc("macvlan-vlan", v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master: []string{"eth1"}, VlanID: ptr.To[int32](100), MTU: ptr.To[int32](1400),
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4-a"}}},
			CoordinatorConfig: &v2beta1.CoordinatorSpec{Mode: ptr.To("underlay"), PodDefaultRouteNIC: ptr.To("net1"), HijackCIDR: []string{"10.96.0.0/12"}, PodCIDRType: ptr.To("cluster")},
			ChainCNIJsonData:  []string{`{"type":"tuning","sysctl":{"net.core.somaxconn":"500"}}`}})},
		{"ipvlan-bond-no-coordinator", smc("ipvlan-bond", v2beta1.MultusCNIConfigSpec{CniType: "ipvlan", EnableCoordinator: ptr.To(false),
			IPVlanConfig: &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth1", "eth2"}, Bond: &v2beta1.BondConfig{Name: "bond0", Mode: 1}}})},
		{"sriov-rdma", smc("sriov", v2beta1.MultusCNIConfigSpec{CniType: "sriov", SriovConfig: &v2beta1.SpiderSRIOVCniConfig{
			ResourceName: "spidernet.io/mellanoxrdma", VlanID: ptr.To[int32](20), MaxTxRateMbps: ptr.To(1000), EnableRdma: true, MTU: ptr.To[int32](9000),
			SpiderpoolConfigPools: pools}})},
		{"ovs-trunk", smc("ovs", v2beta1.MultusCNIConfigSpec{CniType: "ovs", OvsConfig: &v2beta1.SpiderOvsCniConfig{
			BrName: "br1", Trunk: []*v2beta1.Trunk{{ID: ptr.To[uint](10)}, {MinID: ptr.To[uint](20), MaxID: ptr.To[uint](30)}}}})},
		{"macvlan-no-ipam", smc("noipam", v2beta1.MultusCNIConfigSpec{CniType: "macvlan", DisableIPAM: ptr.To(true),
			MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}, SpiderpoolConfigPools: pools}})},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			got, err := Generate(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.m.Name || got.Namespace != "ns" {
				t.Fatalf("object %s/%s", got.Namespace, got.Name)
			}
			var probe map[string]any
			if err := json.Unmarshal([]byte(got.Spec.Config), &probe); err != nil {
				t.Fatalf("config is not JSON: %v", err)
			}
			path := filepath.Join("testdata", tt.golden+".json")
			if *update {
				if err := os.WriteFile(path, []byte(got.Spec.Config+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./nad -update to create it)", err)
			}
			if got.Spec.Config+"\n" != string(want) {
				t.Fatalf("config differs from %s:\n%s", path, got.Spec.Config)
			}
		})
	}
}

func TestGenerateSriovResourceAnnotation(t *testing.T) {
	n, err := Generate(smc("s", v2beta1.MultusCNIConfigSpec{CniType: "sriov", SriovConfig: &v2beta1.SpiderSRIOVCniConfig{ResourceName: "vendor.io/vf"}}))
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[ResourceNameAnnotation] != "vendor.io/vf" {
		t.Fatalf("annotations %v", n.Annotations)
	}
}

func TestGenerateCustomVerbatimAndNames(t *testing.T) {
	conf := `{"cniVersion":"0.4.0","name":"x","plugins":[{"type":"bridge"}]}`
	m := smc("c", v2beta1.MultusCNIConfigSpec{CniType: "custom", CustomCNIConfig: &conf})
	m.Annotations = map[string]string{v2beta1.AnnoMultusCRName: "renamed"}
	n, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Config != conf || n.Name != "renamed" {
		t.Fatalf("got %s %q", n.Name, n.Spec.Config)
	}
	m.Spec.CustomCNIConfig = ptr.To("{")
	if _, err := Generate(m); err == nil {
		t.Fatal("invalid custom config accepted")
	}
	if _, err := Generate(smc("m", v2beta1.MultusCNIConfigSpec{CniType: "macvlan"})); err == nil {
		t.Fatal("macvlan without spec.macvlan accepted")
	}
}

func TestGenerateCNIVersionAnnotation(t *testing.T) {
	m := smc("v", v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}})
	m.Annotations = map[string]string{v2beta1.AnnoMultusCNIVersion: "0.3.1"}
	n, err := Generate(m)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
	}
	if err := json.Unmarshal([]byte(n.Spec.Config), &c); err != nil || c.CNIVersion != "0.3.1" || c.Name != "v" {
		t.Fatalf("%+v %v", c, err)
	}
}
