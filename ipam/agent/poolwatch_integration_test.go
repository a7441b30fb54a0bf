package agent_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// A pool the node may not use is not watched; once its nodeAffinity admits
// the node (or the node's labels change to match it), the agent knows the
// pool's claims before it allocates from it: the taken addresses are
// skipped without a single create meeting AlreadyExists.
func TestPoolOpenedLaterIsWatched(t *testing.T) {
	requireEnv(t)
	ns, node := "late", "late-node"
	ensureNamespace(t, ns)
	createPool(t, "late-v4", "10.39.0.0/24", "10.39.0.10-10.39.0.13")
	createPool(t, "late-v4-b", "10.39.1.0/24", "10.39.1.10-10.39.1.13")
	for _, name := range []string{"late-v4", "late-v4-b"} {
		patchPool(t, name, `{"spec":{"nodeAffinity":{"matchLabels":{"spindle.test/late":"yes"}}}}`)
	}
	// Three of the four addresses of each pool are held by pods of other
	// nodes.
	for _, prefix := range []string{"10.39.0.", "10.39.1."} {
		pool := "late-v4"
		if prefix == "10.39.1." {
			pool = "late-v4-b"
		}
		for _, last := range []string{"10", "11", "12"} {
			c := v2beta1.NewClaim(netip.MustParseAddr(prefix+last), v2beta1.IPClaimSpec{Pool: pool, PodNamespace: ns,
				PodName: "held-" + last, PodUID: "u-" + last, Node: "late-other"})
			if err := k8s.Create(rootCtx, c); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k8s.Delete(rootCtx, c) })
		}
	}
	a := startAgent(t, node)
	m := a.Metrics()
	// Other tests' pools are open to every node: count from here.
	claims0, pools0 := testutil.ToFloat64(m.WatchedClaims), testutil.ToFloat64(m.WatchedPools)
	p := createPod(t, podObj(ns, "first", node, nil))
	if _, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "late-v4")); err == nil || !strings.Contains(err.Error(), "node affinity does not match") {
		t.Fatalf("want a node affinity refusal before the node is admitted, got %v", err)
	}

	// The node gets the label: both pools are watched from now on.
	n := &corev1.Node{}
	if err := k8s.Get(rootCtx, client.ObjectKey{Name: node}, n); err != nil {
		t.Fatal(err)
	}
	n.Labels["spindle.test/late"] = "yes"
	if err := k8s.Update(rootCtx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		delete(n.Labels, "spindle.test/late")
		_ = k8s.Update(rootCtx, n)
	})
	eventually(t, 10*time.Second, "the agent to watch both pools", func() (bool, string) {
		got := testutil.ToFloat64(m.WatchedClaims) - claims0
		return got == 6 && testutil.ToFloat64(m.WatchedPools)-pools0 == 2, ""
	})
	var res string
	eventually(t, 10*time.Second, "an allocation from late-v4", func() (bool, string) {
		r, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "late-v4"))
		if err != nil {
			return false, err.Error()
		}
		res = ip0(r)
		return true, ""
	})
	if res != "10.39.0.13/24" {
		t.Fatalf("allocated %s, want the one free address 10.39.0.13/24", res)
	}
	if c := testutil.ToFloat64(m.Conflicts); c != 0 {
		t.Fatalf("%v creates met a taken address: the pool's claims were not known", c)
	}

	// The pool's affinity moves to another label: it is no longer watched,
	// and its claims are forgotten, but this node's own claim is still
	// served (DEL releases it).
	patchPool(t, "late-v4-b", `{"spec":{"nodeAffinity":{"matchLabels":{"spindle.test/late":"no"}}}}`)
	eventually(t, 10*time.Second, "the agent to stop watching late-v4-b", func() (bool, string) {
		return testutil.ToFloat64(m.WatchedPools)-pools0 == 1 && testutil.ToFloat64(m.WatchedClaims)-claims0 == 4, ""
	})
	patchPool(t, "late-v4", `{"spec":{"nodeAffinity":{"matchLabels":{"spindle.test/late":"no"}}}}`)
	eventually(t, 10*time.Second, "the agent to stop watching late-v4", func() (bool, string) {
		return testutil.ToFloat64(m.WatchedPools) == pools0 && testutil.ToFloat64(m.WatchedClaims) == claims0, ""
	})
	deletePod(t, p)
	if err := a.Del(rootCtx, addReq(p, "eth0", "c1", "late-v4")); err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, ns, "first"); len(c) != 0 {
		t.Fatalf("the claim of a pool no longer watched was not released: %+v", c)
	}
}

func patchPool(t *testing.T, name, patch string) {
	t.Helper()
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Patch(rootCtx, p, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// Pools created after the agent started come through its one shared watch:
// the claims of a pool open to every node are kept (by name), those of a
// pool restricted to other nodes are dropped on arrival.
func TestPoolsCreatedLaterShareOneWatch(t *testing.T) {
	requireEnv(t)
	ns, node := "share", "share-node"
	ensureNamespace(t, ns)
	a := startAgent(t, node)
	m := a.Metrics()
	claims0, pools0 := testutil.ToFloat64(m.WatchedClaims), testutil.ToFloat64(m.WatchedPools)
	createPool(t, "share-open", "10.41.0.0/24", "10.41.0.10-10.41.0.13")
	createPool(t, "share-other", "10.41.1.0/24", "10.41.1.10-10.41.1.13")
	patchPool(t, "share-other", `{"spec":{"nodeName":["share-elsewhere"]}}`)
	for _, pool := range []string{"share-open", "share-other"} {
		prefix := map[string]string{"share-open": "10.41.0.", "share-other": "10.41.1."}[pool]
		for _, last := range []string{"10", "11", "12"} {
			c := v2beta1.NewClaim(netip.MustParseAddr(prefix+last), v2beta1.IPClaimSpec{Pool: pool, PodNamespace: ns,
				PodName: "held-" + last, PodUID: "u-" + last, Node: "share-elsewhere"})
			if err := k8s.Create(rootCtx, c); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k8s.Delete(rootCtx, c) })
		}
	}
	eventually(t, 10*time.Second, "the claims of share-open only", func() (bool, string) {
		c, p := testutil.ToFloat64(m.WatchedClaims)-claims0, testutil.ToFloat64(m.WatchedPools)-pools0
		return c == 3 && p == 1, fmt.Sprintf("%v claims in %v pools", c, p)
	})
	p := createPod(t, podObj(ns, "one", node, nil))
	res, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "share-open"))
	if err != nil {
		t.Fatal(err)
	}
	if ip0(res) != "10.41.0.13/24" || testutil.ToFloat64(m.Conflicts) != 0 {
		t.Fatalf("allocated %s with %v conflicts, want 10.41.0.13/24 with none", ip0(res), testutil.ToFloat64(m.Conflicts))
	}
}
