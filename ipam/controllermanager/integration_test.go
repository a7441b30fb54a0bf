package controllermanager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/spindle-net/spindle/coordinator/clusterinfo"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/test/kubeapi"
	"github.com/spindle-net/spindle/test/prereq"
)

func nadCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "network-attachment-definitions.k8s.cni.cncf.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "k8s.cni.cncf.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "network-attachment-definitions", Singular: "network-attachment-definition",
				Kind: "NetworkAttachmentDefinition", ListKind: "NetworkAttachmentDefinitionList", ShortNames: []string{"net-attach-def"}},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
		},
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// TestIntegrationWithAPIServer runs the whole controller against a real
// kube-apiserver and etcd: webhooks served over TLS with self-managed
// configurations, pool admission messages as kubectl users see them, the
// pool finalizer, garbage collection, SpiderMultusConfig -> NAD and the
// coordinator status.
func TestIntegrationWithAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd; skipped with -short")
	}
	prereq.Tier(t, prereq.Envtest)
	root, err := kubeapi.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	assets, cleanup, err := kubeapi.Assets(root)
	if errors.Is(err, kubeapi.ErrNoAssets) {
		prereq.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	crds := filepath.Join("..", "..", "charts", "spindle", "crds")
	if _, err := os.Stat(crds); err != nil {
		prereq.Missing(t, "charts/spindle/crds missing: run make generate")
	}
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
		CRDs:                  []*apiextensionsv1.CustomResourceDefinition{nadCRD()},
		// The machine may be busy building: be patient with the start.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start kube-apiserver: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	port := freePort(t)
	var o Options
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", port), "--webhook-manage-configurations",
		"--webhook-cert-dir=" + t.TempDir(), "--coordinator-resync=1s", "--gc-interval=2s", "--gc-terminating-pod-delay=0s",
		"--webhook-mutating-configuration=spindle-it", "--webhook-validating-configuration=spindle-it",
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})

	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	// Webhooks answer once the controller has written its configurations.
	outside := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "outside"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.2", "10.6.0.3", "10.7.0.5"}}}
	eventually(t, "webhook rejects an address outside the subnet", 60*time.Second, func() error {
		err := c.Create(ctx, outside.DeepCopy())
		if err == nil {
			_ = c.Delete(ctx, outside.DeepCopy())
			return fmt.Errorf("admitted")
		}
		want := `admission webhook "spiderippool.validate.spindle.spidernet.io" denied the request: spec.ips[2]: 10.7.0.5 is outside spec.subnet 10.6.0.0/16: move it into the subnet or widen the subnet`
		if !strings.Contains(err.Error(), want) {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})

	// Defaulting: ipVersion, canonical ranges, finalizer.
	a := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.15-10.6.0.20", "10.6.0.10-10.6.0.14"}}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Spec.IPVersion == nil || *a.Spec.IPVersion != 4 || strings.Join(a.Spec.IPs, ",") != "10.6.0.10-10.6.0.20" || len(a.Finalizers) != 1 {
		t.Fatalf("defaults not applied: %+v %v", a.Spec, a.Finalizers)
	}

	// Overlap with another pool.
	b := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.20-10.6.0.30"}}}
	if err := c.Create(ctx, b); err == nil || !strings.Contains(err.Error(), `spec.ips: 10.6.0.20 already belong to SpiderIPPool "a": an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs`) {
		t.Fatalf("overlap: %v", err)
	}

	// A pod holding 10.6.0.12 (as the agent would record it).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	held := &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: "10.6.0.12", Labels: map[string]string{v2beta1.LabelPool: "a"}},
		Spec: v2beta1.IPClaimSpec{Pool: "a", Address: "10.6.0.12", IPVersion: 4, PodNamespace: "default", PodName: "web-0", PodUID: string(pod.UID), Interface: "net1", Node: "n1"}}
	if err := c.Create(ctx, held); err != nil {
		t.Fatal(err)
	}
	// An orphan claim of a pod that never existed is collected.
	orphan := &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: "10.6.0.13", Labels: map[string]string{v2beta1.LabelPool: "a"}},
		Spec: v2beta1.IPClaimSpec{Pool: "a", Address: "10.6.0.13", IPVersion: 4, PodNamespace: "default", PodName: "gone", PodUID: "gone-uid"}}
	if err := c.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphan claim collected", 30*time.Second, func() error {
		err := c.Get(ctx, client.ObjectKeyFromObject(orphan), &v2beta1.SpiderIPClaim{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(held), &v2beta1.SpiderIPClaim{}); err != nil {
		t.Fatalf("live pod's claim collected: %v", err)
	}

	// Removing the held address is refused, naming the pod.
	if err := c.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
		t.Fatal(err)
	}
	a.Spec.IPs = []string{"10.6.0.14-10.6.0.20"}
	if err := c.Update(ctx, a); err == nil || !strings.Contains(err.Error(), "spec.ips: 10.6.0.12 is allocated to pod default/web-0 (interface net1) and cannot be removed from the pool") {
		t.Fatalf("removing an allocated address: %v", err)
	}

	// Deleting the pool waits for the allocation and says why.
	if err := c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "a"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "PoolInUse event", 30*time.Second, func() error {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "PoolInUse" && e.Regarding.Name == "a" && strings.Contains(e.Note, "10.6.0.12 (pod default/web-0)") {
				return nil
			}
		}
		return fmt.Errorf("no PoolInUse event among %d events", len(evs.Items))
	})
	if err := c.Get(ctx, types.NamespacedName{Name: "a"}, &v2beta1.SpiderIPPool{}); err != nil {
		t.Fatalf("pool in use was removed: %v", err)
	}
	// The pod goes (no kubelet here: grace 0); the claim and then the pool follow.
	if err := c.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pool removed after its last allocation was collected", 60*time.Second, func() error {
		err := c.Get(ctx, types.NamespacedName{Name: "a"}, &v2beta1.SpiderIPPool{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("pool still there (%v)", err)
	})

	// A StatefulSet scaled from 3 to 1: ordinals 1 and 2 keep their
	// addresses for the next scale-up until the StatefulSet opts out of
	// that; ordinal 0 keeps its address even when its pod is deleted (the
	// StatefulSet controller re-creates it). There is no
	// kube-controller-manager here, so the test plays its part.
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "sts"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.8.0.0/24", IPs: []string{"10.8.0.10-10.8.0.19"}}}
	if err := c.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	if err := c.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	stsPods := map[int]*corev1.Pod{}
	for i := 0; i < 3; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: sts.UID, Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		stsPods[i] = p
		addr := fmt.Sprintf("10.8.0.1%d", i)
		cl := &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: addr, Labels: map[string]string{v2beta1.LabelPool: "sts"}},
			Spec: v2beta1.IPClaimSpec{Pool: "sts", Address: addr, IPVersion: 4, PodNamespace: "default", PodName: p.Name, PodUID: string(p.UID),
				OwnerKind: "StatefulSet", OwnerName: "web"}}
		if err := c.Create(ctx, cl); err != nil {
			t.Fatal(err)
		}
	}
	sts.Spec.Replicas = ptr.To[int32](1)
	if err := c.Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Delete(ctx, stsPods[i], client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // more than a full collection pass (--gc-interval=2s)
	for _, addr := range []string{"10.8.0.10", "10.8.0.11", "10.8.0.12"} {
		if err := c.Get(ctx, types.NamespacedName{Name: addr}, &v2beta1.SpiderIPClaim{}); err != nil {
			t.Fatalf("address %s of a replica scaled away is not held for the StatefulSet: %v", addr, err)
		}
	}
	// Opting out releases the scaled-away ordinals at once.
	if err := c.Get(ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
		t.Fatal(err)
	}
	sts.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
	if err := c.Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"10.8.0.11", "10.8.0.12"} {
		eventually(t, "scaled-away ordinal released "+addr, 30*time.Second, func() error {
			err := c.Get(ctx, types.NamespacedName{Name: addr}, &v2beta1.SpiderIPClaim{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	}
	time.Sleep(3 * time.Second) // more than a full collection pass (--gc-interval=2s)
	if err := c.Get(ctx, types.NamespacedName{Name: "10.8.0.10"}, &v2beta1.SpiderIPClaim{}); err != nil {
		t.Fatalf("ordinal 0 lost its address: %v", err)
	}

	// SpiderMultusConfig -> NetworkAttachmentDefinition.
	smc := &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "macvlan-net1"},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"},
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"a"}}}}}
	if err := c.Create(ctx, smc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NAD generated", 30*time.Second, func() error {
		var n netv1.NetworkAttachmentDefinition
		if err := c.Get(ctx, client.ObjectKeyFromObject(smc), &n); err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(&n); ref == nil || ref.UID != smc.UID {
			return fmt.Errorf("not owned: %+v", n.OwnerReferences)
		}
		if !strings.Contains(n.Spec.Config, `"type": "spiderpool"`) || !strings.Contains(n.Spec.Config, `"type": "coordinator"`) {
			return fmt.Errorf("config %s", n.Spec.Config)
		}
		return nil
	})

	// The default coordinator exists; it is NotReady until a pod CIDR is
	// known, then Synced with the API server's service CIDR.
	if err := c.Create(ctx, &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "second"}}); err == nil || !strings.Contains(err.Error(), `metadata.name: "second": there is one cluster-wide SpiderCoordinator`) {
		t.Fatalf("second coordinator: %v", err)
	}
	eventually(t, "coordinator NotReady without pod CIDR", 30*time.Second, func() error {
		var co v2beta1.SpiderCoordinator
		if err := c.Get(ctx, types.NamespacedName{Name: clusterinfo.Name}, &co); err != nil {
			return err
		}
		if co.Status.Phase != clusterinfo.PhaseNotReady || !strings.Contains(co.Status.Reason, "pod CIDR") {
			return fmt.Errorf("status %+v", co.Status)
		}
		return nil
	})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	eventually(t, "coordinator Synced", 30*time.Second, func() error {
		var co v2beta1.SpiderCoordinator
		if err := c.Get(ctx, types.NamespacedName{Name: clusterinfo.Name}, &co); err != nil {
			return err
		}
		if co.Status.Phase != clusterinfo.PhaseSynced || strings.Join(co.Status.ServiceCIDR, ",") != "10.0.0.0/24" || strings.Join(co.Status.OverlayPodCIDR, ",") != "10.244.1.0/24" {
			return fmt.Errorf("status %+v", co.Status)
		}
		return nil
	})

	t.Run("inline ranges", func(t *testing.T) { inlineRanges(ctx, t, c) })
}
