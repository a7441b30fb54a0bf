package gc

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func livePod(name string, uid types.UID) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid},
		Spec:       corev1.PodSpec{NodeName: "node1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func stsPod(name string, uid types.UID, sts *appsv1.StatefulSet) *corev1.Pod {
	p := livePod(name, uid)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr.To(true)}}
	return p
}

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: "sts-uid"}, Spec: appsv1.StatefulSetSpec{Replicas: &replicas}}
}

func node(ready bool) *corev1.Node {
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s}}}}
}

func terminating(p *corev1.Pod, deadline time.Time) *corev1.Pod {
	ts := metav1.NewTime(deadline)
	p.DeletionTimestamp = &ts
	return p
}

func TestDecide(t *testing.T) {
	cfg := Config{TerminatingDelay: 30 * time.Second, CollectTerminatingOnReadyNode: true, CollectTerminatingOnNotReadyNode: true}
	holder := Holder{Namespace: "ns", Name: "app-1", UID: "u1", OwnerKind: "ReplicaSet", OwnerName: "app"}
	web := func(i string) Holder {
		return Holder{Namespace: "ns", Name: "web-" + i, UID: types.UID("old-" + i), OwnerKind: "StatefulSet", OwnerName: "web"}
	}
	sts3, sts1 := statefulSet("web", 3), statefulSet("web", 1)
	failed := livePod("app-1", "u1")
	failed.Status.Phase = corev1.PodFailed
	evicted := livePod("app-1", "u1")
	evicted.Status.Phase, evicted.Status.Reason = corev1.PodFailed, "Evicted"
	succeeded := livePod("app-1", "u1")
	succeeded.Status.Phase = corev1.PodSucceeded
	pending := livePod("app-1", "u1")
	pending.Status.Phase = corev1.PodPending
	stsFailed := stsPod("web-0", "old-0", sts3)
	stsFailed.Status.Phase = corev1.PodFailed

	tests := []struct {
		name    string
		in      Input
		collect bool
		reason  Reason
		requeue bool
	}{
		// Collected.
		{"pod deleted", Input{Holder: holder}, true, ReasonPodDeleted, false},
		{"pod force-deleted while its node is down", Input{Holder: holder, Node: node(false)}, true, ReasonPodDeleted, false},
		{"same name, new pod", Input{Holder: holder, Pod: livePod("app-1", "u2")}, true, ReasonPodUIDMismatch, false},
		{"succeeded", Input{Holder: holder, Pod: succeeded}, true, ReasonPodSucceeded, false},
		{"failed", Input{Holder: holder, Pod: failed}, true, ReasonPodFailed, false},
		{"evicted", Input{Holder: holder, Pod: evicted}, true, ReasonPodEvicted, false},
		{"terminating past grace+delay on NotReady node", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-31*time.Second)), Node: node(false)}, true, ReasonTerminatingOnNotReady, false},
		{"terminating past grace+delay on missing node", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-31*time.Second))}, true, ReasonTerminatingOnNotReady, false},
		{"terminating past grace+delay on Ready node", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-31*time.Second)), Node: node(true)}, true, ReasonTerminatingOnReadyNode, false},
		{"sts scaled down, pod gone", Input{Holder: web("2"), StatefulSet: sts1}, true, ReasonStatefulSetScaledDown, false},
		{"sts deleted, pod gone", Input{Holder: web("0")}, true, ReasonStatefulSetDeleted, false},
		{"sts being deleted, pod gone", Input{Holder: web("0"), StatefulSet: func() *appsv1.StatefulSet {
			s := statefulSet("web", 3)
			s.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
			return s
		}()}, true, ReasonStatefulSetDeleted, false},
		{"sts scaled down, stale pod of the name belongs to nothing", Input{Holder: web("2"), StatefulSet: sts1, Pod: livePod("web-2", "other")}, true, ReasonPodUIDMismatch, false},
		{"sts pod name taken by a bare pod", Input{Holder: web("0"), StatefulSet: sts3, Pod: livePod("web-0", "bare")}, true, ReasonPodUIDMismatch, false},

		// Kept.
		{"live pod", Input{Holder: holder, Pod: livePod("app-1", "u1")}, false, ReasonPodAlive, false},
		{"pending pod", Input{Holder: holder, Pod: pending}, false, ReasonPodAlive, false},
		{"terminating within grace", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(10*time.Second)), Node: node(false)}, false, ReasonTerminatingWithinGrace, true},
		{"terminating past grace but within delay", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-10*time.Second)), Node: node(false)}, false, ReasonTerminatingWithinGrace, true},
		{"terminating on Ready node, switch off", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-time.Hour)), Node: node(true),
			Config: Config{CollectTerminatingOnNotReadyNode: true}}, false, ReasonTerminatingDisabled, false},
		{"terminating on NotReady node, switch off", Input{Holder: holder, Pod: terminating(livePod("app-1", "u1"), t0.Add(-time.Hour)), Node: node(false),
			Config: Config{CollectTerminatingOnReadyNode: true}}, false, ReasonTerminatingDisabled, false},
		{"sts pod deleted within ordinals", Input{Holder: web("0"), StatefulSet: sts3}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod recreated within ordinals", Input{Holder: web("1"), StatefulSet: sts3, Pod: stsPod("web-1", "new-1", sts3)}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod terminating within ordinals", Input{Holder: web("1"), StatefulSet: sts3, Pod: terminating(stsPod("web-1", "old-1", sts3), t0.Add(-time.Hour)), Node: node(false)}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod failed within ordinals", Input{Holder: web("0"), StatefulSet: sts3, Pod: stsFailed}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod out of range but still running", Input{Holder: web("2"), StatefulSet: sts1, Pod: stsPod("web-2", "old-2", sts1)}, false, ReasonPodAlive, false},
		{"sts start ordinal", Input{Holder: web("5"), StatefulSet: func() *appsv1.StatefulSet {
			s := statefulSet("web", 2)
			s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
			return s
		}()}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod deleted within ordinals, StatefulSet support off", Input{Holder: web("0"), StatefulSet: sts3,
			Config: Config{IgnoreStatefulSets: true}}, true, ReasonPodDeleted, false},
		{"no pod UID recorded", Input{Holder: Holder{Namespace: "ns", Name: "x"}}, false, ReasonUnknownHolder, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now = t0
			if in.Config == (Config{}) {
				in.Config = cfg
			}
			d := Decide(in)
			if d.Collect != tt.collect || d.Reason != tt.reason {
				t.Fatalf("Decide = collect %v reason %s, want collect %v reason %s", d.Collect, d.Reason, tt.collect, tt.reason)
			}
			if (d.RequeueAfter > 0) != tt.requeue {
				t.Fatalf("RequeueAfter = %v, want requeue %v", d.RequeueAfter, tt.requeue)
			}
		})
	}
}

func TestOrdinal(t *testing.T) {
	for _, tt := range []struct {
		set, pod string
		n        int64
		ok       bool
	}{
		{"web", "web-0", 0, true}, {"web", "web-12", 12, true}, {"web", "web-01", 0, false},
		{"web", "web-x", 0, false}, {"web", "webx-1", 0, false}, {"web-a", "web-a-3", 3, true}, {"web", "web-", 0, false},
	} {
		n, ok := Ordinal(tt.set, tt.pod)
		if n != tt.n || ok != tt.ok {
			t.Errorf("Ordinal(%q,%q) = %d,%v want %d,%v", tt.set, tt.pod, n, ok, tt.n, tt.ok)
		}
	}
}
