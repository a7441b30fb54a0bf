package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/poolstatus"
	"github.com/spindle-net/spindle/ipam/store"
	"github.com/spindle-net/spindle/test/kubeapi"
	"github.com/spindle-net/spindle/test/prereq"
)

var (
	env     *kubeapi.Env
	envErr  error
	k8s     client.Client
	rootCtx context.Context
)

func TestMain(m *testing.M) {
	var cancel context.CancelFunc
	rootCtx, cancel = context.WithCancel(context.Background())
	ctrllog.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())
	env, envErr = kubeapi.Start()
	if envErr == nil {
		k8s, envErr = client.New(env.Config, client.Options{Scheme: agent.Scheme()})
	}
	if envErr == nil {
		envErr = startPoolStatus(rootCtx)
	}
	code := m.Run()
	cancel()
	if env != nil {
		_ = env.Stop()
	}
	os.Exit(code)
}

func requireEnv(t *testing.T) {
	t.Helper()
	prereq.Tier(t, prereq.Envtest)
	if errors.Is(envErr, kubeapi.ErrNoAssets) {
		prereq.Missing(t, "integration test needs a real API server: %v", envErr)
	}
	if envErr != nil {
		t.Fatalf("failed to start the API server: %v", envErr)
	}
}

func startPoolStatus(ctx context.Context) error {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: agent.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	if err := (&poolstatus.Reconciler{Debounce: 200 * time.Millisecond}).SetupWithManager(mgr); err != nil {
		return err
	}
	go func() { _ = mgr.Start(ctx) }()
	return nil
}

type agentOpt func(*agent.Config)

func dualStack(c *agent.Config) { c.EnableIPv6 = true }

// startAgent runs an informer-backed agent for node in this process.
func startAgent(t *testing.T, node string, opts ...agentOpt) *agent.Agent {
	t.Helper()
	ensureNode(t, node)
	cfg := agent.Config{NodeName: node, EnableIPv4: true, EnableStatefulSet: true, GCInterval: time.Hour}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := agent.New(env.Config, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(rootCtx)
	t.Cleanup(cancel)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func ensureNode(t *testing.T, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if err := k8s.Create(rootCtx, n); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(rootCtx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func createPool(t *testing.T, name, subnet string, ips ...string) {
	t.Helper()
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: ips}}
	if err := k8s.Create(rootCtx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(rootCtx, p) })
}

func podObj(ns, name, node string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func createPod(t testing.TB, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	if err := k8s.Create(rootCtx, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func deletePod(t testing.TB, p *corev1.Pod) {
	t.Helper()
	if err := k8s.Delete(rootCtx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func addReq(p *corev1.Pod, ifName, containerID string, pools ...string) *nodeapi.Request {
	return &nodeapi.Request{ContainerID: containerID, IfName: ifName, PodNamespace: p.Namespace, PodName: p.Name,
		PodUID: string(p.UID), DefaultIPv4Pools: pools}
}

func claimsOf(t testing.TB, ns, name string) []v2beta1.SpiderIPClaim {
	t.Helper()
	list := &v2beta1.SpiderIPClaimList{}
	if err := k8s.List(rootCtx, list); err != nil {
		t.Fatal(err)
	}
	var out []v2beta1.SpiderIPClaim
	for _, c := range list.Items {
		if c.Spec.PodNamespace == ns && c.Spec.PodName == name {
			out = append(out, c)
		}
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

func ip0(res *nodeapi.Result) string {
	if res == nil || len(res.IPs) == 0 {
		return ""
	}
	return res.IPs[0].Address
}

// TestConcurrentAgentsNeverDuplicate: 8 agents on 8 nodes allocate 2000
// addresses from one pool with 32 requests in flight; every address is
// unique, and claims, SpiderEndpoints and pool counters agree, also after
// half of the pods are released.
func TestConcurrentAgentsNeverDuplicate(t *testing.T) {
	requireEnv(t)
	const nodes, pods, inFlight = 8, 2000, 32
	ns := "hammer"
	ensureNamespace(t, ns)
	createPool(t, "hammer-v4", "10.20.0.0/16", "10.20.0.1-10.20.15.254")
	agents := make([]*agent.Agent, nodes)
	for i := range agents {
		agents[i] = startAgent(t, fmt.Sprintf("hammer-node-%d", i))
	}
	podList := make([]*corev1.Pod, pods)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for i := range podList {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			podList[i] = createPod(t, podObj(ns, fmt.Sprintf("p-%d", i), fmt.Sprintf("hammer-node-%d", i%nodes), nil))
		}(i)
	}
	wg.Wait()
	start := time.Now()

	got := make([]string, pods)
	errs := make(chan error, pods)
	for i := range podList {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			res, err := agents[i%nodes].Add(rootCtx, addReq(podList[i], "eth0", fmt.Sprintf("c-%d", i), "hammer-v4"))
			if err != nil {
				errs <- fmt.Errorf("pod %d: %w", i, err)
				return
			}
			got[i] = ip0(res)
		}(i)
	}
	wg.Wait()
	t.Logf("%d allocations by %d agents in %v", pods, nodes, time.Since(start))
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]int{}
	for i, a := range got {
		if a == "" {
			continue
		}
		if prev, dup := seen[a]; dup {
			t.Fatalf("address %s handed to pod %d and pod %d", a, prev, i)
		}
		seen[a] = i
	}

	// The API server holds exactly one claim per pod, matching the answer.
	checkClaims := func(want map[string]string) {
		t.Helper()
		list := &v2beta1.SpiderIPClaimList{}
		if err := k8s.List(rootCtx, list, client.MatchingLabels{v2beta1.LabelPool: "hammer-v4"}); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != len(want) {
			t.Fatalf("%d claims in pool, want %d", len(list.Items), len(want))
		}
		for _, c := range list.Items {
			if want[c.Spec.PodName] != c.Spec.Address {
				t.Fatalf("claim %s held by %s, answer to that pod was %q", c.Name, c.Spec.PodName, want[c.Spec.PodName])
			}
		}
	}
	want := map[string]string{}
	for i, a := range got {
		want[fmt.Sprintf("p-%d", i)] = strings.Split(a, "/")[0]
	}
	checkClaims(want)
	waitConsistent(t, ns, "hammer-v4", want)

	// Churn: release every second pod (pod deleted, then CNI DEL).
	for i := range podList {
		if i%2 == 1 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			deletePod(t, podList[i])
			if err := agents[i%nodes].Del(rootCtx, addReq(podList[i], "eth0", fmt.Sprintf("c-%d", i))); err != nil {
				t.Errorf("DEL pod %d: %v", i, err)
			}
			// DEL is idempotent.
			if err := agents[i%nodes].Del(rootCtx, addReq(podList[i], "eth0", fmt.Sprintf("c-%d", i))); err != nil {
				t.Errorf("second DEL pod %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	for i := range podList {
		if i%2 == 0 {
			delete(want, fmt.Sprintf("p-%d", i))
		}
	}
	checkClaims(want)
	waitConsistent(t, ns, "hammer-v4", want)
}

// waitConsistent waits until the SpiderEndpoints of ns and the pool counters
// agree with the claims in want (pod name -> address).
func waitConsistent(t *testing.T, ns, pool string, want map[string]string) {
	t.Helper()
	eventually(t, 60*time.Second, "SpiderEndpoints to match claims", func() (bool, string) {
		list := &v2beta1.SpiderEndpointList{}
		if err := k8s.List(rootCtx, list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		if len(list.Items) != len(want) {
			return false, fmt.Sprintf("%d SpiderEndpoints, want %d", len(list.Items), len(want))
		}
		for _, se := range list.Items {
			ips := se.Status.Current.IPs
			if len(ips) != 1 || ips[0].IPv4 == nil || strings.Split(*ips[0].IPv4, "/")[0] != want[se.Name] || *ips[0].IPv4Pool != pool {
				return false, fmt.Sprintf("SpiderEndpoint %s: %+v, want %s", se.Name, ips, want[se.Name])
			}
		}
		return true, ""
	})
	eventually(t, 30*time.Second, "pool counters to match a recount", func() (bool, string) {
		p := &v2beta1.SpiderIPPool{}
		if err := k8s.Get(rootCtx, client.ObjectKey{Name: pool}, p); err != nil {
			return false, err.Error()
		}
		list := &v2beta1.SpiderIPClaimList{}
		if err := k8s.List(rootCtx, list, client.MatchingLabels{v2beta1.LabelPool: pool}); err != nil {
			return false, err.Error()
		}
		a := p.Status.AllocatedIPCount
		if a == nil || *a != int64(len(list.Items)) || *a != int64(len(want)) || p.Status.TotalIPCount == nil {
			return false, fmt.Sprintf("status %+v, recount %d, want %d", p.Status, len(list.Items), len(want))
		}
		return true, ""
	})
}

// TestAddIsIdempotentAndSandboxRestartKeepsAddress covers ADD retries, a new
// sandbox for the same pod, and DEL of a live pod.
func TestAddIsIdempotentAndSandboxRestartKeepsAddress(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "idem")
	createPool(t, "idem-v4", "10.21.0.0/24", "10.21.0.10-10.21.0.20")
	a := startAgent(t, "idem-node")
	p := createPod(t, podObj("idem", "web", "idem-node", nil))
	r1, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "idem-v4"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "idem-v4"))
	if err != nil || ip0(r2) != ip0(r1) {
		t.Fatalf("retried ADD: %v %v, want %v", ip0(r2), err, ip0(r1))
	}
	// Sandbox restart: the old sandbox is deleted while the pod lives on.
	if err := a.Del(rootCtx, addReq(p, "eth0", "c1")); err != nil {
		t.Fatal(err)
	}
	if n := len(claimsOf(t, "idem", "web")); n != 1 {
		t.Fatalf("DEL of a live pod released its address (%d claims left)", n)
	}
	r3, err := a.Add(rootCtx, addReq(p, "eth0", "c2", "idem-v4"))
	if err != nil || ip0(r3) != ip0(r1) {
		t.Fatalf("new sandbox got %v %v, want %v", ip0(r3), err, ip0(r1))
	}
	if c := claimsOf(t, "idem", "web"); len(c) != 1 || c[0].Spec.ContainerID != "c2" {
		t.Fatalf("claim not re-bound to the new sandbox: %+v", c)
	}
	if !strings.HasSuffix(ip0(r1), "/24") {
		t.Fatalf("address %q lacks the subnet's prefix length", ip0(r1))
	}
	// A second interface gets its own address.
	r4, err := a.Add(rootCtx, addReq(p, "net1", "c2", "idem-v4"))
	if err != nil || ip0(r4) == ip0(r1) {
		t.Fatalf("net1 got %v %v", ip0(r4), err)
	}
	deletePod(t, p)
	for _, ifName := range []string{"eth0", "net1"} {
		if err := a.Del(rootCtx, addReq(p, ifName, "c2")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(claimsOf(t, "idem", "web")); n != 0 {
		t.Fatalf("%d claims left after the pod was deleted", n)
	}
}

// TestStatefulSetKeepsAddress: a StatefulSet replica keeps its address when
// deleted and re-created on another node; a changed pool annotation moves it;
// scaling down holds it for the next scale-up, unless the StatefulSet opts
// out.
func TestStatefulSetKeepsAddress(t *testing.T) {
	requireEnv(t)
	ns := "sts"
	ensureNamespace(t, ns)
	createPool(t, "sts-a", "10.22.0.0/24", "10.22.0.10-10.22.0.20")
	createPool(t, "sts-b", "10.22.1.0/24", "10.22.1.10-10.22.1.20")
	a1, a2 := startAgent(t, "sts-node-1"), startAgent(t, "sts-node-2")
	sts := createStatefulSet(t, ns, "web")
	replica := func(node string, pool string) *corev1.Pod {
		return createPod(t, replicaOf(sts, "web-0", node, map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["` + pool + `"]}`}))
	}
	p1 := replica("sts-node-1", "sts-a")
	r1, err := a1.Add(rootCtx, addReq(p1, "eth0", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	deletePod(t, p1)
	if err := a1.Del(rootCtx, addReq(p1, "eth0", "c1")); err != nil {
		t.Fatal(err)
	}
	if n := len(claimsOf(t, ns, "web-0")); n != 1 {
		t.Fatalf("StatefulSet replica lost its claim on DEL (%d claims)", n)
	}
	p2 := replica("sts-node-2", "sts-a")
	r2, err := a2.Add(rootCtx, addReq(p2, "eth0", "c2"))
	if err != nil || ip0(r2) != ip0(r1) {
		t.Fatalf("re-created replica got %v %v, want %v", ip0(r2), err, ip0(r1))
	}
	c := claimsOf(t, ns, "web-0")
	if len(c) != 1 || c[0].Spec.PodUID != string(p2.UID) || c[0].Spec.Node != "sts-node-2" {
		t.Fatalf("claim not re-bound to the new replica: %+v", c)
	}
	// A late DEL of the old incarnation must not free the re-bound address.
	if err := a1.Del(rootCtx, addReq(p1, "eth0", "c1")); err != nil {
		t.Fatal(err)
	}
	if n := len(claimsOf(t, ns, "web-0")); n != 1 {
		t.Fatal("late DEL of the old replica released the new replica's address")
	}

	// Pool annotation changed: the replica moves to the new pool.
	deletePod(t, p2)
	if err := a2.Del(rootCtx, addReq(p2, "eth0", "c2")); err != nil {
		t.Fatal(err)
	}
	p3 := replica("sts-node-2", "sts-b")
	r3, err := a2.Add(rootCtx, addReq(p3, "eth0", "c3"))
	if err != nil || !strings.HasPrefix(ip0(r3), "10.22.1.") {
		t.Fatalf("replica with a new pool annotation got %v %v", ip0(r3), err)
	}
	if c := claimsOf(t, ns, "web-0"); len(c) != 1 || c[0].Spec.Pool != "sts-b" {
		t.Fatalf("want exactly the claim in sts-b, got %+v", c)
	}

	// Scaled to zero: the address is held for the StatefulSet, and the
	// replica gets it back when it is scaled up again.
	scale := func(n int32, optOut bool) {
		t.Helper()
		if err := k8s.Get(rootCtx, client.ObjectKeyFromObject(sts), sts); err != nil {
			t.Fatal(err)
		}
		sts.Spec.Replicas = ptr.To(n)
		if optOut {
			sts.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
		}
		if err := k8s.Update(rootCtx, sts); err != nil {
			t.Fatal(err)
		}
	}
	scale(0, false)
	deletePod(t, p3)
	if err := a2.Del(rootCtx, addReq(p3, "eth0", "c3")); err != nil {
		t.Fatal(err)
	}
	if c := claimsOf(t, ns, "web-0"); len(c) != 1 || !strings.HasPrefix(ip0(r3), c[0].Spec.Address+"/") {
		t.Fatalf("replica scaled away lost its held address: %+v", c)
	}
	scale(1, false)
	p4 := replica("sts-node-1", "sts-b")
	r4, err := a1.Add(rootCtx, addReq(p4, "eth0", "c4"))
	if err != nil || ip0(r4) != ip0(r3) {
		t.Fatalf("replica scaled up again got %v %v, want its held %v", ip0(r4), err, ip0(r3))
	}

	// A StatefulSet that opts out releases on scale-down.
	scale(0, true)
	deletePod(t, p4)
	if err := a1.Del(rootCtx, addReq(p4, "eth0", "c4")); err != nil {
		t.Fatal(err)
	}
	if n := len(claimsOf(t, ns, "web-0")); n != 0 {
		t.Fatalf("scaled-down replica of a StatefulSet releasing on scale-down kept %d claims", n)
	}
}

// TestWorkloadAnnotations: a pod without pool or address annotations takes
// those of its controller chain (a StatefulSet's metadata, a Deployment
// through its ReplicaSet); a pod's own annotations win.
func TestWorkloadAnnotations(t *testing.T) {
	requireEnv(t)
	ns := "workload-ann"
	ensureNamespace(t, ns)
	createPool(t, "wl-default", "10.24.0.0/24", "10.24.0.10-10.24.0.20")
	createPool(t, "wl-calico", "10.24.1.0/24", "10.24.1.10-10.24.1.20")
	createPool(t, "wl-ovn", "10.24.2.0/24", "10.24.2.10-10.24.2.20")
	a := startAgent(t, "wl-node")
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db", Annotations: map[string]string{annotations.CalicoIPv4Pools: `["wl-calico"]`}},
		Spec:       appsv1.StatefulSetSpec{Selector: sel, Template: tmpl},
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: map[string]string{annotations.OVNIPPool: "10.24.2.15,10.24.2.16"}},
		Spec:       appsv1.DeploymentSpec{Selector: sel, Template: tmpl},
	}
	for _, o := range []client.Object{sts, dep} {
		if err := k8s.Create(rootCtx, o); err != nil {
			t.Fatal(err)
		}
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-5d8f", OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: dep.UID, Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: sel, Template: tmpl},
	}
	if err := k8s.Create(rootCtx, rs); err != nil {
		t.Fatal(err)
	}
	owned := func(name string, ann map[string]string, kind, owner string, uid types.UID) *corev1.Pod {
		p := podObj(ns, name, "wl-node", ann)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: owner, UID: uid, Controller: ptr.To(true)}}
		return createPod(t, p)
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{owned("db-0", nil, "StatefulSet", "db", sts.UID), "10.24.1."},
		{owned("web-5d8f-abcde", nil, "ReplicaSet", "web-5d8f", rs.UID), "10.24.2.1"},
		{owned("db-1", map[string]string{annotations.PodIPPool: `{"ipv4":["wl-default"]}`}, "StatefulSet", "db", sts.UID), "10.24.0."},
	} {
		res, err := a.Add(rootCtx, addReq(tc.pod, "eth0", "c-"+tc.pod.Name, "wl-default"))
		if err != nil || !strings.HasPrefix(ip0(res), tc.want) {
			t.Errorf("pod %s got %q (%v), want an address starting %s", tc.pod.Name, ip0(res), err, tc.want)
		}
	}
}

// TestBarePodRecreatedGetsCleanAllocation: a bare pod deleted without a DEL
// and re-created under the same name gets a fresh record; the old claim is
// replaced, neither leaked nor duplicated.
func TestBarePodRecreatedGetsCleanAllocation(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "bare")
	createPool(t, "bare-v4", "10.23.0.0/24", "10.23.0.10-10.23.0.20")
	a := startAgent(t, "bare-node")
	p1 := createPod(t, podObj("bare", "solo", "bare-node", nil))
	if _, err := a.Add(rootCtx, addReq(p1, "eth0", "c1", "bare-v4")); err != nil {
		t.Fatal(err)
	}
	deletePod(t, p1) // the DEL is lost
	p2 := createPod(t, podObj("bare", "solo", "bare-node", nil))
	if _, err := a.Add(rootCtx, addReq(p2, "eth0", "c2", "bare-v4")); err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, "bare", "solo")
	if len(c) != 1 || c[0].Spec.PodUID != string(p2.UID) || c[0].Spec.ContainerID != "c2" {
		t.Fatalf("want exactly one claim for the new pod, got %+v", c)
	}
	eventually(t, 30*time.Second, "SpiderEndpoint of the new pod", func() (bool, string) {
		se := &v2beta1.SpiderEndpoint{}
		if err := k8s.Get(rootCtx, client.ObjectKey{Namespace: "bare", Name: "solo"}, se); err != nil {
			return false, err.Error()
		}
		return se.Status.Current.UID == string(p2.UID), fmt.Sprintf("uid %s", se.Status.Current.UID)
	})
}

// TestReleaseNeverFreesRecreatedClaim: store.DeleteExact's preconditions
// protect a claim that was re-created (UID) or re-bound (resourceVersion) for
// another pod after the releaser read it.
func TestReleaseNeverFreesRecreatedClaim(t *testing.T) {
	requireEnv(t)
	s := &store.Store{W: k8s}
	addr := netip.MustParseAddr("10.24.0.7")
	old := v2beta1.NewClaim(addr, v2beta1.IPClaimSpec{Pool: "x", PodNamespace: "a", PodName: "old", PodUID: "u-old"})
	if taken, err := s.Create(rootCtx, old); err != nil || taken {
		t.Fatalf("create: %v %v", taken, err)
	}
	if err := k8s.Delete(rootCtx, old.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	fresh := v2beta1.NewClaim(addr, v2beta1.IPClaimSpec{Pool: "x", PodNamespace: "a", PodName: "new", PodUID: "u-new"})
	if taken, err := s.Create(rootCtx, fresh); err != nil || taken {
		t.Fatalf("re-create: %v %v", taken, err)
	}
	// The release of the old holder deletes nothing: its claim was replaced ...
	if res, err := store.DeleteExact(rootCtx, s.W, old); err != nil || res != store.Changed {
		t.Fatalf("stale release: %v %v, want store.Changed", res, err)
	}
	// ... and the new claim survives.
	got := &v2beta1.SpiderIPClaim{}
	if err := k8s.Get(rootCtx, client.ObjectKey{Name: v2beta1.ClaimName(addr)}, got); err != nil {
		t.Fatalf("re-created claim was freed: %v", err)
	}
	if got.Spec.PodName != "new" {
		t.Fatalf("claim now held by %q", got.Spec.PodName)
	}
	// A second create of the same address is refused as taken.
	if taken, err := s.Create(rootCtx, v2beta1.NewClaim(addr, v2beta1.IPClaimSpec{Pool: "x"})); err != nil || !taken {
		t.Fatalf("duplicate create: taken=%v err=%v", taken, err)
	}
	// A release decided before a re-bind deletes nothing either.
	before := got.DeepCopy()
	got.Spec.PodName, got.Spec.PodUID = "newer", "u-newer"
	if err := s.Rebind(rootCtx, got); err != nil {
		t.Fatalf("re-bind: %v", err)
	}
	if res, err := store.DeleteExact(rootCtx, s.W, before); err != nil || res != store.Changed {
		t.Fatalf("release decided before the re-bind: %v %v, want store.Changed", res, err)
	}
	if res, err := store.DeleteExact(rootCtx, s.W, got); err != nil || res != store.Deleted {
		t.Fatalf("release of the current holder: %v %v, want store.Deleted", res, err)
	}
}

// TestFailedAddLeavesNothingBehind: a dual-stack ADD whose IPv6 pool is
// exhausted fails with an error naming the pool, and its IPv4 claim is
// rolled back.
func TestFailedAddLeavesNothingBehind(t *testing.T) {
	requireEnv(t)
	ns := "fail"
	ensureNamespace(t, ns)
	createPool(t, "fail-v4", "10.25.0.0/24", "10.25.0.10-10.25.0.20")
	createPool(t, "fail-v6", "fd00:25::/64", "fd00:25::10")
	a := startAgent(t, "fail-node", dualStack)
	ann := map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["fail-v4"],"ipv6":["fail-v6"]}`}
	p1 := createPod(t, podObj(ns, "first", "fail-node", ann))
	res, err := a.Add(rootCtx, addReq(p1, "eth0", "c1"))
	if err != nil || len(res.IPs) != 2 {
		t.Fatalf("dual-stack ADD: %+v %v", res, err)
	}
	p2 := createPod(t, podObj(ns, "second", "fail-node", ann))
	_, err = a.Add(rootCtx, addReq(p2, "eth0", "c2"))
	if err == nil {
		t.Fatal("ADD from an exhausted pool succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, `pool "fail-v6": 1/1 allocated`) {
		t.Fatalf("error does not name the exhausted pool: %s", msg)
	}
	if c := claimsOf(t, ns, "second"); len(c) != 0 {
		t.Fatalf("failed ADD left claims behind: %+v", c)
	}
	// The rolled-back IPv4 address is free again.
	if err := a.Del(rootCtx, addReq(p1, "eth0", "c1")); err != nil {
		t.Fatal(err)
	}
	deletePod(t, p1)
	if err := a.Del(rootCtx, addReq(p1, "eth0", "c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(rootCtx, addReq(p2, "eth0", "c2")); err != nil {
		t.Fatalf("ADD after the pool was freed: %v", err)
	}
}

// TestAgentServesOnlyItsNode: an ADD for a pod bound elsewhere is refused.
func TestAgentServesOnlyItsNode(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "other")
	createPool(t, "other-v4", "10.26.0.0/24", "10.26.0.10-10.26.0.20")
	a := startAgent(t, "other-node-a")
	ensureNode(t, "other-node-b")
	p := createPod(t, podObj("other", "elsewhere", "other-node-b", nil))
	_, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "other-v4"))
	if err == nil || !strings.Contains(err.Error(), `bound to node "other-node-b"`) {
		t.Fatalf("want a wrong-node error, got %v", err)
	}
	if c := claimsOf(t, "other", "elsewhere"); len(c) != 0 {
		t.Fatalf("claims created for a foreign pod: %+v", c)
	}
}

var _ = types.UID("")

func noGCGrace(c *agent.Config) { c.GCGracePeriod = time.Nanosecond }

// TestGCReleasesClaimsOfVanishedPods: the CNI GC (and the periodic pass)
// releases claims of pods that are gone without a DEL, keeps live pods' and
// those the runtime lists as valid.
func TestGCReleasesClaimsOfVanishedPods(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "gc")
	createPool(t, "gc-v4", "10.27.0.0/24", "10.27.0.10-10.27.0.20")
	a := startAgent(t, "gc-node", noGCGrace)
	gone := createPod(t, podObj("gc", "gone", "gc-node", nil))
	valid := createPod(t, podObj("gc", "valid", "gc-node", nil))
	alive := createPod(t, podObj("gc", "alive", "gc-node", nil))
	for _, p := range []*corev1.Pod{gone, valid, alive} {
		if _, err := a.Add(rootCtx, addReq(p, "eth0", "c-"+p.Name, "gc-v4")); err != nil {
			t.Fatal(err)
		}
	}
	deletePod(t, gone)
	deletePod(t, valid)
	eventually(t, 10*time.Second, "claims in the agent's cache", func() (bool, string) {
		res, err := a.GC(rootCtx, &nodeapi.GCRequest{ValidAttachments: []nodeapi.Attachment{{ContainerID: "c-valid", IfName: "eth0"}}})
		if err != nil {
			return false, err.Error()
		}
		return len(res.Released) == 1, fmt.Sprintf("released %v", res.Released)
	})
	if n := len(claimsOf(t, "gc", "gone")); n != 0 {
		t.Fatalf("claim of the vanished pod survived GC (%d)", n)
	}
	if n := len(claimsOf(t, "gc", "valid")); n != 1 {
		t.Fatal("GC released an attachment the runtime lists as valid")
	}
	if n := len(claimsOf(t, "gc", "alive")); n != 1 {
		t.Fatal("GC released a live pod's address")
	}
}

// TestCoordinatorAndPodEndpoints: what the coordinator plugin reads from the
// agent: cluster defaults and a pod's per-interface allocation.
func TestCoordinatorAndPodEndpoints(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "coord")
	createPool(t, "coord-v4", "10.29.0.0/24", "10.29.0.10-10.29.0.20")
	a := startAgent(t, "coord-node")
	got, err := a.Coordinator(rootCtx)
	if err != nil || got.Mode != "" {
		t.Fatalf("without SpiderCoordinator: %+v %v", got, err)
	}
	mode := "underlay"
	c := &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v2beta1.CoordinatorSpec{Mode: &mode, HijackCIDR: []string{"169.254.0.0/16"}, TunePodRoutes: ptr.To(true)}}
	if err := k8s.Create(rootCtx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(rootCtx, c) })
	c.Status.ServiceCIDR = []string{"10.96.0.0/12"}
	if err := k8s.Status().Update(rootCtx, c); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "coordinator defaults", func() (bool, string) {
		got, err := a.Coordinator(rootCtx)
		if err != nil {
			return false, err.Error()
		}
		cc := got
		ok := cc.Mode == "underlay" && len(cc.HijackCIDR) == 1 && cc.TunePodRoutes != nil && *cc.TunePodRoutes && len(cc.ServiceCIDR) == 1
		return ok, fmt.Sprintf("%+v", cc)
	})

	ann := map[string]string{"ipam.spidernet.io/ippools": `[{"interface":"eth0","ipv4":["coord-v4"]},{"interface":"net1","ipv4":["coord-v4"],"cleangateway":true}]`}
	p := createPod(t, podObj("coord", "web", "coord-node", ann))
	for _, ifName := range []string{"eth0", "net1"} {
		if _, err := a.Add(rootCtx, addReq(p, ifName, "c1")); err != nil {
			t.Fatal(err)
		}
	}
	info, err := a.Pod(rootCtx, "coord", "web")
	if err != nil {
		t.Fatal(err)
	}
	pi := info
	if pi.UID != string(p.UID) || pi.Annotations["ipam.spidernet.io/ippools"] == "" || len(pi.Interfaces) != 2 ||
		pi.Interfaces["eth0"].CleanGateway || !pi.Interfaces["net1"].CleanGateway || len(pi.Interfaces["net1"].IPs) != 1 {
		t.Fatalf("pod info: %+v", pi)
	}
	if _, err := a.Pod(rootCtx, "coord", "nope"); !errors.Is(err, nodeapi.ErrNotFound) {
		t.Fatalf("missing pod: %v", err)
	}
}

// TestRestartWritesMissingEndpoints: claims are the record of truth. An agent
// that died after creating a claim but before writing the SpiderEndpoint
// repairs it when it starts again, and a retried ADD returns the claimed
// address instead of a second one.
func TestRestartWritesMissingEndpoints(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "restart")
	createPool(t, "restart-v4", "10.30.0.0/24", "10.30.0.10-10.30.0.20")
	ensureNode(t, "restart-node")
	p := createPod(t, podObj("restart", "web", "restart-node", nil))
	// What the agent wrote before it died: the claim only.
	s := &store.Store{W: k8s}
	c := v2beta1.NewClaim(netip.MustParseAddr("10.30.0.15"), v2beta1.IPClaimSpec{Pool: "restart-v4", PodNamespace: "restart", PodName: "web",
		PodUID: string(p.UID), Interface: "eth0", ContainerID: "c1", Node: "restart-node"})
	if _, err := s.Create(rootCtx, c); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "restart-node")
	eventually(t, 20*time.Second, "SpiderEndpoint written from the claim", func() (bool, string) {
		se := &v2beta1.SpiderEndpoint{}
		if err := k8s.Get(rootCtx, client.ObjectKey{Namespace: "restart", Name: "web"}, se); err != nil {
			return false, err.Error()
		}
		ips := se.Status.Current.IPs
		return len(ips) == 1 && ips[0].IPv4 != nil && *ips[0].IPv4 == "10.30.0.15/24", fmt.Sprintf("%+v", se.Status)
	})
	res, err := a.Add(rootCtx, addReq(p, "eth0", "c1", "restart-v4"))
	if err != nil || ip0(res) != "10.30.0.15/24" {
		t.Fatalf("retried ADD: %v %v", ip0(res), err)
	}
	if n := len(claimsOf(t, "restart", "web")); n != 1 {
		t.Fatalf("%d claims after the retried ADD", n)
	}
}

// "agent dies after Create, before answering" (docs/design/ipam-storage.md,
// crash consistency): the runtime saw a failure and retries the ADD with a
// new sandbox against the restarted agent, which returns the claim the dead
// agent created; no second address is claimed.
func TestAddAfterAgentRestartReturnsTheSameClaim(t *testing.T) {
	requireEnv(t)
	ensureNamespace(t, "crash")
	createPool(t, "crash-v4", "10.33.0.0/24", "10.33.0.10-10.33.0.20")
	ensureNode(t, "crash-node")
	first, err := agent.New(env.Config, agent.Config{NodeName: "crash-node", EnableIPv4: true, GCInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(rootCtx)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := createPod(t, podObj("crash", "web", "crash-node", nil))
	r1, err := first.Add(rootCtx, addReq(p, "eth0", "c1", "crash-v4"))
	if err != nil {
		t.Fatal(err)
	}
	kill() // the answer never reaches the runtime
	second := startAgent(t, "crash-node")
	r2, err := second.Add(rootCtx, addReq(p, "eth0", "c2", "crash-v4"))
	if err != nil || ip0(r2) != ip0(r1) {
		t.Fatalf("retried ADD after the restart: %v %v, want %v", ip0(r2), err, ip0(r1))
	}
	if c := claimsOf(t, "crash", "web"); len(c) != 1 || c[0].Spec.ContainerID != "c2" {
		t.Fatalf("claims after the retry: %+v, want one, bound to the new sandbox", c)
	}
	deletePod(t, p)
	if err := second.Del(rootCtx, addReq(p, "eth0", "c2")); err != nil {
		t.Fatal(err)
	}
	if n := len(claimsOf(t, "crash", "web")); n != 0 {
		t.Fatalf("%d claims left after the pod was deleted", n)
	}
}

// createStatefulSet creates a one-replica StatefulSet whose pods carry the
// label app=<name>; the tests play the StatefulSet controller's part.
func createStatefulSet(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if err := k8s.Create(rootCtx, sts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(rootCtx, sts) })
	return sts
}

// replicaOf returns a pod of sts named name on node, labelled and owned as
// the StatefulSet controller makes them.
func replicaOf(sts *appsv1.StatefulSet, name, node string, annotations map[string]string) *corev1.Pod {
	p := podObj(sts.Namespace, name, node, annotations)
	p.Labels = map[string]string{"app": sts.Name}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr.To(true)}}
	return p
}
