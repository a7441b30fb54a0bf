package agent

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/subnets"
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

// workload is what the agent knows of a pod's controllers: the pool and
// address annotations the pod inherits, the controller they come from
// ("Kind namespace/name"), and the pod's application: its top controller of
// a kind in subnets.AppKinds, or its own controller when that is of another
// (third-party) kind, known from the owner reference alone.
type workload struct {
	owner       string
	annotations map[string]string
	app         *subnets.App
}

// workloadOf follows the pod's controllers upwards (ReplicaSet, then its
// Deployment; Job, then its CronJob). A pod with pool or address
// annotations of its own inherits none; otherwise the first controller
// that carries any gives them.
func (a *Agent) workloadOf(ctx context.Context, pod *corev1.Pod) (*workload, error) {
	w := &workload{}
	inherit := !annotations.HasRequest(pod.Annotations)
	ref := metav1.GetControllerOf(pod)
	for depth := 0; ref != nil && depth < 3; depth++ {
		if !subnets.IsAppKind(ref.APIVersion, ref.Kind) {
			if w.app == nil {
				w.app = &subnets.App{Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name, UID: string(ref.UID)}
			}
			break
		}
		m := workloadMeta(subnets.AppKinds[ref.Kind])
		if err := a.cache.Get(ctx, keyOf(pod.Namespace, ref.Name), m); err != nil {
			if isNotFound(err) {
				break
			}
			return nil, allocator.APIError(err, "failed to get %s %q", ref.Kind, pod.Namespace+"/"+ref.Name)
		}
		if ref.UID != "" && m.UID != ref.UID {
			break // a new object of that name, not this pod's controller
		}
		w.app = &subnets.App{Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name, UID: string(m.UID)}
		if inherit && w.annotations == nil && annotations.HasRequest(m.Annotations) {
			w.owner, w.annotations = fmt.Sprintf("%s %s/%s", ref.Kind, pod.Namespace, ref.Name), m.Annotations
		}
		ref = metav1.GetControllerOf(m)
	}
	return w, nil
}
