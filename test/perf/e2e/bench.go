package main

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

const (
	// phaseLabel marks every pod template of a phase.
	phaseLabel = "spindle.bench/phase"
	iface      = "net1"
	// spindleNAD is the SpiderMultusConfig (and its
	// NetworkAttachmentDefinition) of the spindle phases: macvlan on the
	// lab underlay, spiderpool IPAM, coordinator chained. hostLocalNAD is a
	// plain NetworkAttachmentDefinition: macvlan with host-local IPAM.
	spindleNAD, hostLocalNAD = "underlay-spindle", "underlay-hostlocal"
	// Where the phases take addresses: the underlay's 49th and 65th /24
	// on, away from the lab's own first /24 and the subnet benchmark's.
	spindleBlock, hostLocalBlock = 48, 64
	maxAddrs                     = 16 * 256
	// createWorkers Deployments are created (and deleted) at once.
	createWorkers = 10
)

// ipamKind is what gives net1 its address.
type ipamKind string

const (
	spindle   ipamKind = "spindle"
	hostLocal ipamKind = "hostlocal"
)

type bench struct {
	o        perflab.LabOptions
	replicas int
	timeout  time.Duration

	f   *framework.Framework
	cs  kubernetes.Interface
	c   client.Client
	lab *framework.Lab
	ns  string
	log func(format string, args ...any)
}

func newBench(o perflab.LabOptions, replicas int, timeout time.Duration) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig())
	if err != nil {
		return nil, fmt.Errorf("failed to load the benchmark lab's kubeconfig %q: %w", o.Kubeconfig(), err)
	}
	// The benchmark's own requests must not be what limits it.
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.UserAgent = "bench-e2e"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for %s: %w", v2beta1.GroupVersion, err)
	}
	nc, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lab, err := framework.LoadLab(o.EnvFile(), o.Bin("lab"))
	if err != nil {
		return nil, err
	}
	if lab == nil {
		return nil, fmt.Errorf("failed to find the lab env file %q: the lab did not come up", o.EnvFile())
	}
	return &bench{
		o: o, replicas: replicas, timeout: timeout,
		f:  &framework.Framework{Kubeconfig: o.Kubeconfig(), Config: cfg, Client: cs, NAD: nc, PodImage: "registry.k8s.io/pause:3.10"},
		cs: cs, c: c, lab: lab,
		log: func(format string, args ...any) { fmt.Printf("# "+format+"\n", args...) },
	}, nil
}

// block returns the first address of the kind's underlay block and how
// many addresses a phase of pods may take from it.
func (b *bench) block(kind ipamKind, pods int) (netip.Addr, int, error) {
	n := max(1024, pods+pods/10)
	if n > maxAddrs {
		return netip.Addr{}, 0, fmt.Errorf("failed to size the address range of %d pods: at most %d addresses fit the benchmark's underlay blocks; use fewer -apps or -replicas", pods, maxAddrs)
	}
	blk := spindleBlock
	if kind == hostLocal {
		blk = hostLocalBlock
	}
	a := b.lab.UnderlayV4.Masked().Addr().As4()
	a[2] += byte(blk)
	return netip.AddrFrom4(a), n, nil
}

// setup creates the namespace, the spindle network with its pool and the
// host-local network, each over its own block of the underlay sized for
// pods pods.
func (b *bench) setup(ctx context.Context, pods int) error {
	ns, err := b.f.CreateNamespace(ctx, "bench-e2e")
	if err != nil {
		return err
	}
	b.ns = ns.Name
	subnet, gw := b.lab.UnderlayV4.Masked(), b.lab.GatewayV4
	first, n, err := b.block(spindle, pods)
	if err != nil {
		return err
	}
	ips, err := perflab.AddrRange(first, n)
	if err != nil {
		return err
	}
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: b.poolName()},
		Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), IPs: []string{ips}, Gateway: ptr.To(gw.String())}}
	smc := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: spindleNAD},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: v2beta1.CNITypeMacvlan, MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master:                []string{b.lab.UnderlayIf},
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{pool.Name}},
		}},
	}
	for _, obj := range []client.Object{pool, smc} {
		err := perflab.Retry(ctx, 2*time.Minute, fmt.Sprintf("create %T %s", obj, obj.GetName()), func(ctx context.Context) error {
			err := b.c.Create(ctx, obj.DeepCopyObject().(client.Object))
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	b.log("spindle: SpiderIPPool %s over %s, SpiderMultusConfig %s/%s", pool.Name, ips, b.ns, spindleNAD)
	first, n, err = b.block(hostLocal, pods)
	if err != nil {
		return err
	}
	last, err := perflab.AddrRange(first, n)
	if err != nil {
		return err
	}
	_, end, _ := strings.Cut(last, "-")
	if _, err := b.f.CreateNAD(ctx, b.ns, hostLocalNAD, framework.MacvlanConfig(hostLocalNAD, b.lab.UnderlayIf, subnet, first, netip.MustParseAddr(end), gw)); err != nil {
		return err
	}
	b.log("hostlocal: NetworkAttachmentDefinition %s/%s over %s", b.ns, hostLocalNAD, last)
	return perflab.WaitFor(ctx, time.Minute, "the NetworkAttachmentDefinition of SpiderMultusConfig "+b.ns+"/"+spindleNAD, func(ctx context.Context) (bool, error) {
		_, err := b.f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(b.ns).Get(ctx, spindleNAD, metav1.GetOptions{})
		return err == nil, client.IgnoreNotFound(err)
	})
}

func (b *bench) poolName() string { return "bench-e2e" }

// phase is one half of a repetition.
type phase struct {
	kind ipamKind
	rep  int
	apps int
	// warmup marks the uncounted rounds before the first phase, so that
	// neither kind pays for a cold lab (first ADDs, caches, connections).
	warmup bool
}

func (p phase) String() string {
	if p.warmup {
		return "warmup-" + string(p.kind)
	}
	return fmt.Sprintf("%s%d", p.kind, p.rep)
}

func (p phase) app(i int) string { return fmt.Sprintf("%s-%03d", p, i) }

func (p phase) nad() string {
	if p.kind == hostLocal {
		return hostLocalNAD
	}
	return spindleNAD
}

// deployment is application i of the phase.
func (b *bench) deployment(p phase, i int) *appsv1.Deployment {
	name := p.app(i)
	pod := b.f.NewPod(b.ns, "", framework.PodOptions{Networks: b.ns + "/" + p.nad()})
	labels := map[string]string{"app": name, phaseLabel: p.String()}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: name, Labels: map[string]string{phaseLabel: p.String()}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(b.replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: pod.Annotations}, Spec: pod.Spec},
		},
	}
}

// trackPods follows the pods of the phase with an informer until ctx ends.
func (b *bench) trackPods(ctx context.Context, p phase, t *perflab.PodTracker) error {
	factory := informers.NewSharedInformerFactoryWithOptions(b.cs, 0, informers.WithNamespace(b.ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = phaseLabel + "=" + p.String() }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.Observe(obj.(*corev1.Pod), time.Now()) },
		UpdateFunc: func(_, obj any) { t.Observe(obj.(*corev1.Pod), time.Now()) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				t.Forget(pod)
			}
		},
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("failed to sync the pod informer of namespace %q", b.ns)
	}
	return nil
}

// run measures one phase: create the Deployments, wait until every pod
// runs, count the addresses held twice, delete the Deployments and wait
// until no pod and no claim of them is left; then read the phase's ADD
// timings from the lab's logs.
func (b *bench) run(ctx context.Context, p phase) (phaseResult, error) {
	var res phaseResult
	want := p.apps * b.replicas
	tctx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	pods := perflab.NewPodTracker(want)
	if err := b.trackPods(tctx, p, pods); err != nil {
		return res, err
	}
	start := time.Now()
	err := perflab.ForEach(p.apps, createWorkers, func(i int) error {
		d := b.deployment(p, i)
		if err := b.c.Create(ctx, d); err != nil {
			return fmt.Errorf("failed to create Deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	b.log("%s: %d Deployments of %d replicas created in %.1f s", p, p.apps, b.replicas, time.Since(start).Seconds())
	if err := b.waitRunning(ctx, p, pods, start); err != nil {
		return res, err
	}
	res.allRunning = pods.AllRunningAt().Sub(start)
	res.pods = want
	b.log("%s: %d pods Running %.1f s after the first create", p, want, res.allRunning.Seconds())
	if err := b.check(ctx, p, &res); err != nil {
		return res, err
	}
	if res.failedAdds, err = perflab.SandboxFailures(ctx, b.cs, b.ns, p.String()+"-"); err != nil {
		return res, err
	}

	start = time.Now()
	err = perflab.ForEach(p.apps, createWorkers, func(i int) error {
		err := b.c.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: p.app(i)}},
			client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete Deployment %s/%s: %w", b.ns, p.app(i), err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := b.waitGone(ctx, p, pods); err != nil {
		return res, err
	}
	res.deleted = time.Since(start)
	b.log("%s: pods and claims gone %.1f s after the first delete", p, res.deleted.Seconds())
	stopTracking()

	res.adds, err = readTimings(b.o.LogDir(), b.ns, p.String()+"-", time.Now().Year())
	if err != nil {
		return res, err
	}
	b.log("%s: %s", p, res.adds.describe())
	return res, nil
}

// waitRunning waits until every pod of the phase runs, printing progress,
// and fails at once when a pod failed.
func (b *bench) waitRunning(ctx context.Context, p phase, pods *perflab.PodTracker, start time.Time) error {
	want := p.apps * b.replicas
	deadline := time.NewTimer(b.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-pods.All():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			present, running := pods.Counts()
			return fmt.Errorf("failed to see all %d pods of %s Running within %s (-timeout): %d exist, %d Running; warning events:\n%s",
				want, p, b.timeout, present, running, perflab.Warnings(ctx, b.cs, b.ns, p.String()+"-"))
		case <-tick.C:
			if failed := pods.Failures(); len(failed) > 0 {
				var names []string
				for n, why := range failed {
					names = append(names, n+" ("+why+")")
				}
				sort.Strings(names)
				return fmt.Errorf("failed: %d pods of %s are Failed: %s", len(failed), p, strings.Join(names[:min(5, len(names))], ", "))
			}
			present, running := pods.Counts()
			b.log("%s: %.0f s: %d pods, %d/%d Running", p, time.Since(start).Seconds(), present, running, want)
		}
	}
}

// check counts the net1 addresses held by more than one Running pod, as
// Multus reported them in each pod's network-status.
func (b *bench) check(ctx context.Context, p phase, res *phaseResult) error {
	list, err := b.cs.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: phaseLabel + "=" + p.String()})
	if err != nil {
		return fmt.Errorf("failed to list the pods of %s: %w", p, err)
	}
	held := map[string][]netip.Addr{}
	running := 0
	for i := range list.Items {
		pod := &list.Items[i]
		if !perflab.PodRunning(pod) {
			continue
		}
		running++
		st, err := framework.InterfaceStatus(pod, iface)
		if err != nil {
			return fmt.Errorf("failed to read the %s address of pod %s/%s: %w", iface, pod.Namespace, pod.Name, err)
		}
		for _, s := range st.IPs {
			if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
				held[pod.Name] = append(held[pod.Name], a)
			}
		}
		if len(held[pod.Name]) != 1 {
			return fmt.Errorf("failed: pod %s/%s has %d IPv4 addresses on %s (%v), want 1", pod.Namespace, pod.Name, len(held[pod.Name]), iface, st.IPs)
		}
	}
	if running != p.apps*b.replicas {
		return fmt.Errorf("failed: %d pods of %s Running when checked, want %d", running, p, p.apps*b.replicas)
	}
	var examples []string
	res.duplicates, examples = perflab.Duplicates(held)
	b.log("%s: %d pods hold %d distinct %s addresses; duplicates=%d", p, running, running-res.duplicates, iface, res.duplicates)
	for _, e := range examples[:min(3, len(examples))] {
		if len(e) > 160 {
			e = e[:160] + " ..."
		}
		b.log("  %s", e)
	}
	return nil
}

// waitGone waits until no pod of the phase and no claim of the spindle
// pool is left.
func (b *bench) waitGone(ctx context.Context, p phase, pods *perflab.PodTracker) error {
	return perflab.WaitFor(ctx, b.timeout, "the pods and claims of "+p.String()+" gone", func(ctx context.Context) (bool, error) {
		if present, _ := pods.Counts(); present > 0 {
			return false, nil
		}
		var claims v2beta1.SpiderIPClaimList
		if err := b.c.List(ctx, &claims, client.MatchingLabels{v2beta1.LabelPool: b.poolName()}, client.Limit(1)); err != nil {
			return false, err
		}
		return len(claims.Items) == 0, nil
	})
}
