package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

const (
	// phaseLabel marks every pod template of a phase.
	phaseLabel = "spindle.bench/phase"
	// nadName is the SpiderMultusConfig (and its NetworkAttachmentDefinition)
	// that gives pods net1: macvlan on the lab underlay, spiderpool IPAM,
	// coordinator chained.
	nadName = "underlay"
	iface   = "net1"
	// Where the phases take addresses: the underlay's 17th and 33rd /24
	// on, away from the lab's own first /24.
	manualBlock, autoBlock = 16, 32
	maxAddrs               = 16 * 256
	// createWorkers Deployments are created (and deleted) at once.
	createWorkers = 10
)

type bench struct {
	apps, replicas int
	timeout        time.Duration

	f   *framework.Framework
	cs  kubernetes.Interface
	c   client.WithWatch
	lab *framework.Lab
	ns  string
	// metrics is spindle-controller's /metrics URL.
	metrics string
	log     func(format string, args ...any)
}

func newBench(kubeconfig, envFile, labBin, metrics string, apps, replicas int, timeout time.Duration) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("failed to load the benchmark lab's kubeconfig %q: %w", kubeconfig, err)
	}
	// The benchmark's own requests must not be what limits it.
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.UserAgent = "bench-subnet"
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
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for %s: %w", v2beta1.GroupVersion, err)
	}
	nc, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lab, err := framework.LoadLab(envFile, labBin)
	if err != nil {
		return nil, err
	}
	if lab == nil {
		return nil, fmt.Errorf("failed to find the lab env file %q: the lab did not come up", envFile)
	}
	return &bench{
		apps: apps, replicas: replicas, timeout: timeout,
		f:  &framework.Framework{Kubeconfig: kubeconfig, Config: cfg, Client: cs, NAD: nc, PodImage: "registry.k8s.io/pause:3.10"},
		cs: cs, c: c, lab: lab, metrics: metrics,
		log: func(format string, args ...any) { fmt.Printf("# "+format+"\n", args...) },
	}, nil
}

// setup creates the namespace and the network of net1.
func (b *bench) setup(ctx context.Context) error {
	ns, err := b.f.CreateNamespace(ctx, "bench-subnet")
	if err != nil {
		return err
	}
	b.ns = ns.Name
	smc := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: nadName},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: v2beta1.CNITypeMacvlan, MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master: []string{b.lab.UnderlayIf},
		}},
	}
	if err := perflab.Retry(ctx, 2*time.Minute, "create SpiderMultusConfig "+b.ns+"/"+nadName, func(ctx context.Context) error {
		err := b.c.Create(ctx, smc.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	return perflab.WaitFor(ctx, time.Minute, "the NetworkAttachmentDefinition of SpiderMultusConfig "+b.ns+"/"+nadName, func(ctx context.Context) (bool, error) {
		_, err := b.f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(b.ns).Get(ctx, nadName, metav1.GetOptions{})
		return err == nil, client.IgnoreNotFound(err)
	})
}

// phase is one half of a repetition: the Deployments named a shared pool
// (manual) or asked for pools carved from a subnet (auto).
type phase struct {
	auto bool
	rep  int
	apps int
	// warmup marks the uncounted manual round before the first phase, so
	// that neither phase pays for a cold lab (first allocations, caches,
	// connections).
	warmup bool
}

func (p phase) String() string {
	switch {
	case p.warmup:
		return "warmup"
	case p.auto:
		return fmt.Sprintf("auto%d", p.rep)
	}
	return fmt.Sprintf("manual%d", p.rep)
}

func (p phase) app(i int) string { return fmt.Sprintf("%s-%03d", p, i) }

// source is the pool (manual) or subnet (auto) of the phase.
func (p phase) source() string { return "bench-" + p.String() }

// addresses returns the range the phase's pool or subnet spans: enough for
// every pod and at least 1000 addresses.
func (b *bench) addresses(p phase) (string, error) {
	n := max(1024, b.apps*b.replicas+b.apps*b.replicas/10)
	if n > maxAddrs {
		return "", fmt.Errorf("failed to size the pool of %d pods: at most %d addresses fit the benchmark's underlay blocks; use fewer -apps or -replicas", b.apps*b.replicas, maxAddrs)
	}
	block := manualBlock
	if p.auto {
		block = autoBlock
	}
	a := b.lab.UnderlayV4.Masked().Addr().As4()
	a[2] += byte(block)
	return perflab.AddrRange(netip.AddrFrom4(a), n)
}

// createSource creates the phase's SpiderIPPool or SpiderSubnet on the
// underlay, with the lab's gateway.
func (b *bench) createSource(ctx context.Context, p phase) (client.Object, error) {
	ips, err := b.addresses(p)
	if err != nil {
		return nil, err
	}
	subnet, gw := b.lab.UnderlayV4.Masked().String(), b.lab.GatewayV4.String()
	var obj client.Object
	if p.auto {
		obj = &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: p.source()},
			Spec: v2beta1.SubnetSpec{Subnet: subnet, IPs: []string{ips}, Gateway: ptr.To(gw)}}
	} else {
		obj = &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p.source()},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: []string{ips}, Gateway: ptr.To(gw)}}
	}
	err = perflab.Retry(ctx, time.Minute, "create "+kindOf(obj)+" "+p.source(), func(ctx context.Context) error {
		return b.c.Create(ctx, obj.DeepCopyObject().(client.Object))
	})
	if err != nil {
		return nil, err
	}
	b.log("%s: %s %s over %s", p, kindOf(obj), p.source(), ips)
	return obj, nil
}

func kindOf(obj client.Object) string {
	if _, ok := obj.(*v2beta1.SpiderSubnet); ok {
		return "SpiderSubnet"
	}
	return "SpiderIPPool"
}

// deployment is application i of the phase.
func (b *bench) deployment(p phase, i int) *appsv1.Deployment {
	name := p.app(i)
	ann := map[string]string{}
	if p.auto {
		ann["ipam.spidernet.io/subnets"] = fmt.Sprintf(`[{"interface":%q,"ipv4":[%q]}]`, iface, p.source())
		ann["ipam.spidernet.io/ippool-ip-number"] = "+0"
	} else {
		ann["ipam.spidernet.io/ippool"] = fmt.Sprintf(`{"ipv4":[%q]}`, p.source())
	}
	pod := b.f.NewPod(b.ns, "", framework.PodOptions{Networks: b.ns + "/" + nadName, Annotations: ann})
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

// trackPools follows the carved pools of the namespace's applications with
// a watch (relisting when it ends) until ctx ends.
func (b *bench) trackPools(ctx context.Context, t *poolTracker) {
	sel := client.MatchingLabels{subnets.LabelAppNamespace: b.ns}
	for ctx.Err() == nil {
		list := &v2beta1.SpiderIPPoolList{}
		if err := b.c.List(ctx, list, sel); err != nil {
			time.Sleep(perflab.Poll)
			continue
		}
		now := time.Now()
		for i := range list.Items {
			t.observe(&list.Items[i], now)
		}
		w, err := b.c.Watch(ctx, &v2beta1.SpiderIPPoolList{}, sel, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			time.Sleep(perflab.Poll)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if pool, ok := ev.Object.(*v2beta1.SpiderIPPool); ok && ev.Type != watch.Deleted {
				t.observe(pool, time.Now())
			}
		}
		w.Stop()
	}
}

// run measures one phase: create the pool or subnet, the Deployments, wait
// until every pod runs, check the addresses, delete the Deployments and wait
// until nothing of them is left, then remove the pool or subnet.
func (b *bench) run(ctx context.Context, p phase) (phaseResult, error) {
	var res phaseResult
	want := p.apps * b.replicas
	source, err := b.createSource(ctx, p)
	if err != nil {
		return res, err
	}
	tctx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	pods := perflab.NewPodTracker(want)
	if err := b.trackPods(tctx, p, pods); err != nil {
		return res, err
	}
	pools := newPoolTracker(b.replicas)
	if p.auto {
		go b.trackPools(tctx, pools)
	}

	reconciles, reconcileSeconds := b.carveReconciles(ctx)
	created := make([]time.Time, p.apps)
	start := time.Now()
	err = perflab.ForEach(p.apps, createWorkers, func(i int) error {
		d := b.deployment(p, i)
		created[i] = time.Now()
		if err := b.c.Create(ctx, d); err != nil {
			return fmt.Errorf("failed to create Deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	b.log("%s: %d Deployments of %d replicas created in %.1f s", p, p.apps, b.replicas, time.Since(start).Seconds())
	if err := b.waitRunning(ctx, p, pods, pools, start); err != nil {
		return res, err
	}
	res.allRunning = pods.AllRunningAt().Sub(start)
	res.pods = want
	if p.auto {
		for i, at := range created {
			ready, ok := pools.ready(p.app(i))
			if !ok {
				return res, fmt.Errorf("failed to see the carved pool of Deployment %s/%s with %d addresses although its pods run", b.ns, p.app(i), b.replicas)
			}
			res.poolsReady = append(res.poolsReady, ready.Sub(at))
		}
		b.log("%s: all %d pools ready %.1f s after the first create; per Deployment p50 %.1f s, p99 %.1f s", p, p.apps,
			latest(pools, p, p.apps).Sub(start).Seconds(), perflab.Percentile(res.poolsReady, 50), perflab.Percentile(res.poolsReady, 99))
		if n, sec := b.carveReconciles(ctx); n > reconciles {
			b.log("%s: spindle-controller subnet-apps: %.0f reconciles until all pods ran, %.2f s each on average (they carve one at a time)",
				p, n-reconciles, (sec-reconcileSeconds)/(n-reconciles))
		}
	}
	b.log("%s: %d pods Running %.1f s after the first create", p, want, res.allRunning.Seconds())

	if err := b.check(ctx, p, &res); err != nil {
		return res, err
	}
	if res.sandboxFailures, err = perflab.SandboxFailures(ctx, b.cs, b.ns, p.String()+"-"); err != nil {
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
	what := "pods and claims"
	if p.auto {
		what = "pods, claims and carved pools"
	}
	b.log("%s: %s gone %.1f s after the first delete", p, what, res.deleted.Seconds())
	stopTracking()

	if err := b.c.Delete(ctx, source); err != nil && !apierrors.IsNotFound(err) {
		return res, fmt.Errorf("failed to delete %s %s: %w", kindOf(source), source.GetName(), err)
	}
	return res, perflab.WaitFor(ctx, 2*time.Minute, kindOf(source)+" "+source.GetName()+" gone", func(ctx context.Context) (bool, error) {
		err := b.c.Get(ctx, client.ObjectKeyFromObject(source), source.DeepCopyObject().(client.Object))
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}

func latest(t *poolTracker, p phase, apps int) time.Time {
	var last time.Time
	for i := range apps {
		if at, ok := t.ready(p.app(i)); ok && at.After(last) {
			last = at
		}
	}
	return last
}

// waitRunning waits until every pod of the phase runs, printing progress,
// and fails at once when a pod failed.
func (b *bench) waitRunning(ctx context.Context, p phase, pods *perflab.PodTracker, pools *poolTracker, start time.Time) error {
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
			extra := ""
			if p.auto {
				extra = fmt.Sprintf(", %d/%d pools ready", pools.count(), p.apps)
			}
			b.log("%s: %.0f s: %d pods, %d/%d Running%s", p, time.Since(start).Seconds(), present, running, want, extra)
		}
	}
}

// carveReconciles reads how many reconciles spindle-controller's
// subnet-apps controller has done and the seconds they took; zeros when its
// metrics cannot be read.
func (b *bench) carveReconciles(ctx context.Context) (count, seconds float64) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.metrics, nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0
	}
	count, _ = perflab.MetricSum(string(body), "controller_runtime_reconcile_time_seconds_count", `controller="subnet-apps"`)
	seconds, _ = perflab.MetricSum(string(body), "controller_runtime_reconcile_time_seconds_sum", `controller="subnet-apps"`)
	return count, seconds
}

// check counts the addresses held twice and the pods whose net1 address has
// no claim naming them in the pool they should come from.
func (b *bench) check(ctx context.Context, p phase, res *phaseResult) error {
	list, err := b.cs.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: phaseLabel + "=" + p.String()})
	if err != nil {
		return fmt.Errorf("failed to list the pods of %s: %w", p, err)
	}
	var claims v2beta1.SpiderIPClaimList
	if err := b.c.List(ctx, &claims); err != nil {
		return fmt.Errorf("failed to list SpiderIPClaims: %w", err)
	}
	byAddr := map[netip.Addr]*v2beta1.SpiderIPClaim{}
	for i := range claims.Items {
		if a, err := netip.ParseAddr(claims.Items[i].Spec.Address); err == nil {
			byAddr[a] = &claims.Items[i]
		}
	}
	held := map[string][]netip.Addr{}
	var bad []string
	running := 0
	for i := range list.Items {
		pod := &list.Items[i]
		if !perflab.PodRunning(pod) {
			continue
		}
		running++
		st, err := framework.InterfaceStatus(pod, iface)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		pool := p.source()
		if p.auto {
			pool = subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: b.ns, Name: pod.Labels["app"]}, iface, ranges.V4)
		}
		var v4 int
		for _, s := range st.IPs {
			a, err := netip.ParseAddr(s)
			if err != nil || !a.Is4() {
				continue
			}
			v4++
			held[pod.Name] = append(held[pod.Name], a)
			cl := byAddr[a]
			switch {
			case cl == nil:
				bad = append(bad, fmt.Sprintf("pod %s: %s %s has no SpiderIPClaim", pod.Name, iface, a))
			case cl.Spec.PodUID != string(pod.UID) || cl.Spec.Pool != pool:
				bad = append(bad, fmt.Sprintf("pod %s: the claim of %s %s names pod %s/%s (UID %s) in pool %s, want this pod in pool %s",
					pod.Name, iface, a, cl.Spec.PodNamespace, cl.Spec.PodName, cl.Spec.PodUID, cl.Spec.Pool, pool))
			}
		}
		if v4 != 1 {
			bad = append(bad, fmt.Sprintf("pod %s: %s has %d IPv4 addresses (%v), want 1", pod.Name, iface, v4, st.IPs))
		}
	}
	if running != p.apps*b.replicas {
		return fmt.Errorf("failed: %d pods of %s Running when checked, want %d", running, p, p.apps*b.replicas)
	}
	var examples []string
	res.duplicates, examples = perflab.Duplicates(held)
	res.claimMismatches = len(bad)
	b.log("%s: %d pods hold %d distinct net1 addresses; duplicates=%d, claim mismatches=%d", p, running, running-res.duplicates, res.duplicates, res.claimMismatches)
	for _, e := range append(examples[:min(5, len(examples))], bad[:min(5, len(bad))]...) {
		b.log("  %s", e)
	}
	return nil
}

// waitGone waits until no pod of the phase, no claim of its addresses and
// (auto) no carved pool is left.
func (b *bench) waitGone(ctx context.Context, p phase, pods *perflab.PodTracker) error {
	claimSel := []client.ListOption{client.Limit(1)}
	if !p.auto {
		claimSel = append(claimSel, client.MatchingLabels{v2beta1.LabelPool: p.source()})
	}
	return perflab.WaitFor(ctx, b.timeout, "the pods, claims and pools of "+p.String()+" gone", func(ctx context.Context) (bool, error) {
		if present, _ := pods.Counts(); present > 0 {
			return false, nil
		}
		// The lab is the benchmark's own: in the auto phase every claim
		// is one of its carved pools.
		var claims v2beta1.SpiderIPClaimList
		if err := b.c.List(ctx, &claims, claimSel...); err != nil {
			return false, err
		}
		if len(claims.Items) > 0 {
			return false, nil
		}
		if !p.auto {
			return true, nil
		}
		var pools v2beta1.SpiderIPPoolList
		if err := b.c.List(ctx, &pools, client.MatchingLabels{subnets.LabelAppNamespace: b.ns}, client.Limit(1)); err != nil {
			return false, err
		}
		return len(pools.Items) == 0, nil
	})
}
