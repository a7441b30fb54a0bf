package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/forward"
	"github.com/spindle-net/spindle/test/lab/shim"
	"github.com/spindle-net/spindle/test/lab/topology"
)

// Options shape one chaos run against a running lab.
type Options struct {
	Seed    int64
	Pods    int           // pod creations to reach
	Churn   time.Duration // the churn stops here even if Pods was not reached
	LabDir  string
	Repo    string
	Sample  time.Duration // period of the invariant samples during the churn
	Settle  time.Duration // bound of the wait for the final invariants
	Extra   time.Duration // one extra random fault per started Extra of churn (0: every kind once)
	Pending int           // creations pause while this many pods are not Running
	// ErrorRate is the share of the agent's API requests the proxy fails
	// during an api-errors window.
	ErrorRate float64
	// PodGrace is the grace period of the pods the node-loss fault deletes;
	// GCDelay the controller's --gc-terminating-pod-delay: the addresses of
	// a lost node's pods must be released within PodGrace+GCDelay+30 s.
	PodGrace int64
	GCDelay  time.Duration
	Log      io.Writer
}

// The pools' underlay blocks (172.30.180.x and .181.x, and the IPv6 /120s
// ::b4xx and ::b5xx): no e2e spec uses them.
const (
	blockA    = 180
	blockB    = 181
	poolSize  = 240
	proxyPort = 17443
)

// Result is what a run measured.
type Result struct {
	Seed                   int64
	Pods, Faults           int
	Violations             map[string][]string // by category, first ones first
	Reclaim                []time.Duration
	ReclaimBound           time.Duration
	Samples                int
	ProxyInjected, Proxied int64
	Elapsed                time.Duration
}

// Categories of violations, in the order of the summary line.
var Categories = []string{"duplicates", "lost", "leaked", "counter_drift", "dels_ok_but_held", "node_reclaim", "errors"}

// Line is the run's one-line summary.
func (r Result) Line() string {
	var maxS, p50 float64
	if len(r.Reclaim) > 0 {
		d := slices.Clone(r.Reclaim)
		slices.Sort(d)
		maxS = d[len(d)-1].Seconds()
		p50 = d[(len(d)-1)/2].Seconds()
	}
	return fmt.Sprintf("chaos: seed=%d pods=%d faults=%d duplicates=%d lost=%d leaked=%d counter_drift=%d dels_ok_but_held=%d node_reclaim_max_s=%.1f node_reclaim_p50_s=%.1f",
		r.Seed, r.Pods, r.Faults, len(r.Violations["duplicates"]), len(r.Violations["lost"]), len(r.Violations["leaked"]),
		len(r.Violations["counter_drift"]), len(r.Violations["dels_ok_but_held"]), maxS, p50)
}

// Failed reports any violation.
func (r Result) Failed() bool {
	for _, v := range r.Violations {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// Report prints the first violations of every category.
func (r Result) Report(w io.Writer) {
	for _, c := range Categories {
		v := r.Violations[c]
		for i, m := range v {
			if i == 5 {
				fmt.Fprintf(w, "  %s: ... and %d more\n", c, len(v)-5)
				break
			}
			fmt.Fprintf(w, "  %s: %s\n", c, m)
		}
	}
}

type run struct {
	o      Options
	cfg    config.Config
	state  config.State
	lab    *framework.Lab
	f      *framework.Framework
	c      client.Client
	rng    *rand.Rand
	ns     string
	pools  []string
	nets   [2]string // NetworkAttachmentDefinitions: net1 only, or net1 and net2
	proxy  *FaultProxy
	start  time.Time // of the run
	churn0 time.Time // of the churn: faults are planned from here
	faults atomic.Int64

	mu       sync.Mutex
	seen     map[string]bool // pod UIDs created
	viol     map[string][]string
	violSeen map[string]bool
	reclaim  []time.Duration
	samples  int
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "chaos: %6.1fs "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
}

func (r *run) snapshotViolations() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for k, v := range r.viol {
		out[k] = slices.Clone(v)
	}
	return out
}

func (r *run) violate(cat, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.violSeen[cat+"|"+msg] {
		return
	}
	r.violSeen[cat+"|"+msg] = true
	r.viol[cat] = append(r.viol[cat], msg)
}

// Run drives the churn and the faults on the lab in o.LabDir and checks the
// invariants; the error is for a run that could not be carried out.
func Run(ctx context.Context, o Options) (res Result, err error) {
	r := &run{o: o, rng: rand.New(rand.NewPCG(uint64(o.Seed), 0xc4a05)), start: time.Now(),
		seen: map[string]bool{}, viol: map[string][]string{}, violSeen: map[string]bool{}}
	res = Result{Seed: o.Seed, ReclaimBound: time.Duration(o.PodGrace)*time.Second + o.GCDelay + 30*time.Second}
	defer func() { res.Violations = r.snapshotViolations() }()
	if err := r.connect(); err != nil {
		return res, err
	}
	r.logf("seed %d, target %d pod creations, churn at most %s, lab %s (%d nodes)", o.Seed, o.Pods, o.Churn, o.LabDir, len(r.lab.Nodes))
	plan := PlanFaults(o.Seed, o.Churn, r.lab.Nodes, o.Extra)
	for _, f := range plan {
		r.logf("planned: %s", f)
	}
	restoreDaemons, err := r.prepareDaemons(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if err := restoreDaemons(); err != nil {
			r.violate("errors", "restoring the lab's daemons: "+err.Error())
		}
	}()
	if err := r.setup(ctx); err != nil {
		return res, err
	}
	defer r.cleanup()

	churnCtx, stopChurn := context.WithCancel(ctx)
	var wg sync.WaitGroup
	factory := informers.NewSharedInformerFactoryWithOptions(r.f.Client, 0, informers.WithNamespace(r.ns))
	podInf := factory.Core().V1().Pods().Informer()
	_, _ = podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			r.mu.Lock()
			r.seen[string(p.UID)] = true
			r.mu.Unlock()
		}
	}})
	infCtx, stopInf := context.WithCancel(ctx)
	defer stopInf()
	factory.Start(infCtx.Done())
	cache.WaitForCacheSync(infCtx.Done(), podInf.HasSynced)

	r.churn0 = time.Now()
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for _, f := range plan {
			select {
			case <-churnCtx.Done():
				return
			case <-time.After(time.Until(r.churn0.Add(f.At))):
			}
			if err := r.inject(churnCtx, f); err != nil {
				r.logf("fault %s: %v", f, err)
				if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
					r.violate("errors", fmt.Sprintf("fault %s: %v", f, err))
				}
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(o.Sample)
		defer t.Stop()
		for {
			select {
			case <-churnCtx.Done():
				return
			case <-t.C:
				r.sample(churnCtx)
			}
		}
	}()
	r.churn(churnCtx, podInf.GetStore())
	// Every planned fault runs, even when the pods were reached early.
	select {
	case <-faultsDone:
	case <-ctx.Done():
	}
	stopChurn()
	wg.Wait()
	r.mu.Lock()
	res.Pods = len(r.seen)
	r.mu.Unlock()
	res.Faults = int(r.faults.Load())
	r.logf("churn over: %d pods created, %d faults; restoring every process and settling", res.Pods, res.Faults)
	r.proxy.SetRate(0)
	if _, err := r.labCmd(ctx, "up"); err != nil {
		return res, err
	}
	r.settle(ctx)
	res.Reclaim = r.reclaim
	for _, d := range r.reclaim {
		if d > res.ReclaimBound {
			r.violate("node_reclaim", fmt.Sprintf("a lost node's pod kept its addresses %.1f s after its deletion, more than %s", d.Seconds(), res.ReclaimBound))
		}
	}
	res.Samples = r.samples
	res.ProxyInjected, res.Proxied = r.proxy.Injected.Load(), r.proxy.Passed.Load()
	res.Elapsed = time.Since(r.start)
	return res, nil
}

func (r *run) connect() error {
	dir, err := filepath.Abs(r.o.LabDir)
	if err != nil {
		return err
	}
	r.o.LabDir = dir
	st, err := config.LoadState(dir)
	if err != nil {
		return err
	}
	r.state, r.cfg = st, st.Config
	if r.lab, err = framework.LoadLab(r.cfg.EnvPath(), filepath.Join(r.o.Repo, "bin", "lab")); err != nil {
		return err
	}
	if r.lab == nil {
		return fmt.Errorf("failed to find the lab env %s: is the lab up?", r.cfg.EnvPath())
	}
	if r.f, err = framework.New(r.cfg.KubeconfigPath(), ""); err != nil {
		return err
	}
	r.f.Config.QPS, r.f.Config.Burst = 100, 200
	if r.c, err = r.f.SpindleClient(); err != nil {
		return err
	}
	return nil
}

// labCmd runs bin/lab on the run's lab.
func (r *run) labCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.lab.Bin, append([]string{"--dir", r.o.LabDir}, args...)...)
	cmd.Env = append(os.Environ(), "LAB_DIR="+r.o.LabDir, "LAB_PREFIX="+r.cfg.Prefix)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("failed to run lab %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func agentProc(node string) string { return "daemon-" + node + "-agent" }

// prepareDaemons restarts the lab's daemons with short garbage-collection
// periods (so that the final checks need not wait ten minutes) and points
// the first node's agent at the fault proxy; the returned function puts
// the recorded daemons back.
func (r *run) prepareDaemons(ctx context.Context) (func() error, error) {
	spec := func(d config.DaemonSpec, extra ...string) string {
		return strings.Join(append(append([]string{d.Name + "=" + d.Path}, d.Args...), extra...), ",")
	}
	var chaosArgs, plainArgs []string
	for _, d := range r.state.NodeDaemons {
		var extra []string
		if d.Name == "agent" {
			extra = []string{"--gc-interval=20s"}
		}
		chaosArgs = append(chaosArgs, "--node-daemon", spec(d, extra...))
		plainArgs = append(plainArgs, "--node-daemon", spec(d))
	}
	for _, d := range r.state.ClusterDaemons {
		var extra []string
		if d.Name == "controller" {
			extra = []string{"--gc-interval=15s", fmt.Sprintf("--gc-terminating-pod-delay=%s", r.o.GCDelay)}
		}
		chaosArgs = append(chaosArgs, "--cluster-daemon", spec(d, extra...))
		plainArgs = append(plainArgs, "--cluster-daemon", spec(d))
	}
	if !slices.ContainsFunc(r.state.NodeDaemons, func(d config.DaemonSpec) bool { return d.Name == "agent" }) ||
		!slices.ContainsFunc(r.state.ClusterDaemons, func(d config.DaemonSpec) bool { return d.Name == "controller" }) {
		return nil, fmt.Errorf("the lab in %s runs no agent or no controller daemon (start it with make lab-up)", r.o.LabDir)
	}
	node := r.lab.Nodes[0]
	kc, err := r.startProxy(node)
	if err != nil {
		return nil, err
	}
	if _, err := r.labCmd(ctx, "node", "env", node, "KUBECONFIG="+kc); err != nil {
		return nil, err
	}
	if _, err := r.labCmd(ctx, append([]string{"up"}, chaosArgs...)...); err != nil {
		return nil, err
	}
	r.logf("daemons restarted with short GC periods; the agent of %s talks to the API server through the fault proxy", node)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := r.labCmd(ctx, "node", "env", node); err != nil {
			return err
		}
		_, err := r.labCmd(ctx, append([]string{"up"}, plainArgs...)...)
		return err
	}, nil
}

// startProxy serves the fault proxy inside node's network namespace (with
// the API server's own certificate, so the lab's CA vouches for it) and
// writes a kubeconfig that points at it.
func (r *run) startProxy(node string) (string, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(r.cfg.PKIDir(), "apiserver.crt"), filepath.Join(r.cfg.PKIDir(), "apiserver.key"))
	if err != nil {
		return "", fmt.Errorf("failed to load the API server certificate for the fault proxy: %w", err)
	}
	upstream, err := url.Parse(r.cfg.APIServerURL())
	if err != nil {
		return "", err
	}
	transport, err := rest.TransportFor(r.f.Config)
	if err != nil {
		return "", err
	}
	r.proxy = NewFaultProxy(upstream, transport, r.o.Seed)
	addr := "127.0.0.1:" + strconv.Itoa(proxyPort)
	ln, err := forward.ListenInNetns(topology.NetnsPath(r.cfg.NodeNetns(node)), addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: r.proxy, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	kc, err := clientcmd.LoadFromFile(r.cfg.KubeconfigPath())
	if err != nil {
		return "", err
	}
	for _, c := range kc.Clusters {
		c.Server = "https://" + addr
	}
	path := filepath.Join(r.o.LabDir, "chaos-agent-kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

func (r *run) setup(ctx context.Context) error {
	ns, err := r.f.CreateNamespace(ctx, "chaos")
	if err != nil {
		return err
	}
	r.ns = ns.Name
	sfx := framework.RandSuffix(4)
	for i, block := range []int{blockA, blockB} {
		name := fmt.Sprintf("chaos-%s-%c", sfx, 'a'+i)
		v4s, v4e, err := r.lab.UnderlaySliceV4(block, poolSize)
		if err != nil {
			return err
		}
		v6s, v6e, err := r.lab.UnderlaySliceV6(block, poolSize)
		if err != nil {
			return err
		}
		for _, p := range []struct {
			name       string
			subnet, gw string
			start, end string
		}{{name + "-v4", r.lab.UnderlayV4.Masked().String(), r.lab.GatewayV4.String(), v4s.String(), v4e.String()},
			{name + "-v6", r.lab.UnderlayV6.Masked().String(), r.lab.GatewayV6.String(), v6s.String(), v6e.String()}} {
			pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p.name}, Spec: v2beta1.IPPoolSpec{
				Subnet: p.subnet, IPs: []string{p.start + "-" + p.end}, Gateway: ptr.To(p.gw)}}
			if err := r.c.Create(ctx, pool); err != nil {
				return fmt.Errorf("failed to create pool %s: %w", p.name, err)
			}
			r.pools = append(r.pools, p.name)
		}
		conf := framework.SpiderpoolMacvlanConfig(name, r.lab.UnderlayIf, map[string]any{
			"default_ipv4_ippool": []string{name + "-v4"}, "default_ipv6_ippool": []string{name + "-v6"}})
		if _, err := r.f.CreateNAD(ctx, r.ns, name, conf); err != nil {
			return err
		}
		r.nets[i] = name
	}
	for i := range 3 {
		if _, err := r.f.Client.AppsV1().Deployments(r.ns).Create(ctx, r.deployment(i), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("failed to create a Deployment: %w", err)
		}
	}
	for i := range 2 {
		if _, err := r.f.Client.AppsV1().StatefulSets(r.ns).Create(ctx, r.statefulSet(i), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("failed to create a StatefulSet: %w", err)
		}
	}
	r.logf("namespace %s, pools %v, networks %v", r.ns, r.pools, r.nets)
	return nil
}

// cleanup deletes what the run created and checks that the deletion of
// every pod released every address.
func (r *run) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if r.ns != "" {
		if err := r.f.DeleteNamespace(ctx, r.ns); err != nil {
			r.violate("errors", err.Error())
		}
		var left []Claim
		deadline := time.Now().Add(r.o.Settle)
		for {
			claims, err := r.claims(ctx)
			if err == nil {
				left = claims
				if len(left) == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				for _, c := range left {
					r.violate("leaked", c.String()+": still there after the namespace was deleted")
				}
				break
			}
			time.Sleep(2 * time.Second)
		}
	}
	for _, p := range r.pools {
		if err := r.c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p}}); err != nil && !apierrors.IsNotFound(err) {
			r.violate("errors", fmt.Sprintf("failed to delete pool %s: %v", p, err))
		}
	}
}

func (r *run) networks(multi bool) string {
	if multi {
		return r.ns + "/" + r.nets[0] + "," + r.ns + "/" + r.nets[1]
	}
	return r.ns + "/" + r.nets[0]
}

func (r *run) podTemplate(app string, multi bool) corev1.PodTemplateSpec {
	p := r.f.NewPod(r.ns, "", framework.PodOptions{Networks: r.networks(multi)})
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: p.Annotations}, Spec: p.Spec}
}

func (r *run) deployment(i int) *appsv1.Deployment {
	name := fmt.Sprintf("dep-%d", i)
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](2),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: r.podTemplate(name, i == 0),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
	}}
}

func (r *run) statefulSet(i int) *appsv1.StatefulSet {
	name := fmt.Sprintf("sts-%d", i)
	return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.StatefulSetSpec{
		Replicas:            ptr.To[int32](2),
		Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template:            r.podTemplate(name, i == 0),
		ServiceName:         name,
		PodManagementPolicy: appsv1.ParallelPodManagement,
	}}
}

// churn runs seeded actions until o.Pods pods were created or o.Churn
// passed.
func (r *run) churn(ctx context.Context, store cache.Store) {
	deadline := r.churn0.Add(r.o.Churn)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		r.mu.Lock()
		created := len(r.seen)
		r.mu.Unlock()
		if created >= r.o.Pods {
			return
		}
		pending := 0
		for _, obj := range store.List() {
			if p := obj.(*corev1.Pod); p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
				pending++
			}
		}
		n := r.rng.IntN(100)
		grow := pending < r.o.Pending
		var err error
		switch {
		case n < 20:
			err = r.scale(ctx, "deployments", fmt.Sprintf("dep-%d", r.rng.IntN(3)), r.rng.IntN(9), grow)
		case n < 30:
			err = r.scale(ctx, "statefulsets", fmt.Sprintf("sts-%d", r.rng.IntN(2)), r.rng.IntN(5), grow)
		case n < 40:
			err = r.deleteOne(ctx, store, "sts-", r.rng.IntN(2) == 0)
		case n < 50:
			err = r.deleteOne(ctx, store, "dep-", true)
		case n < 85:
			if grow {
				err = r.barePod(ctx, store, fmt.Sprintf("bare-%d", r.rng.IntN(24)), r.rng.IntN(3) == 0)
			}
		default:
			err = r.deleteOne(ctx, store, "bare-", true)
		}
		if err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
			r.logf("churn: %v", err) // the API server may be down: a fault
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(30+r.rng.IntN(90)) * time.Millisecond):
		}
	}
}

func (r *run) scale(ctx context.Context, kind, name string, n int, grow bool) error {
	cur, err := r.f.Client.AppsV1().Deployments(r.ns).GetScale(ctx, name, metav1.GetOptions{})
	if kind == "statefulsets" {
		cur, err = r.f.Client.AppsV1().StatefulSets(r.ns).GetScale(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	if int32(n) > cur.Spec.Replicas && !grow {
		return nil
	}
	cur.Spec.Replicas = int32(n)
	if kind == "statefulsets" {
		_, err = r.f.Client.AppsV1().StatefulSets(r.ns).UpdateScale(ctx, name, cur, metav1.UpdateOptions{})
	} else {
		_, err = r.f.Client.AppsV1().Deployments(r.ns).UpdateScale(ctx, name, cur, metav1.UpdateOptions{})
	}
	return err
}

// deleteOne deletes a random pod whose name starts with prefix; force is a
// deletion with grace 0, as `kubectl delete --force --grace-period=0`.
func (r *run) deleteOne(ctx context.Context, store cache.Store, prefix string, force bool) error {
	var cands []*corev1.Pod
	for _, obj := range store.List() {
		if p := obj.(*corev1.Pod); strings.HasPrefix(p.Name, prefix) && p.DeletionTimestamp == nil {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Name < cands[j].Name })
	p := cands[r.rng.IntN(len(cands))]
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}}
	if force {
		opts.GracePeriodSeconds = ptr.To[int64](0)
	}
	err := r.f.Client.CoreV1().Pods(r.ns).Delete(ctx, p.Name, opts)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// barePod creates pod name, or, when a pod of that name exists,
// force-deletes it and creates the name again at once.
func (r *run) barePod(ctx context.Context, store cache.Store, name string, multi bool) error {
	if obj, ok, _ := store.GetByKey(r.ns + "/" + name); ok {
		old := obj.(*corev1.Pod)
		err := r.f.Client.CoreV1().Pods(r.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &old.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	p := r.f.NewPod(r.ns, name, framework.PodOptions{Networks: r.networks(multi)})
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	_, err := r.f.Client.CoreV1().Pods(r.ns).Create(ctx, p, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// inject carries out one fault and returns once the lab is whole again.
func (r *run) inject(ctx context.Context, f Fault) error {
	r.logf("fault: %s", f)
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	killAndUp := func(name string) error {
		if _, err := r.labCmd(ctx, "kill", name); err != nil {
			return err
		}
		r.faults.Add(1)
		sleep(f.Delay)
		// The scheduler and the controller-manager give up their leases
		// and exit when the API server stays away too long, sometimes
		// while lab up is already checking them; lab up starts whatever
		// is not running, as a node's supervisor would, so it gets a few
		// tries.
		var err error
		for try := 1; try <= 3; try++ {
			if _, err = r.labCmd(context.WithoutCancel(ctx), "up"); err == nil {
				return nil
			}
			first, _, _ := strings.Cut(err.Error(), "\n")
			r.logf("lab up after %s, try %d: %s", name, try, first)
		}
		return err
	}
	switch f.Kind {
	case FaultAgent:
		return killAndUp(agentProc(f.Node))
	case FaultController:
		return killAndUp("daemon-controller")
	case FaultAPIServer:
		return killAndUp("kube-apiserver")
	case FaultEtcd:
		return killAndUp("etcd")
	case FaultAPIErrors:
		before := r.proxy.Injected.Load()
		r.proxy.SetRate(r.o.ErrorRate)
		r.faults.Add(1)
		sleep(f.Delay)
		r.proxy.SetRate(0)
		r.logf("the fault proxy failed %d requests of the agent", r.proxy.Injected.Load()-before)
		return nil
	case FaultCNIAdd:
		return r.killCNIAdd(ctx)
	case FaultNodeLoss:
		return r.nodeLoss(ctx, f.Node)
	}
	return fmt.Errorf("unknown fault kind %q", f.Kind)
}

// killCNIAdd waits for a spiderpool plugin process running an ADD and
// SIGKILLs it.
func (r *run) killCNIAdd(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
			if err != nil || strings.TrimSpace(string(comm)) != "spiderpool" {
				continue
			}
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err != nil {
				continue
			}
			vars := strings.Split(string(env), "\x00")
			if !slices.Contains(vars, "CNI_COMMAND=ADD") || !slices.ContainsFunc(vars, func(v string) bool {
				return strings.HasPrefix(v, "CNI_NETNS="+topology.NetnsPath(r.cfg.PodNetnsPrefix()))
			}) {
				continue // another command, or another lab's plugin
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				r.faults.Add(1)
				r.logf("killed a spiderpool plugin in the middle of an ADD (pid %d)", pid)
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ctx.Err() == nil {
		r.logf("no spiderpool ADD ran within 60 s: the plugin kill was not injected")
	}
	return ctx.Err()
}

// nodeLoss stops node's shim (heartbeats stop, the node goes NotReady after
// the node-monitor grace), deletes the pods that run there as an eviction
// would, measures until no claim names each of them, and starts the shim
// again.
func (r *run) nodeLoss(ctx context.Context, node string) error {
	// Pods of its own on the node, so that there is something to reclaim.
	for i := range 3 {
		p := r.f.NewPod(r.ns, fmt.Sprintf("lost-%d", i), framework.PodOptions{Node: node, Networks: r.networks(i == 0)})
		p.Spec.TerminationGracePeriodSeconds = ptr.To(r.o.PodGrace)
		if _, err := r.f.Client.CoreV1().Pods(r.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	var victims []corev1.Pod
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for wctx.Err() == nil {
		list, err := r.f.Client.CoreV1().Pods(r.ns).List(wctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
		if err == nil {
			victims = victims[:0]
			lost := 0
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && !ownedBy(&p, "StatefulSet") {
					victims = append(victims, p)
					if strings.HasPrefix(p.Name, "lost-") {
						lost++
					}
				}
			}
			if lost == 3 {
				break
			}
		}
		time.Sleep(time.Second)
	}
	if _, err := r.labCmd(ctx, "node", "stop", node); err != nil {
		return err
	}
	r.faults.Add(1)
	defer func() {
		if _, err := r.labCmd(context.WithoutCancel(ctx), "node", "start", node); err != nil {
			r.violate("errors", err.Error())
		}
	}()
	stopped := time.Now()
	for {
		n, err := r.f.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil && !framework.NodeReady(n) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(stopped) > 60*time.Second {
			return fmt.Errorf("node %s still Ready 60 s after its shim stopped", node)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.logf("%s NotReady %.1f s after its shim stopped; deleting its %d pods", node, time.Since(stopped).Seconds(), len(victims))
	deleted := map[string]time.Time{}
	for _, p := range victims {
		err := r.f.Client.CoreV1().Pods(r.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(r.o.PodGrace), Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err == nil {
			deleted[string(p.UID)] = time.Now()
		}
	}
	bound := time.Duration(r.o.PodGrace)*time.Second + r.o.GCDelay + 30*time.Second
	first := time.Now()
	for len(deleted) > 0 && time.Since(first) < bound+15*time.Second {
		time.Sleep(time.Second)
		claims, err := r.claims(ctx)
		if err != nil {
			continue
		}
		held := map[string]bool{}
		for _, c := range claims {
			held[c.PodUID] = true
		}
		for uid, t := range deleted {
			if !held[uid] {
				r.mu.Lock()
				r.reclaim = append(r.reclaim, time.Since(t))
				r.mu.Unlock()
				delete(deleted, uid)
			}
		}
	}
	for uid, t := range deleted {
		r.mu.Lock()
		r.reclaim = append(r.reclaim, time.Since(t))
		r.mu.Unlock()
		r.violate("node_reclaim", fmt.Sprintf("pod uid %s on lost node %s: claims still there %.0f s after its deletion", uid, node, time.Since(t).Seconds()))
	}
	r.logf("%s: reclaim of its pods measured; starting its shim", node)
	return nil
}

func ownedBy(p *corev1.Pod, kind string) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

// claims lists the claims of the run's pools.
func (r *run) claims(ctx context.Context) ([]Claim, error) {
	var list v2beta1.SpiderIPClaimList
	if err := r.c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []Claim
	for _, c := range list.Items {
		if slices.Contains(r.pools, c.Spec.Pool) {
			out = append(out, Claim{Name: c.Name, Pool: c.Spec.Pool, Address: c.Spec.Address, PodUID: c.Spec.PodUID,
				PodNamespace: c.Spec.PodNamespace, PodName: c.Spec.PodName, OwnerKind: c.Spec.OwnerKind})
		}
	}
	return out, nil
}

// snapshot reads the truth: pods, the addresses inside their network
// namespaces, claims, and the pods again.
func (r *run) snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{Live: map[string]PodView{}, Exists: map[string]bool{}, Addrs: map[string][]AddrOn{}}
	before, err := r.f.Client.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	running := map[string]PodView{}
	for _, p := range before.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		uid := string(p.UID)
		running[uid] = PodView{Namespace: p.Namespace, Name: p.Name, UID: uid, Node: p.Spec.NodeName}
		addrs, err := readAddrs(topology.NetnsPath(r.cfg.PodNetns(p.Namespace, p.Name, uid)), []string{"net1", "net2"})
		if err == nil {
			s.Addrs[uid] = addrs
		}
	}
	if s.Claims, err = r.claims(ctx); err != nil {
		return s, err
	}
	after, err := r.f.Client.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return s, err
	}
	for _, p := range after.Items {
		uid := string(p.UID)
		s.Exists[uid] = true
		if v, ok := running[uid]; ok && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			s.Live[uid] = v
		}
	}
	return s, nil
}

// dels reads every node's CNI DEL journal.
func (r *run) dels() []shim.DelRecord {
	var out []shim.DelRecord
	for _, n := range r.lab.Nodes {
		f, err := os.Open(r.cfg.NodeCNIJournal(n))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var d shim.DelRecord
			if json.Unmarshal(sc.Bytes(), &d) == nil && !d.Time.Before(r.start) {
				out = append(out, d)
			}
		}
		f.Close()
	}
	return out
}

// sample checks the invariants that must hold at every moment.
func (r *run) sample(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := r.snapshot(sctx)
	if err != nil {
		return // the API server may be down: a fault
	}
	r.mu.Lock()
	r.samples++
	r.mu.Unlock()
	for _, m := range Duplicates(s) {
		r.violate("duplicates", m)
	}
	for _, m := range Lost(s) {
		r.violate("lost", m)
	}
	for _, m := range HeldAfterDel(r.dels(), s.Claims, s.Exists, time.Now(), 15*time.Second) {
		r.violate("dels_ok_but_held", m)
	}
}

// settle waits for every pod to run, then checks the final invariants,
// retrying the eventually consistent ones (collector, counters,
// SpiderEndpoints) up to o.Settle.
func (r *run) settle(ctx context.Context) {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := r.f.Client.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			notReady := 0
			for _, p := range list.Items {
				if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
					notReady++
				}
			}
			if notReady == 0 {
				r.logf("all %d pods run", len(list.Items))
				break
			}
		}
		time.Sleep(2 * time.Second)
	}
	r.sample(ctx)
	var last map[string][]string
	deadline = time.Now().Add(r.o.Settle)
	for {
		last = map[string][]string{}
		s, err := r.snapshot(ctx)
		if err != nil {
			last["errors"] = []string{"final snapshot: " + err.Error()}
		} else {
			last["leaked"] = Leaked(s.Claims, s.Exists)
			var pl v2beta1.SpiderIPPoolList
			var el v2beta1.SpiderEndpointList
			if err := r.c.List(ctx, &pl); err == nil {
				var pools []PoolView
				for _, p := range pl.Items {
					if slices.Contains(r.pools, p.Name) {
						pools = append(pools, PoolView{Name: p.Name, Allocated: p.Status.AllocatedIPCount})
					}
				}
				last["counter_drift"] = CounterDrift(pools, s.Claims)
			}
			if err := r.c.List(ctx, &el, client.InNamespace(r.ns)); err == nil {
				var eps []EndpointView
				for _, e := range el.Items {
					v := EndpointView{Namespace: e.Namespace, Name: e.Name, UID: e.Status.Current.UID}
					for _, d := range e.Status.Current.IPs {
						for _, a := range []*string{d.IPv4, d.IPv6} {
							if a != nil {
								v.Addrs = append(v.Addrs, *a)
							}
						}
					}
					eps = append(eps, v)
				}
				last["counter_drift"] = append(last["counter_drift"], EndpointDrift(s.Live, eps, s.Claims)...)
			}
			last["dels_ok_but_held"] = HeldAfterDel(r.dels(), s.Claims, s.Exists, time.Now(), 0)
		}
		clean := true
		for _, v := range last {
			clean = clean && len(v) == 0
		}
		if clean || time.Now().After(deadline) {
			break
		}
		time.Sleep(3 * time.Second)
	}
	for cat, msgs := range last {
		for _, m := range msgs {
			r.violate(cat, m)
		}
	}
	r.logf("final checks done")
}
