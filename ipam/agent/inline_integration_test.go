package agent_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// TestInlineRangesServeTheInterfaceOfTheirNetwork: a request of a network
// with inline ranges allocates from the pools of the interface's
// NetworkAttachmentDefinition, IPv4 only for an IPv4-only network, with the
// pool's spec.dns in the result; an interface of another network does not
// get them.
func TestInlineRangesServeTheInterfaceOfTheirNetwork(t *testing.T) {
	requireEnv(t)
	a := startAgent(t, "inline-node", dualStack)
	ensureNamespace(t, "inline")
	pool := inline.PoolName("inline", "db", "v4")
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool}, Spec: v2beta1.IPPoolSpec{Subnet: "10.77.0.0/24",
		IPs: []string{"10.77.0.10-10.77.0.11"}, MultusName: []string{"inline/db"},
		DNS: &v2beta1.DNS{Nameservers: []string{"10.77.0.53"}, Search: []string{"db.example"}}}}
	if err := k8s.Create(rootCtx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(rootCtx, p) })
	pod := createPod(t, podObj("inline", "client", "inline-node", map[string]string{"k8s.v1.cni.cncf.io/networks": "db, other@net2"}))
	t.Cleanup(func() { deletePod(t, pod) })

	req := &nodeapi.Request{ContainerID: "c1", IfName: "net1", PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: string(pod.UID),
		NetworkName: "db", InlineIPv4Pools: []string{"v4"}}
	var res *nodeapi.Result
	var err error
	eventually(t, 10*time.Second, "the pool in the agent's cache", func() (bool, string) {
		res, err = a.Add(rootCtx, req)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if len(res.IPs) != 1 || res.IPs[0].Pool != pool || !strings.HasPrefix(res.IPs[0].Address, "10.77.0.1") {
		t.Fatalf("result %+v: want one IPv4 address of %s (the network has no IPv6 range)", res, pool)
	}
	if res.DNS == nil || strings.Join(res.DNS.Nameservers, ",") != "10.77.0.53" || strings.Join(res.DNS.Search, ",") != "db.example" {
		t.Fatalf("result dns %+v: want the pool's spec.dns", res.DNS)
	}

	other := *req
	other.IfName, other.ContainerID = "net2", "c1"
	_, err = a.Add(rootCtx, &other)
	if err == nil || !strings.Contains(err.Error(), inline.PoolName("inline", "other", "v4")) {
		t.Fatalf("net2 (network inline/other) got %v; want a refusal naming its own pool", err)
	}
	bad := *req
	bad.InlineIPv4Pools = []string{"../x"}
	if _, err := a.Add(rootCtx, &bad); err == nil || !strings.Contains(err.Error(), `invalid inline pool suffix "../x"`) {
		t.Fatalf("bad suffix: %v", err)
	}
}
