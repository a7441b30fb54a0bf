package agent_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// A StatefulSet replica that moves between nodes, back and forth and faster
// than the agents' caches follow, always ends with one SpiderEndpoint that
// names its current incarnation and node: the agent of the node it left
// neither deletes it nor takes it back (each agent follows only its own
// node's claims, so for the old node the claims look deleted). A
// SpiderEndpoint deleted under a running replica is written again.
func TestEndpointFollowsAMovingReplica(t *testing.T) {
	requireEnv(t)
	ns := "semove"
	ensureNamespace(t, ns)
	createPool(t, "semove-v4", "10.43.0.0/24", "10.43.0.10-10.43.0.20")
	agents := map[string]*agent.Agent{"semove-node-1": startAgent(t, "semove-node-1"), "semove-node-2": startAgent(t, "semove-node-2")}
	sts := createStatefulSet(t, ns, "db")

	endpointIs := func(p *corev1.Pod, node string) func() (bool, string) {
		return func() (bool, string) {
			se := &v2beta1.SpiderEndpoint{}
			if err := k8s.Get(rootCtx, client.ObjectKey{Namespace: ns, Name: "db-0"}, se); err != nil {
				return false, err.Error()
			}
			cur := se.Status.Current
			return cur.UID == string(p.UID) && cur.Node == node && len(cur.IPs) == 1,
				fmt.Sprintf("uid %s node %s ips %d", cur.UID, cur.Node, len(cur.IPs))
		}
	}
	var p *corev1.Pod
	var node string
	// Moves with no pause: the next replica starts while both agents still
	// process the previous move.
	for round := 0; round < 12; round++ {
		node = fmt.Sprintf("semove-node-%d", round%2+1)
		if round%4 == 3 {
			node = fmt.Sprintf("semove-node-%d", (round+1)%2+1) // now and then twice on the same node
		}
		q := createPod(t, replicaOf(sts, "db-0", node, nil))
		if _, err := agents[node].Add(rootCtx, addReq(q, "eth0", fmt.Sprintf("c%d", round), "semove-v4")); err != nil {
			t.Fatalf("round %d: ADD on %s: %v", round, node, err)
		}
		if round < 11 {
			deletePod(t, q)
			if err := agents[node].Del(rootCtx, addReq(q, "eth0", fmt.Sprintf("c%d", round), "semove-v4")); err != nil {
				t.Fatalf("round %d: DEL on %s: %v", round, node, err)
			}
		}
		p = q
	}
	eventually(t, 20*time.Second, "the SpiderEndpoint of the last replica", endpointIs(p, node))
	// And it stays so (no agent undoes it later).
	time.Sleep(3 * time.Second)
	if ok, got := endpointIs(p, node)(); !ok {
		t.Fatalf("the SpiderEndpoint changed after it settled: %s", got)
	}

	// Deleted under the running replica: written again.
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-0"}}
	if err := k8s.Delete(rootCtx, se); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the deleted SpiderEndpoint written again", endpointIs(p, node))

	deletePod(t, p)
	if err := agents[node].Del(rootCtx, addReq(p, "eth0", "c11", "semove-v4")); err != nil {
		t.Fatal(err)
	}
}
