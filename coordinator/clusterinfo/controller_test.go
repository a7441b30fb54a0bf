package clusterinfo

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func newClient(t *testing.T, f interceptor.Funcs, objs ...client.Object) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&v2beta1.SpiderCoordinator{}).WithInterceptorFuncs(f).Build()
}

func coordinator(podType string, status v2beta1.CoordinatorStatus) *v2beta1.SpiderCoordinator {
	c := DefaultObject()
	c.Spec.PodCIDRType = &podType
	c.Status = status
	return &c
}

func serviceCIDR(cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
}

func nodeWith(name string, cidrs ...string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
}

func kubeadmConfig(pod, svc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kubeadm-config"},
		Data: map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: " + pod + "\n  serviceSubnet: " + svc + "\n"}}
}

func reconcileOnce(t *testing.T, c client.Client) (*v2beta1.SpiderCoordinator, error) {
	t.Helper()
	r := &Reconciler{Client: c, Reader: c, CreateDefault: true}
	_, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: Name}})
	var got v2beta1.SpiderCoordinator
	if gerr := c.Get(context.Background(), types.NamespacedName{Name: Name}, &got); gerr != nil {
		t.Fatal(gerr)
	}
	return &got, err
}

func TestSyncedFromServiceCIDRAndNodes(t *testing.T) {
	c := newClient(t, interceptor.Funcs{}, coordinator("auto", v2beta1.CoordinatorStatus{}),
		serviceCIDR("10.96.0.0/16", "fd00:96::/108"), nodeWith("n1", "10.244.1.0/24"), nodeWith("n2", "10.244.0.0/24"))
	got, err := reconcileOnce(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != PhaseSynced || got.Status.Reason != "" {
		t.Fatalf("status %+v", got.Status)
	}
	if strings.Join(got.Status.ServiceCIDR, ",") != "10.96.0.0/16,fd00:96::/108" {
		t.Fatalf("serviceCIDR %v", got.Status.ServiceCIDR)
	}
	if strings.Join(got.Status.OverlayPodCIDR, ",") != "10.244.0.0/24,10.244.1.0/24" {
		t.Fatalf("overlayPodCIDR %v", got.Status.OverlayPodCIDR)
	}
}

func TestKubeadmConfigPreferredForPodCIDR(t *testing.T) {
	c := newClient(t, interceptor.Funcs{}, coordinator("cluster", v2beta1.CoordinatorStatus{}),
		serviceCIDR("10.96.0.0/16"), nodeWith("n1", "10.244.1.0/24"), kubeadmConfig("10.244.0.0/16", "10.96.0.0/16"))
	got, err := reconcileOnce(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Status.OverlayPodCIDR, ",") != "10.244.0.0/16" {
		t.Fatalf("overlayPodCIDR %v", got.Status.OverlayPodCIDR)
	}
}

func TestFallbackWhenServiceCIDRAPIMissing(t *testing.T) {
	noAPI := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*networkingv1.ServiceCIDRList); ok {
			return &meta.NoKindMatchError{GroupKind: networkingv1.SchemeGroupVersion.WithKind("ServiceCIDR").GroupKind()}
		}
		return c.List(ctx, list, opts...)
	}}
	kcm := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kcm", Labels: map[string]string{"component": "kube-controller-manager"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kcm", Command: []string{"kube-controller-manager", "--cluster-cidr=10.244.0.0/16", "--service-cluster-ip-range", "10.112.0.0/12"}}}}}
	c := newClient(t, noAPI, coordinator("auto", v2beta1.CoordinatorStatus{}), kcm)
	got, err := reconcileOnce(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != PhaseSynced || strings.Join(got.Status.ServiceCIDR, ",") != "10.112.0.0/12" || strings.Join(got.Status.OverlayPodCIDR, ",") != "10.244.0.0/16" {
		t.Fatalf("status %+v", got.Status)
	}
}

// A coordinator that was Synced must not stay Synced once discovery fails
// (no stale "Synced").
func TestDiscoveryFailureTurnsSyncedIntoNotReady(t *testing.T) {
	stale := v2beta1.CoordinatorStatus{Phase: PhaseSynced, ServiceCIDR: []string{"10.96.0.0/16"}, OverlayPodCIDR: []string{"10.244.0.0/16"}}
	c := newClient(t, interceptor.Funcs{}, coordinator("auto", stale), serviceCIDR("10.96.0.0/16"))
	got, err := reconcileOnce(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != PhaseNotReady {
		t.Fatalf("phase %q, want NotReady", got.Status.Phase)
	}
	if !strings.HasPrefix(got.Status.Reason, "pod CIDR: no kubeadm-config ConfigMap in kube-system, no kube-controller-manager pod in kube-system, no node has spec.podCIDRs") {
		t.Fatalf("reason %q", got.Status.Reason)
	}
	if len(got.Status.OverlayPodCIDR) != 0 || strings.Join(got.Status.ServiceCIDR, ",") != "10.96.0.0/16" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestCalicoUnavailableIsNotReady(t *testing.T) {
	noCRD := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if u, ok := list.(*unstructured.UnstructuredList); ok {
			return &meta.NoKindMatchError{GroupKind: u.GroupVersionKind().GroupKind()}
		}
		return c.List(ctx, list, opts...)
	}}
	c := newClient(t, noCRD, coordinator("calico", v2beta1.CoordinatorStatus{Phase: PhaseSynced}), serviceCIDR("10.96.0.0/16"))
	got, err := reconcileOnce(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != PhaseNotReady || !strings.HasPrefix(got.Status.Reason, "pod CIDR: Calico IPPools unavailable") {
		t.Fatalf("status %+v", got.Status)
	}
	// With the CRD present but no pool, the reason says so.
	c = newClient(t, interceptor.Funcs{}, coordinator("calico", v2beta1.CoordinatorStatus{}), serviceCIDR("10.96.0.0/16"))
	if got, _ = reconcileOnce(t, c); got.Status.Reason != "pod CIDR: no enabled Calico IPPool: create one or change spec.podCIDRType" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestPodCIDRTypeNone(t *testing.T) {
	c := newClient(t, interceptor.Funcs{}, coordinator("none", v2beta1.CoordinatorStatus{}), serviceCIDR("10.96.0.0/16"))
	got, err := reconcileOnce(t, c)
	if err != nil || got.Status.Phase != PhaseSynced || len(got.Status.OverlayPodCIDR) != 0 {
		t.Fatalf("status %+v err %v", got.Status, err)
	}
}

func TestCiliumConfig(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cilium-config"},
		Data: map[string]string{"cluster-pool-ipv4-cidr": "10.0.0.0/8", "cluster-pool-ipv6-cidr": "fd00::/104"}}
	c := newClient(t, interceptor.Funcs{}, coordinator("cilium", v2beta1.CoordinatorStatus{}), serviceCIDR("10.96.0.0/16"), cm)
	got, err := reconcileOnce(t, c)
	if err != nil || got.Status.Phase != PhaseSynced || strings.Join(got.Status.OverlayPodCIDR, ",") != "10.0.0.0/8,fd00::/104" {
		t.Fatalf("status %+v err %v", got.Status, err)
	}
}

// A transient API error is retried and leaves the status as it was.
func TestTransientErrorLeavesStatus(t *testing.T) {
	prev := v2beta1.CoordinatorStatus{Phase: PhaseSynced, ServiceCIDR: []string{"10.96.0.0/16"}}
	c := newClient(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*networkingv1.ServiceCIDRList); ok {
			return apierrors.NewServiceUnavailable("etcd timeout")
		}
		return c.List(ctx, list, opts...)
	}}, coordinator("none", prev))
	got, err := reconcileOnce(t, c)
	if err == nil || !strings.Contains(err.Error(), "failed to list ServiceCIDRs") {
		t.Fatalf("err %v", err)
	}
	if got.Status.Phase != PhaseSynced {
		t.Fatalf("status changed on a transient error: %+v", got.Status)
	}
}

func TestCreatesDefaultOnlyWhenEnabled(t *testing.T) {
	c := newClient(t, interceptor.Funcs{})
	r := &Reconciler{Client: c, Reader: c, CreateDefault: false}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: Name}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var got v2beta1.SpiderCoordinator
	if err := c.Get(context.Background(), req.NamespacedName, &got); !apierrors.IsNotFound(err) {
		t.Fatalf("created although disabled: %v", err)
	}
	r.CreateDefault = true
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(got.Spec.Mode, "") != "auto" || ptr.Deref(got.Spec.PodCIDRType, "") != "auto" {
		t.Fatalf("spec %+v", got.Spec)
	}
}

func TestKubeadmAndFlagsParsing(t *testing.T) {
	pod, svc, err := KubeadmNetworking("networking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/12\n")
	if err != nil || strings.Join(pod, ",") != "10.244.0.0/16,fd00:10:244::/56" || strings.Join(svc, ",") != "10.96.0.0/12" {
		t.Fatalf("%v %v %v", pod, svc, err)
	}
	if _, _, err := KubeadmNetworking("networking: [\n"); err == nil {
		t.Fatal("bad YAML accepted")
	}
	cc, sr := ControllerManagerFlags([]string{"--cluster-cidr", "10.1.0.0/16", "--service-cluster-ip-range=10.2.0.0/16,fd00::/108"})
	if strings.Join(cc, ",") != "10.1.0.0/16" || strings.Join(sr, ",") != "10.2.0.0/16,fd00::/108" {
		t.Fatalf("%v %v", cc, sr)
	}
	out, bad := NormalizeCIDRs([]string{"fd00::/64", "10.0.0.5/8", "10.0.0.0/8", "junk"})
	if strings.Join(out, ",") != "10.0.0.0/8,fd00::/64" || strings.Join(bad, ",") != "junk" {
		t.Fatalf("%v %v", out, bad)
	}
}
