// Package lifecycletest builds the pods, nodes and StatefulSets the tests of
// the release decision and of its callers describe their cases with.
package lifecycletest

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// T0 is the clock of the fixtures.
var T0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// LivePod is a running pod in namespace "ns" on node1.
func LivePod(name string, uid types.UID) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid},
		Spec:       corev1.PodSpec{NodeName: "node1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// StsPod is a LivePod controlled by sts.
func StsPod(name string, uid types.UID, sts *appsv1.StatefulSet) *corev1.Pod {
	p := LivePod(name, uid)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr.To(true)}}
	return p
}

// StatefulSet is a StatefulSet in namespace "ns" with that many replicas.
func StatefulSet(name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: "sts-uid"}, Spec: appsv1.StatefulSetSpec{Replicas: &replicas}}
}

// Node is node1, Ready or not.
func Node(ready bool) *corev1.Node {
	s := corev1.ConditionFalse
	if ready {
		s = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s}}}}
}

// Terminating marks p deleted with the given deadline.
func Terminating(p *corev1.Pod, deadline time.Time) *corev1.Pod {
	ts := metav1.NewTime(deadline)
	p.DeletionTimestamp = &ts
	return p
}
