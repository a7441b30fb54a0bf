package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/nad"
)

func setup(t *testing.T, f interceptor.Funcs, objs ...client.Object) (client.Client, *Reconciler, *events.FakeRecorder) {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, netv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithInterceptorFuncs(f).Build()
	rec := events.NewFakeRecorder(20)
	return c, &Reconciler{Client: c, Scheme: s, Recorder: rec}, rec
}

func macvlanSMC(pool string) *v2beta1.SpiderMultusConfig {
	return &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "net1", UID: "smc-uid"},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master: []string{"eth1"}, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{pool}}}},
	}
}

var key = types.NamespacedName{Namespace: "ns", Name: "net1"}

func run(t *testing.T, r *Reconciler) {
	t.Helper()
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
}

func getNAD(t *testing.T, c client.Client, k types.NamespacedName) *netv1.NetworkAttachmentDefinition {
	t.Helper()
	var n netv1.NetworkAttachmentDefinition
	if err := c.Get(context.Background(), k, &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func TestCreatesOwnedNADAndFollowsChanges(t *testing.T) {
	smc := macvlanSMC("pool-a")
	c, r, _ := setup(t, interceptor.Funcs{}, smc)
	run(t, r)
	n := getNAD(t, c, key)
	ref := metav1.GetControllerOf(n)
	if ref == nil || ref.UID != "smc-uid" || ref.Kind != "SpiderMultusConfig" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Fatalf("owner %+v", ref)
	}
	want, _ := nad.Generate(smc)
	if n.Spec.Config != want.Spec.Config {
		t.Fatalf("config %s", n.Spec.Config)
	}

	// The SpiderMultusConfig changes: the NAD follows.
	var cur v2beta1.SpiderMultusConfig
	if err := c.Get(context.Background(), key, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"pool-b"}
	if err := c.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	if n := getNAD(t, c, key); !strings.Contains(n.Spec.Config, `"pool-b"`) || strings.Contains(n.Spec.Config, `"pool-a"`) {
		t.Fatalf("NAD not updated: %s", n.Spec.Config)
	}

	// A hand edit of the generated NAD is reverted.
	n = getNAD(t, c, key)
	n.Spec.Config = `{"hand":"edit"}`
	if err := c.Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	if n := getNAD(t, c, key); !strings.Contains(n.Spec.Config, `"pool-b"`) {
		t.Fatalf("hand edit kept: %s", n.Spec.Config)
	}
}

func TestForeignNADIsNeverTouched(t *testing.T) {
	foreign := &netv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "net1"}, Spec: netv1.NetworkAttachmentDefinitionSpec{Config: `{"mine":true}`}}
	writes := 0
	count := func() { writes++ }
	c, r, rec := setup(t, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			count()
			return c.Update(ctx, o, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			count()
			return c.Delete(ctx, o, opts...)
		},
	}, macvlanSMC("pool-a"), foreign)
	run(t, r)
	if n := getNAD(t, c, key); n.Spec.Config != `{"mine":true}` || len(n.OwnerReferences) != 0 || writes != 0 {
		t.Fatalf("foreign NAD modified: %+v writes=%d", n, writes)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, ReasonNotOwned) || !strings.Contains(e, "NetworkAttachmentDefinition ns/net1 already exists and is not managed by this SpiderMultusConfig") {
			t.Fatalf("event %q", e)
		}
	default:
		t.Fatal("no event on the SpiderMultusConfig")
	}
}

func TestRenameDeletesOldOwnedNAD(t *testing.T) {
	smc := macvlanSMC("pool-a")
	c, r, _ := setup(t, interceptor.Funcs{}, smc)
	run(t, r)
	var cur v2beta1.SpiderMultusConfig
	_ = c.Get(context.Background(), key, &cur)
	cur.Annotations = map[string]string{v2beta1.AnnoMultusCRName: "renamed"}
	if err := c.Update(context.Background(), &cur); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	getNAD(t, c, types.NamespacedName{Namespace: "ns", Name: "renamed"})
	var old netv1.NetworkAttachmentDefinition
	if err := c.Get(context.Background(), key, &old); !apierrors.IsNotFound(err) {
		t.Fatalf("old NAD still there: %v", err)
	}
}

func TestInvalidConfigIsReportedNotRetried(t *testing.T) {
	smc := macvlanSMC("pool-a")
	smc.Spec.MacvlanConfig = nil
	_, r, rec := setup(t, interceptor.Funcs{}, smc)
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key})
	if err != nil || !res.IsZero() {
		t.Fatalf("res %v err %v", res, err)
	}
	if e := <-rec.Events; !strings.Contains(e, ReasonInvalidConfig) || !strings.Contains(e, "spec.macvlan is required") {
		t.Fatalf("event %q", e)
	}
}

func TestCreateFailureIsReturned(t *testing.T) {
	_, r, _ := setup(t, interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
		return apierrors.NewInternalError(errors.New("boom"))
	}}, macvlanSMC("pool-a"))
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err == nil || !strings.Contains(err.Error(), `failed to create NetworkAttachmentDefinition "ns/net1"`) {
		t.Fatalf("err %v", err)
	}
}

func TestNADEventsMapToConfig(t *testing.T) {
	n := &netv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "renamed",
		OwnerReferences: []metav1.OwnerReference{{Kind: "SpiderMultusConfig", Name: "net1", UID: "x", Controller: ptr.To(true)}}}}
	got := nadToConfig(context.Background(), n)
	if len(got) != 2 || got[0].Name != "renamed" || got[1].Name != "net1" {
		t.Fatalf("requests %v", got)
	}
}

// In a namespace being deleted the generated object is deleted before the
// SpiderMultusConfig; re-creating it is refused, which is no error to retry.
func TestTerminatingNamespaceIsNotRetried(t *testing.T) {
	terminating := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
		Message: "network-attachment-definitions.k8s.cni.cncf.io \"net1\" is forbidden: unable to create new content in namespace ns because it is being terminated",
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "NamespaceTerminating", Field: "metadata.namespace"}}},
	}}
	_, r, _ := setup(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*netv1.NetworkAttachmentDefinition); ok {
			return terminating
		}
		return c.Create(ctx, obj, opts...)
	}}, macvlanSMC("pool-a"))
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key})
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("Reconcile = %+v, %v; want no error and no retry", res, err)
	}

	// Any other refusal is an error.
	_, r, _ = setup(t, interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*netv1.NetworkAttachmentDefinition); ok {
			return apierrors.NewForbidden(netv1.Resource("network-attachment-definitions"), "net1", errors.New("denied"))
		}
		return c.Create(ctx, obj, opts...)
	}}, macvlanSMC("pool-a"))
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err == nil {
		t.Fatal("a forbidden create must be an error")
	}
}
