package store

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/lifecycle"
)

// +kubebuilder:rbac:groups=kubevirt.io,resources=virtualmachines;virtualmachineinstances,verbs=get;list;watch

// KubeVirtObject is an empty metadata object of a KubeVirt kind
// (lifecycle.KindVirtualMachine or lifecycle.KindVirtualMachineInstance).
func KubeVirtObject(kind string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(schema.GroupVersionKind{Group: lifecycle.KubeVirtGroup, Version: "v1", Kind: kind})
	return m
}

// VirtualMachineOf reads the metadata of the VirtualMachine and the
// VirtualMachineInstance named name: a launcher pod's allocation lives as
// long as one of them. Either is nil when it does not exist, or when
// KubeVirt is not installed.
func VirtualMachineOf(ctx context.Context, r client.Reader, namespace, name string) (vm, vmi *metav1.PartialObjectMetadata, err error) {
	get := func(kind string) (*metav1.PartialObjectMetadata, error) {
		m := KubeVirtObject(kind)
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m)
		switch {
		case err == nil:
			return m, nil
		case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get %s %q: %w", kind, namespace+"/"+name, err)
	}
	if vm, err = get(lifecycle.KindVirtualMachine); err != nil {
		return nil, nil, err
	}
	if vmi, err = get(lifecycle.KindVirtualMachineInstance); err != nil {
		return nil, nil, err
	}
	return vm, vmi, nil
}
