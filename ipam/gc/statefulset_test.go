package gc

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle/lifecycletest"
)

// A StatefulSet deleted after its pods (a namespace being deleted) leaves
// claims that were kept for the replicas' next incarnation; no pod event
// follows, so the StatefulSet's own events must bring its replicas' names
// back to the collector.
func TestStatefulSetEventsEnqueueItsReplicas(t *testing.T) {
	other := stsClaim("10.0.0.3", "web-2", "u3")
	other.Spec.PodNamespace = "elsewhere"
	plain := newClaim("10.0.0.4", "web-3", "u4") // same name pattern, no owner
	ep := newEndpoint("web-1", "u1")
	ep.Status.OwnerControllerType, ep.Status.OwnerControllerName = "StatefulSet", "web"
	epOther := newEndpoint("db-0", "u9")
	epOther.Status.OwnerControllerType, epOther.Status.OwnerControllerName = "StatefulSet", "db"
	claims := []v2beta1.SpiderIPClaim{*stsClaim("10.0.0.1", "web-0", "u0"), *stsClaim("10.0.0.2", "web-0", "u0"), *other, *plain}
	got := OwnerAllocations("ns", "StatefulSet", "web", claims, []v2beta1.SpiderEndpoint{*ep, *epOther})
	want := []types.NamespacedName{{Namespace: "ns", Name: "web-0"}, {Namespace: "ns", Name: "web-1"}}
	var names []types.NamespacedName
	for _, r := range got {
		names = append(names, r.NamespacedName)
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("OwnerAllocations = %v, want %v", names, want)
	}

	sts := func(replicas int32, start int32, deleting bool) *appsv1.StatefulSet {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas)}}
		if start != 0 {
			s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: start}
		}
		if deleting {
			s.DeletionTimestamp = &metav1.Time{Time: lifecycletest.T0}
		}
		return s
	}
	p := statefulSetShrunk()
	for _, tc := range []struct {
		name     string
		old, new *appsv1.StatefulSet
		want     bool
	}{
		{"scaled down", sts(3, 0, false), sts(1, 0, false), true},
		{"scaled up", sts(1, 0, false), sts(3, 0, false), false},
		{"ordinals moved", sts(3, 0, false), sts(3, 2, false), true},
		{"deletion started", sts(3, 0, false), sts(3, 0, true), true},
		{"status only", sts(3, 0, false), sts(3, 0, false), false},
	} {
		if got := p.Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("%s: update passes = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !p.Delete(event.DeleteEvent{Object: sts(3, 0, false)}) {
		t.Error("deletion of a StatefulSet must pass")
	}
	if p.Create(event.CreateEvent{Object: sts(3, 0, false)}) {
		t.Error("creation of a StatefulSet frees nothing and must not pass")
	}
}

// The agent creates a SpiderEndpoint and then writes its status: the update
// that names the pod incarnation must reach the collector, later status
// rewrites need not.
func TestEndpointUpdatesThatNameTheHolderPass(t *testing.T) {
	p := endpointHolderChanged()
	empty := newEndpoint("app-1", "")
	named := newEndpoint("app-1", "u1")
	rewritten := newEndpoint("app-1", "u1")
	rewritten.Status.Current.ContainerID = "other"
	if !p.Update(event.UpdateEvent{ObjectOld: empty, ObjectNew: named}) {
		t.Error("the update that records the holder must pass")
	}
	if !p.Update(event.UpdateEvent{ObjectOld: named, ObjectNew: newEndpoint("app-1", "u2")}) {
		t.Error("a new holder must pass")
	}
	if p.Update(event.UpdateEvent{ObjectOld: named, ObjectNew: rewritten}) {
		t.Error("a rewrite for the same holder need not pass")
	}
}
