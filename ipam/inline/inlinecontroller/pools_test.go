package inlinecontroller

import (
	"errors"
	"strings"
	"testing"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/webhook"
)

func nad(config string) *netv1.NetworkAttachmentDefinition {
	return &netv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "database"},
		Spec:       netv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
}

func TestPoolsOfKubeIPAMSeed(t *testing.T) {
	n, err := Pools(nad(`{"cniVersion":"0.3.1","name":"k8snetwork","type":"macvlan","master":"eth0","ipam":{
		"name":"kube-subnet","type":"spiderpool","kubeConfig":"/etc/kubernetes/pki/kubectl.kubeconfig",
		"etcdConfig":{"etcdURL":"https://192.168.1.50:2379"},
		"subnet":"10.188.0.0/16","fixedStart":"10.188.0.10","fixedEnd":"10.188.0.255",
		"rangeStart":"10.188.1.0","rangeEnd":"10.188.255.254","gateway":"10.188.0.1",
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.0.0.0/8","gw":"10.188.0.254"}],"resolvConf":"/etc/resolv.conf"}}`))
	if err != nil {
		t.Fatal(err)
	}
	common := func(name string, ips string) v2beta1.SpiderIPPool {
		return v2beta1.SpiderIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v2beta1.LabelInline: "true"},
				Annotations: map[string]string{v2beta1.AnnoInlineNetwork: "db/database"}},
			Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(int64(4)), Subnet: "10.188.0.0/16", IPs: []string{ips},
				Gateway: ptr.To("10.188.0.1"), Routes: []v2beta1.Route{{Dst: "10.0.0.0/8", Gw: "10.188.0.254"}},
				MultusName: []string{"db/database"}, Default: ptr.To(false), Disable: ptr.To(false)},
		}
	}
	want := []v2beta1.SpiderIPPool{common("db.database.v4", "10.188.1.0-10.188.255.254"), common("db.database.fixed-v4", "10.188.0.10-10.188.0.255")}
	if len(n.Pools) != len(want) {
		t.Fatalf("got %d pools, want %d", len(n.Pools), len(want))
	}
	for i := range want {
		got := n.Pools[i]
		if !equality.Semantic.DeepEqual(got.ObjectMeta, want[i].ObjectMeta) || !equality.Semantic.DeepEqual(got.Spec, want[i].Spec) {
			t.Errorf("pool %d\n got %+v %+v\nwant %+v %+v", i, got.ObjectMeta, got.Spec, want[i].ObjectMeta, want[i].Spec)
		}
		// What the webhook stores is what Pools builds, so an unchanged
		// network causes no update.
		stored := got.DeepCopy()
		webhook.DefaultIPPool(stored)
		if !sameSpec(stored, &got) {
			t.Errorf("pool %s changes when defaulted: %+v", got.Name, stored.Spec)
		}
		if err := webhook.ValidateIPPool(&got, webhook.PoolState{Others: n.Pools}); err != nil {
			t.Errorf("pool %s is refused: %v", got.Name, err)
		}
	}
}

func TestPoolsOfAPluginList(t *testing.T) {
	n, err := Pools(nad(`{"cniVersion":"1.0.0","name":"n","plugins":[
		{"type":"macvlan","master":"ul0","ipam":{"type":"spiderpool","sharedNetwork":"lan",
		 "range":"fd00:77::/120","exclude":["fd00:77::/124"]}},
		{"type":"coordinator"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Pools) != 1 {
		t.Fatalf("pools %+v", n.Pools)
	}
	p := n.Pools[0]
	if p.Name != "db.database.v6" || p.Labels[v2beta1.LabelSharedNetwork] != "lan" || p.Spec.Gateway != nil ||
		strings.Join(p.Spec.IPs, ",") != "fd00:77::1-fd00:77::ff" || strings.Join(p.Spec.ExcludeIPs, ",") != "fd00:77::-fd00:77::f" {
		t.Errorf("pool %+v %+v", p.ObjectMeta, p.Spec)
	}
}

func TestPoolsOfOtherConfigurations(t *testing.T) {
	for _, c := range []string{
		`{"type":"macvlan","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}}`,
		`{"type":"macvlan","ipam":{"type":"spiderpool","default_ipv4_ippool":["a"]}}`,
		`{"plugins":[{"type":"macvlan","ipam":{"type":"spiderpool"}}]}`,
		`{"type":"macvlan"}`,
	} {
		if n, err := Pools(nad(c)); n != nil || err != nil {
			t.Errorf("Pools(%s) = %+v, %v; want no pools", c, n, err)
		}
	}
}

func TestPoolsErrorNamesTheNetworkAndKey(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{"plugins":[{"type":"macvlan"},{"type":"macvlan","ipam":{"type":"spiderpool","range":"10.1.0.0/24","exclude":["x"]}}]}`,
			`NetworkAttachmentDefinition db/database: spec.config plugins[1].ipam.exclude[0]: "x" is not a CIDR or an address`},
		{`{"plugins":[{"ipam":{"type":"spiderpool"}},{"ipam":{"type":"spiderpool"}}]}`,
			`NetworkAttachmentDefinition db/database: spec.config: plugins[0].ipam and plugins[1].ipam both have type spiderpool`},
		{`not json`, `NetworkAttachmentDefinition db/database: spec.config: is not a JSON object`},
	} {
		_, err := Pools(nad(tc.config))
		var ce *ConfigError
		if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Pools(%s) = %v, want %q", tc.config, err, tc.want)
		}
	}
}

func TestMaxAddressesIsThePoolLimit(t *testing.T) {
	if inline.MaxAddresses != ranges.MaxPoolSize {
		t.Fatalf("inline.MaxAddresses %d, ranges.MaxPoolSize %d: an inline range must fit a pool", inline.MaxAddresses, ranges.MaxPoolSize)
	}
}

func TestSharedNetworkLetsInlinePoolsOverlap(t *testing.T) {
	pool := func(ns, shared string) v2beta1.SpiderIPPool {
		n, err := Pools(&netv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "lan"},
			Spec: netv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"macvlan","ipam":{"type":"spiderpool","range":"10.77.0.0/24"` + shared + `}}`}})
		if err != nil {
			t.Fatal(err)
		}
		return n.Pools[0]
	}
	a, b := pool("a", ""), pool("b", "")
	err := webhook.ValidateIPPool(&b, webhook.PoolState{Others: []v2beta1.SpiderIPPool{a}})
	if err == nil || !strings.Contains(err.Error(), `NetworkAttachmentDefinitions b/lan and a/lan overlap`) || !strings.Contains(err.Error(), `"sharedNetwork"`) {
		t.Fatalf("overlap of two networks: %v", err)
	}
	a, b = pool("a", `,"sharedNetwork":"lan"`), pool("b", `,"sharedNetwork":"lan"`)
	if err := webhook.ValidateIPPool(&b, webhook.PoolState{Others: []v2beta1.SpiderIPPool{a}}); err != nil {
		t.Fatalf("two networks sharing one network: %v", err)
	}
	c := pool("c", `,"sharedNetwork":"other"`)
	if err := webhook.ValidateIPPool(&c, webhook.PoolState{Others: []v2beta1.SpiderIPPool{a}}); err == nil {
		t.Fatal("different shared networks may overlap")
	}
}
