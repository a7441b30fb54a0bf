package agent

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/podselect"
)

// The controllers whose own annotations (not their pod template's) a pod
// without pool or address annotations inherits are subnets.AppKinds: a
// StatefulSet's metadata carrying cni.projectcalico.org/ipv4pools means its
// pods. The agent caches only their metadata, reduced by
// reduceWorkloadMeta to what it reads.

// +kubebuilder:rbac:groups=apps,resources=replicasets;deployments;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubevirt.io,resources=virtualmachines;virtualmachineinstances,verbs=get

func workloadMeta(gvk schema.GroupVersionKind) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	return m
}

// reduceWorkloadMeta is the cache transform: workload metadata keeps its
// identity, owners and pool and address annotations only, so an agent's
// cache of every ReplicaSet in the cluster stays small; other objects lose
// their managed fields.
func reduceWorkloadMeta(strip toolscache.TransformFunc) toolscache.TransformFunc {
	return func(in any) (any, error) {
		m, ok := in.(*metav1.PartialObjectMetadata)
		if !ok {
			return strip(in)
		}
		out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
			OwnerReferences: m.OwnerReferences, DeletionTimestamp: m.DeletionTimestamp,
		}}
		for k, v := range m.Annotations {
			if annotations.IsRequest(k) {
				if out.Annotations == nil {
					out.Annotations = map[string]string{}
				}
				out.Annotations[k] = v
			}
		}
		return out, nil
	}
}

// workloadOf follows the pod's controllers upwards through the cache
// (podselect.WorkloadOf).
func (a *Agent) workloadOf(ctx context.Context, pod *corev1.Pod) (*podselect.Workload, error) {
	return podselect.WorkloadOf(pod, func(gvk schema.GroupVersionKind, namespace, name string) (*metav1.PartialObjectMetadata, error) {
		m := workloadMeta(gvk)
		if err := a.cache.Get(ctx, keyOf(namespace, name), m); err != nil {
			if isNotFound(err) {
				return nil, nil
			}
			return nil, allocator.APIError(err, "failed to get %s %q", gvk.Kind, namespace+"/"+name)
		}
		return m, nil
	})
}
