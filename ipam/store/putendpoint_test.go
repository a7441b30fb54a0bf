package store

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// PutEndpoint writes a SpiderEndpoint whole, in one request, and still ends
// with the right status when the cluster's CRD is an older one with a status
// subresource (the API server then drops the status of a create or update).
func TestPutEndpointWritesOnceAndCopesWithAStatusSubresource(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v2beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ip, pool := "10.6.0.15/16", "pool-v4"
	want := func(uid, node string) *v2beta1.SpiderEndpoint {
		return &v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0", Labels: map[string]string{LabelEndpointNode: node}},
			Status: v2beta1.WorkloadEndpointStatus{
				Current:             v2beta1.PodIPAllocation{UID: uid, Node: node, IPs: []v2beta1.IPAllocationDetail{{Interface: "eth0", IPv4: &ip, IPv4Pool: &pool}}},
				OwnerControllerType: "StatefulSet", OwnerControllerName: "web",
			},
		}
	}
	for _, tt := range []struct {
		name              string
		statusSubresource bool
		wantStatusWrites  int
	}{
		{"CRD without status subresource", false, 0},
		{"older CRD with status subresource", true, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(scheme)
			if tt.statusSubresource {
				b = b.WithStatusSubresource(&v2beta1.SpiderEndpoint{})
			}
			writes, statusWrites := 0, 0
			c := b.WithInterceptorFuncs(interceptor.Funcs{
				Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
					writes++
					if tt.statusSubresource {
						// The API server drops the status of a create when
						// the CRD has a status subresource; the fake keeps it.
						obj.(*v2beta1.SpiderEndpoint).Status = v2beta1.WorkloadEndpointStatus{}
					}
					return c.Create(ctx, obj, opts...)
				},
				Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
					writes++
					return c.Update(ctx, obj, opts...)
				},
				SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
					statusWrites++
					return c.SubResource(sub).Update(ctx, obj, opts...)
				},
			}).Build()
			s := &Store{W: c, R: c}
			ctx := context.Background()
			check := func(w *v2beta1.SpiderEndpoint) {
				t.Helper()
				var got v2beta1.SpiderEndpoint
				if err := c.Get(ctx, client.ObjectKeyFromObject(w), &got); err != nil {
					t.Fatal(err)
				}
				if got.Status.Current.UID != w.Status.Current.UID || got.Status.Current.Node != w.Status.Current.Node ||
					got.Labels[LabelEndpointNode] != w.Labels[LabelEndpointNode] || len(got.Status.Current.IPs) != 1 {
					t.Errorf("stored %+v labels %v, want %+v labels %v", got.Status, got.Labels, w.Status, w.Labels)
				}
			}
			// Created.
			first := want("u1", "node-1")
			if _, err := s.PutEndpoint(ctx, nil, first, nil); err != nil {
				t.Fatal(err)
			}
			check(first)
			// The replica moved: relabelled and rewritten.
			var cur v2beta1.SpiderEndpoint
			if err := c.Get(ctx, client.ObjectKeyFromObject(first), &cur); err != nil {
				t.Fatal(err)
			}
			second := want("u2", "node-2")
			if _, err := s.PutEndpoint(ctx, &cur, second, func(context.Context) (bool, error) { return true, nil }); err != nil {
				t.Fatal(err)
			}
			check(second)
			if writes != 2 || statusWrites != tt.wantStatusWrites {
				t.Errorf("%d writes and %d status writes, want 2 and %d", writes, statusWrites, tt.wantStatusWrites)
			}
		})
	}
}
