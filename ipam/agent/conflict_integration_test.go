package agent_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func conflictReport(p *corev1.Pod, ifName, containerID, addr string) *nodeapi.ConflictReport {
	return &nodeapi.ConflictReport{PodNamespace: p.Namespace, PodName: p.Name, PodUID: string(p.UID),
		ContainerID: containerID, IfName: ifName, Address: strings.Split(addr, "/")[0], MAC: "02:00:00:00:00:01"}
}

// TestConflictReleasesAndQuarantines: an address the coordinator refused
// goes back to the pool, the pod's next ADD gets another address, and no
// other pod of the node is offered the refused address while it is
// quarantined.
func TestConflictReleasesAndQuarantines(t *testing.T) {
	requireEnv(t)
	ns := "conflict"
	ensureNamespace(t, ns)
	createPool(t, "conflict-v4", "10.31.0.0/24", "10.31.0.10-10.31.0.12")
	a := startAgent(t, "conflict-node")
	p := createPod(t, podObj(ns, "web", "conflict-node", nil))

	r1, err := a.Add(rootCtx, addReq(p, "net1", "c1", "conflict-v4"))
	if err != nil {
		t.Fatal(err)
	}
	// A report for another incarnation of the pod is refused.
	other := conflictReport(p, "net1", "c1", ip0(r1))
	other.PodUID = "not-the-pod"
	if _, err := a.Conflict(rootCtx, other); !errors.Is(err, nodeapi.ErrNotFound) {
		t.Fatalf("report for another pod UID: %v, want nodeapi.ErrNotFound", err)
	}
	if n := len(claimsOf(t, ns, "web")); n != 1 {
		t.Fatalf("a report for another incarnation released the claim (%d claims)", n)
	}

	res, err := a.Conflict(rootCtx, conflictReport(p, "net1", "c1", ip0(r1)))
	if err != nil || res.Action != nodeapi.ConflictReleased || res.QuarantinedUntil == "" {
		t.Fatalf("conflict report: %+v %v", res, err)
	}
	if n := len(claimsOf(t, ns, "web")); n != 0 {
		t.Fatalf("the refused address is still claimed (%d claims)", n)
	}
	if got := testutil.ToFloat64(a.Metrics().AddressConflicts.WithLabelValues(nodeapi.ConflictReleased)); got != 1 {
		t.Fatalf("spindle_ipam_conflicts_total{action=released} = %v, want 1", got)
	}
	// The runtime's DEL of the failed sandbox, then the retried ADD.
	if err := a.Del(rootCtx, addReq(p, "net1", "c1")); err != nil {
		t.Fatal(err)
	}
	r2, err := a.Add(rootCtx, addReq(p, "net1", "c2", "conflict-v4"))
	if err != nil {
		t.Fatal(err)
	}
	if ip0(r2) == ip0(r1) {
		t.Fatalf("the retried ADD got the refused address %s again", ip0(r1))
	}
	// Another pod gets the last free address, not the quarantined one; a
	// third finds the pool full and is told why.
	q := createPod(t, podObj(ns, "db", "conflict-node", nil))
	r3, err := a.Add(rootCtx, addReq(q, "eth0", "c3", "conflict-v4"))
	if err != nil || ip0(r3) == ip0(r1) || ip0(r3) == ip0(r2) {
		t.Fatalf("second pod got %v %v (refused %s, first pod %s)", ip0(r3), err, ip0(r1), ip0(r2))
	}
	x := createPod(t, podObj(ns, "extra", "conflict-node", nil))
	_, err = a.Add(rootCtx, addReq(x, "eth0", "c4", "conflict-v4"))
	if err == nil || !strings.Contains(err.Error(), "1 more refused") {
		t.Fatalf("ADD with only a quarantined address left: %v, want an error naming the refused address", err)
	}
	for _, pod := range []*corev1.Pod{p, q, x} {
		deletePod(t, pod)
	}
	_ = a.Del(rootCtx, addReq(p, "net1", "c2"))
	_ = a.Del(rootCtx, addReq(q, "eth0", "c3"))
}

// TestConflictKeepsStatefulSetAddress: a StatefulSet replica's fixed
// address is never released by a conflict report, only refused.
func TestConflictKeepsStatefulSetAddress(t *testing.T) {
	requireEnv(t)
	ns := "conflict-sts"
	ensureNamespace(t, ns)
	createPool(t, "conflict-sts-v4", "10.32.0.0/24", "10.32.0.10-10.32.0.12")
	a := startAgent(t, "conflict-sts-node")
	sts := createStatefulSet(t, ns, "db")
	p := createPod(t, replicaOf(sts, "db-0", "conflict-sts-node", nil))
	r1, err := a.Add(rootCtx, addReq(p, "net1", "c1", "conflict-sts-v4"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Conflict(rootCtx, conflictReport(p, "net1", "c1", ip0(r1)))
	if err != nil || res.Action != nodeapi.ConflictKept {
		t.Fatalf("conflict report: %+v %v, want action kept", res, err)
	}
	if c := claimsOf(t, ns, "db-0"); len(c) != 1 || c[0].Spec.PodUID != string(p.UID) {
		t.Fatalf("the replica's fixed address was released: %+v", c)
	}
	if got := testutil.ToFloat64(a.Metrics().AddressConflicts.WithLabelValues(nodeapi.ConflictKept)); got != 1 {
		t.Fatalf("spindle_ipam_conflicts_total{action=kept} = %v, want 1", got)
	}
	if err := a.Del(rootCtx, addReq(p, "net1", "c1")); err != nil {
		t.Fatal(err)
	}
	r2, err := a.Add(rootCtx, addReq(p, "net1", "c2", "conflict-sts-v4"))
	if err != nil || ip0(r2) != ip0(r1) {
		t.Fatalf("retried ADD of the replica: %v %v, want its fixed address %s", ip0(r2), err, ip0(r1))
	}
	sts.Spec.Replicas = ptr.To[int32](0)
	if err := k8s.Update(rootCtx, sts); err != nil {
		t.Fatal(err)
	}
	deletePod(t, p)
	if err := a.Del(rootCtx, addReq(p, "net1", "c2")); err != nil {
		t.Fatal(err)
	}
}
