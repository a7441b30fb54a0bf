package gc

import (
	"context"
	"slices"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/store"
)

func sortedKeys(reqs []types.NamespacedName) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

// The claims a StatefulSet kept for its replicas' next incarnations are
// collected as soon as the StatefulSet is deleted (a namespace deletion
// whose pods went first) or scaled down: its event brings exactly its
// replicas' names, found through the owner index, to the collector, which
// still never frees an address a live pod uses.
func TestStatefulSetEventCollectsKeptReplicas(t *testing.T) {
	ctx := context.Background()
	web0, web1 := stsClaim("10.6.0.1", "web-0", "u0"), stsClaim("10.6.0.2", "web-1", "u1")
	// web-2 still runs (its pod outlives the StatefulSet for a moment).
	web2 := stsClaim("10.6.0.3", "web-2", "u2")
	pod2 := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-2", UID: "u2",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "sts-web", Controller: ptr.To(true)}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	// Same StatefulSet name in another namespace, and another StatefulSet.
	elsewhere := stsClaim("10.6.0.4", "web-0", "u9")
	elsewhere.Spec.PodNamespace = "other"
	db := []*v2beta1.SpiderIPClaim{stsClaim("10.6.0.10", "db-0", "d0"), stsClaim("10.6.0.11", "db-1", "d1"), stsClaim("10.6.0.12", "db-2", "d2")}
	for _, c := range db {
		c.Spec.OwnerName = "db"
	}
	dbSet := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "sts-db",
		Annotations: map[string]string{lifecycle.ReleaseOnScaleDown: "true"}}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1)}}
	objs := []client.Object{web0, web1, web2, pod2, elsewhere, dbSet, db[0], db[1], db[2]}
	c := newFake(t, objs...).WithIndex(&v2beta1.SpiderIPClaim{}, store.IndexClaimByOwner, func(o client.Object) []string {
		if k := store.ClaimOwnerKey(o.(*v2beta1.SpiderIPClaim)); k != "" {
			return []string{k}
		}
		return nil
	}).Build()
	r, _ := reconciler(c, c)

	collect := func(sts *appsv1.StatefulSet) []string {
		t.Helper()
		var keys []types.NamespacedName
		for _, req := range r.ownerAllocations(lifecycle.KindStatefulSet)(ctx, sts) {
			keys = append(keys, req.NamespacedName)
			if _, err := r.Reconcile(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		return sortedKeys(keys)
	}
	left := func(claims ...*v2beta1.SpiderIPClaim) []string {
		t.Helper()
		var out []string
		for _, cl := range claims {
			if exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey(cl.Name)) {
				out = append(out, cl.Name)
			}
		}
		return out
	}

	// StatefulSet "web" deleted (it is not in the API any more).
	got := collect(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}})
	if want := []string{"ns/web-0", "ns/web-1", "ns/web-2"}; !slices.Equal(got, want) {
		t.Fatalf("deleted StatefulSet enqueued %v, want %v", got, want)
	}
	if l := left(web0, web1, web2, elsewhere, db[0], db[1], db[2]); !slices.Equal(l, []string{"10.6.0.3", "10.6.0.4", "10.6.0.10", "10.6.0.11", "10.6.0.12"}) {
		t.Fatalf("claims left after the StatefulSet was deleted: %v; want only the running replica's, the other namespace's and db's", l)
	}

	// StatefulSet "db", which releases on scale-down, scaled from 3 to 1.
	got = collect(dbSet)
	if want := []string{"ns/db-0", "ns/db-1", "ns/db-2"}; !slices.Equal(got, want) {
		t.Fatalf("scaled-down StatefulSet enqueued %v, want %v", got, want)
	}
	if l := left(db[0], db[1], db[2]); !slices.Equal(l, []string{"10.6.0.10"}) {
		t.Fatalf("claims left after scaling to 1: %v, want ordinal 0's only", l)
	}
}
