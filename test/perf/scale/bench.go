package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/test/kubeapi"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

const inFlight = 32

type bench struct {
	claimCounts, agentCounts          []int
	allocs, reps                      int
	agentBin, plot, jsonOut, baseline string
	only                              string
	root                              string
	env                               *kubeapi.Env
	k                                 client.Client
	ctx                               context.Context
	apiPID                            int
	res                               results
	base                              *results
	claimsMade                        int
}

// results is what one run measured (also the JSON file and the baseline).
type results struct {
	Note string     `json:"note,omitempty"`
	RSS  []rssPoint `json:"rss"`
	CPU  []cpuPoint `json:"cpu"`
}

// rssPoint: one agent process with Claims claims in the cluster, all in
// pools its node may use (Eligible) or all in pools it may not.
type rssPoint struct {
	Claims   int     `json:"claims"`
	Eligible bool    `json:"eligible"`
	RSSMiB   float64 `json:"rss_mib"`
	PeakMiB  float64 `json:"peak_mib"`
	ReadyS   float64 `json:"ready_s"`
	CPUS     float64 `json:"cpu_s"`
}

// cpuPoint: API server CPU per allocation with Agents agents watching.
type cpuPoint struct {
	Agents         int     `json:"agents"`
	CPUMsPerAlloc  float64 `json:"apiserver_cpu_ms_per_alloc"`
	EventsPerAlloc float64 `json:"claim_watch_events_per_alloc"`
	AllocsPerS     float64 `json:"allocs_per_s"`
}

func (r *results) rss(claims int, eligible bool) (rssPoint, bool) {
	for _, p := range r.RSS {
		if p.Claims == claims && p.Eligible == eligible {
			return p, true
		}
	}
	return rssPoint{}, false
}

func (r *results) cpu(agents int) (cpuPoint, bool) {
	for _, p := range r.CPU {
		if p.Agents == agents {
			return p, true
		}
	}
	return cpuPoint{}, false
}

// cpuRatio is the CPU per allocation of the most agents over the fewest.
func (r *results) cpuRatio() float64 {
	if len(r.CPU) < 2 || r.CPU[0].CPUMsPerAlloc == 0 {
		return 0
	}
	return r.CPU[len(r.CPU)-1].CPUMsPerAlloc / r.CPU[0].CPUMsPerAlloc
}

func (b *bench) summary() string {
	var s strings.Builder
	maxClaims := 0
	if n := len(b.claimCounts); n > 0 {
		maxClaims = b.claimCounts[n-1]
	}
	fmt.Fprintf(&s, "bench_scale: claims=%d", maxClaims)
	kv := func(k string, v float64, ok bool) {
		if ok {
			fmt.Fprintf(&s, " %s=%.1f", k, v)
		}
	}
	other, ok1 := b.res.rss(maxClaims, false)
	elig, ok2 := b.res.rss(maxClaims, true)
	// agent_rss_mib: the larger of the two placements.
	kv("agent_rss_mib", max(other.RSSMiB, elig.RSSMiB), ok1 || ok2)
	kv("agent_rss_mib_eligible", elig.RSSMiB, ok2)
	kv("agent_rss_mib_other_pools", other.RSSMiB, ok1)
	kv("agent_ready_s_eligible", elig.ReadyS, ok2)
	var agents []string
	for _, p := range b.res.CPU {
		agents = append(agents, fmt.Sprint(p.Agents))
	}
	fmt.Fprintf(&s, " agents=%s apiserver_cpu_per_alloc_ratio=%.2f", strings.Join(agents, ","), b.res.cpuRatio())
	for _, p := range b.res.CPU {
		fmt.Fprintf(&s, " apiserver_cpu_ms_per_alloc_%d=%.2f", p.Agents, p.CPUMsPerAlloc)
	}
	if b.base != nil {
		o, ok1 := b.base.rss(maxClaims, false)
		e, ok2 := b.base.rss(maxClaims, true)
		kv("before_agent_rss_mib", max(o.RSSMiB, e.RSSMiB), ok1 || ok2)
		if r := b.base.cpuRatio(); r > 0 {
			fmt.Fprintf(&s, " before_apiserver_cpu_per_alloc_ratio=%.2f", r)
		}
	}
	return s.String()
}

func (b *bench) run() error {
	ctrllog.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard()) // informers of stopped agents log their cancelled watches
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ctx = ctx
	var err error
	if b.root, err = kubeapi.RepoRoot(); err != nil {
		return err
	}
	if b.baseline != "" {
		raw, err := os.ReadFile(b.path(b.baseline))
		if err != nil {
			return fmt.Errorf("failed to read the baseline: %w", err)
		}
		b.base = &results{}
		if err := json.Unmarshal(raw, b.base); err != nil {
			return fmt.Errorf("failed to parse the baseline %q: %w", b.baseline, err)
		}
	}
	env, k, err := perflab.StartAPIServer(agent.Scheme())
	if err != nil {
		return err
	}
	defer env.Stop() //nolint:errcheck
	b.env, b.k = env, k
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		return err
	}
	if b.apiPID, err = findProcess("--secure-port=" + u.Port()); err != nil {
		return err
	}
	if b.only == "" || b.only == "w" {
		if err := b.watchers(); err != nil {
			return fmt.Errorf("(w): %w", err)
		}
	}
	if b.only == "" || b.only == "r" {
		if err := b.memory(); err != nil {
			return fmt.Errorf("(r): %w", err)
		}
	}
	b.table()
	if b.jsonOut != "" {
		raw, _ := json.MarshalIndent(b.res, "", "  ")
		if err := os.MkdirAll(filepath.Dir(b.path(b.jsonOut)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(b.path(b.jsonOut), append(raw, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Printf("results written to %s\n", b.jsonOut)
	}
	if b.plot != "" {
		if err := writePlot(b.path(b.plot), &b.res, b.base); err != nil {
			return err
		}
		fmt.Printf("plot written to %s\n", b.plot)
	}
	return nil
}

func (b *bench) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(b.root, p)
}

func (b *bench) table() {
	fmt.Println()
	fmt.Printf("%-62s %10s", "result", "value")
	if b.base != nil {
		fmt.Printf(" %10s", "before")
	}
	fmt.Println()
	row := func(k string, v, before float64, hasBefore bool) {
		fmt.Printf("%-62s %10.2f", k, v)
		if hasBefore {
			fmt.Printf(" %10.2f", before)
		}
		fmt.Println()
	}
	for _, p := range b.res.RSS {
		where := "pools of other nodes"
		if p.Eligible {
			where = "pools of its node"
		}
		var old rssPoint
		ok := false
		if b.base != nil {
			old, ok = b.base.rss(p.Claims, p.Eligible)
		}
		row(fmt.Sprintf("(r) agent RSS MiB, %d claims in %s", p.Claims, where), p.RSSMiB, old.RSSMiB, ok)
		row(fmt.Sprintf("(r) agent start to ready s, %d claims in %s", p.Claims, where), p.ReadyS, old.ReadyS, ok)
	}
	for _, p := range b.res.CPU {
		var old cpuPoint
		ok := false
		if b.base != nil {
			old, ok = b.base.cpu(p.Agents)
		}
		row(fmt.Sprintf("(w) API server CPU ms per allocation, %d agents", p.Agents), p.CPUMsPerAlloc, old.CPUMsPerAlloc, ok)
		row(fmt.Sprintf("(w) claim watch events per allocation, %d agents", p.Agents), p.EventsPerAlloc, old.EventsPerAlloc, ok)
	}
	if b.base != nil {
		row("(w) CPU per allocation, most agents / fewest", b.res.cpuRatio(), b.base.cpuRatio(), true)
	} else {
		row("(w) CPU per allocation, most agents / fewest", b.res.cpuRatio(), 0, false)
	}
}

// parallel runs f(i) for i in [0,n) with `workers` goroutines and returns
// the elapsed time and the first error.
func parallel(n, workers int, f func(i int) error) (time.Duration, error) {
	start := time.Now()
	err := perflab.ForEach(n, workers, f)
	return time.Since(start), err
}

func (b *bench) ensure(obj client.Object) error {
	err := b.k.Create(b.ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (b *bench) pool(name, subnet string, nodes ...string) error {
	return b.ensure(&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: []string{strings.Replace(subnet, "0.0/16", "0.1", 1) + "-" + strings.Replace(subnet, "0.0/16", "255.254", 1)}, NodeName: nodes}})
}

// apiCPU returns the API server's CPU time so far and the SpiderIPClaim
// watch events it has sent.
func (b *bench) apiCPU() (time.Duration, float64, error) {
	cpu, err := cpuTime(b.apiPID)
	if err != nil {
		return 0, 0, err
	}
	cs, err := kubernetes.NewForConfig(b.env.Config)
	if err != nil {
		return 0, 0, err
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(b.ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read the API server's metrics: %w", err)
	}
	events, _ := perflab.MetricSum(string(raw), "apiserver_watch_events_total", `resource="spideripclaims"`)
	return cpu, events, nil
}

// (w) API server CPU per allocation with more and more agents watching.
func (b *bench) watchers() error {
	const ns, pool, allocNode = "scale-w", "scale-w", "alloc-0"
	fmt.Printf("\n## (w) API server CPU per allocation: %v agents watching (one allocating from pool %s, which only its node may use), %d allocations per repetition, %d in flight\n",
		b.agentCounts, pool, b.allocs, inFlight)
	if err := b.ensure(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if err := b.pool(pool, "10.62.0.0/16", allocNode); err != nil {
		return err
	}
	// The other agents' nodes have a pool of their own.
	if err := b.pool("scale-w-others", "10.63.0.0/16"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	var agents []*agent.Agent
	for _, n := range b.agentCounts {
		t0 := time.Now()
		for len(agents) < n {
			node := allocNode
			if len(agents) > 0 {
				node = fmt.Sprintf("watch-%d", len(agents))
			}
			if err := b.ensure(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
				return err
			}
			a, err := agent.New(b.env.Config, agent.Config{NodeName: node, EnableIPv4: true, EnableStatefulSet: true, GCInterval: time.Hour})
			if err != nil {
				return err
			}
			if err := a.Start(ctx); err != nil {
				return err
			}
			agents = append(agents, a)
		}
		fmt.Printf("%d agents started and synced (%v)\n", n, time.Since(t0).Round(time.Millisecond))
		var perAlloc, events, rates []float64
		for r := 0; r < b.reps; r++ {
			cpu, ev, rate, err := b.allocRep(agents[0], ns, pool, fmt.Sprintf("p%d-%d", n, r))
			if err != nil {
				return err
			}
			perAlloc, events, rates = append(perAlloc, cpu), append(events, ev), append(rates, rate)
		}
		p := cpuPoint{Agents: n, CPUMsPerAlloc: perflab.Median(perAlloc), EventsPerAlloc: perflab.Median(events), AllocsPerS: perflab.Median(rates)}
		b.res.CPU = append(b.res.CPU, p)
		fmt.Printf("%d agents: median %.2f ms API server CPU and %.1f claim watch events per allocation, %.0f allocations/s\n",
			n, p.CPUMsPerAlloc, p.EventsPerAlloc, p.AllocsPerS)
	}
	return nil
}

// allocRep allocates b.allocs addresses through a's ADD path and returns
// the API server's CPU milliseconds and claim watch events per allocation
// (from before the first ADD until every SpiderEndpoint is written).
func (b *bench) allocRep(a *agent.Agent, ns, pool, tag string) (float64, float64, float64, error) {
	pods := make([]*corev1.Pod, b.allocs)
	if _, err := parallel(b.allocs, inFlight, func(i int) error {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", tag, i)},
			Spec: corev1.PodSpec{NodeName: a.NodeName(), Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
		pods[i] = p
		return b.k.Create(b.ctx, p)
	}); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(2 * time.Second) // the pod events settle outside the measured part
	cpu0, ev0, err := b.apiCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	took, err := parallel(b.allocs, inFlight, func(i int) error {
		_, err := a.Add(b.ctx, podReq(pods[i], pool))
		return err
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("allocation failed: %w", err)
	}
	if err := b.waitEndpoints(ns, b.allocs); err != nil {
		return 0, 0, 0, err
	}
	cpu1, ev1, err := b.apiCPU()
	if err != nil {
		return 0, 0, 0, err
	}
	ms := float64(cpu1-cpu0) / float64(time.Millisecond) / float64(b.allocs)
	ev := (ev1 - ev0) / float64(b.allocs)
	rate := float64(b.allocs) / took.Seconds()
	fmt.Printf("rep %s: %d ADDs in %v (%.0f/s), API server CPU %v = %.2f ms per allocation, %.1f claim watch events per allocation\n",
		tag, b.allocs, took.Round(time.Millisecond), rate, (cpu1 - cpu0).Round(time.Millisecond), ms, ev)
	// Release outside the measured part.
	if _, err := parallel(b.allocs, inFlight, func(i int) error {
		return b.k.Delete(b.ctx, pods[i], client.GracePeriodSeconds(0))
	}); err != nil {
		return 0, 0, 0, err
	}
	if _, err := parallel(b.allocs, inFlight, func(i int) error { return a.Del(b.ctx, podReq(pods[i], pool)) }); err != nil {
		return 0, 0, 0, fmt.Errorf("release failed: %w", err)
	}
	if err := b.waitEndpoints(ns, 0); err != nil {
		return 0, 0, 0, err
	}
	return ms, ev, rate, nil
}

func podReq(p *corev1.Pod, pool string) *nodeapi.Request {
	return &nodeapi.Request{ContainerID: "sandbox-" + string(p.UID), IfName: "eth0", PodNamespace: p.Namespace,
		PodName: p.Name, PodUID: string(p.UID), DefaultIPv4Pools: []string{pool}}
}

func (b *bench) waitEndpoints(ns string, want int) error {
	return perflab.WaitFor(b.ctx, 5*time.Minute, fmt.Sprintf("%d SpiderEndpoints written in %q", want, ns), func(ctx context.Context) (bool, error) {
		list := &v2beta1.SpiderEndpointList{}
		if err := b.k.List(ctx, list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		written := 0
		for _, se := range list.Items {
			if len(se.Status.Current.IPs) > 0 {
				written++
			}
		}
		return len(list.Items) == want && written == want, nil
	})
}

// (r) one agent process's memory with many claims in the cluster.
func (b *bench) memory() error {
	const node = "scale-r-node"
	pools := []string{"scale-r-a", "scale-r-b"}
	fmt.Printf("\n## (r) agent memory: one %s process with %v SpiderIPClaims in the cluster (in pools %v, half each), the pools open to its node or to another node only; %d repetitions\n",
		b.agentBin, b.claimCounts, pools, b.reps)
	if err := b.ensure(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		return err
	}
	for i, p := range pools {
		if err := b.pool(p, fmt.Sprintf("10.%d.0.0/16", 60+i), "scale-r-elsewhere"); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "spindle-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kc, err := b.env.Kubeconfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	for _, n := range b.claimCounts {
		t0 := time.Now()
		if err := b.fill(pools, n); err != nil {
			return err
		}
		fmt.Printf("%d claims in the cluster (created in %v)\n", n, time.Since(t0).Round(time.Second))
		for _, eligible := range []bool{false, true} {
			open := "scale-r-elsewhere"
			if eligible {
				open = node
			}
			for _, p := range pools {
				patch := []byte(fmt.Sprintf(`{"spec":{"nodeName":[%q]}}`, open))
				if err := b.k.Patch(b.ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p}}, client.RawPatch("application/merge-patch+json", patch)); err != nil {
					return err
				}
			}
			var rss, peak, ready, cpu []float64
			for r := 0; r < b.reps; r++ {
				m, err := b.agentProcess(dir, kubeconfig, node)
				if err != nil {
					return err
				}
				rss, peak, ready, cpu = append(rss, m.RSSMiB), append(peak, m.PeakMiB), append(ready, m.ReadyS), append(cpu, m.CPUS)
				fmt.Printf("  pools open to %s, rep %d: ready after %.2f s (%.2f s CPU), RSS %.1f MiB (peak %.1f MiB)\n", open, r+1, m.ReadyS, m.CPUS, m.RSSMiB, m.PeakMiB)
			}
			p := rssPoint{Claims: n, Eligible: eligible, RSSMiB: perflab.Median(rss), PeakMiB: perflab.Median(peak), ReadyS: perflab.Median(ready), CPUS: perflab.Median(cpu)}
			b.res.RSS = append(b.res.RSS, p)
		}
	}
	return nil
}

// fill creates claims until n exist, spread over pools, with the fields a
// real pod's claim carries.
func (b *bench) fill(pools []string, n int) error {
	from := b.claimsMade
	_, err := parallel(n-from, 2*inFlight, func(i int) error {
		i += from
		p := i % len(pools)
		off := uint64(i/len(pools)) + 1
		addr := netip.AddrFrom4([4]byte{10, byte(60 + p), byte(off >> 8), byte(off)})
		spec := v2beta1.IPClaimSpec{Pool: pools[p], PodNamespace: "scale-r", PodName: fmt.Sprintf("app-%03d-7d9f8c6b5-%05d", i%500, i),
			PodUID: fmt.Sprintf("6f1c2d3e-0000-4000-8000-%012d", i), Interface: "eth0", ContainerID: fmt.Sprintf("%064x", i),
			Node: fmt.Sprintf("node-%04d", i%1000), OwnerKind: "ReplicaSet", OwnerName: fmt.Sprintf("app-%03d-7d9f8c6b5", i%500)}
		err := b.k.Create(b.ctx, v2beta1.NewClaim(addr, spec))
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	b.claimsMade = n
	return nil
}

// agentProcess runs the agent binary until it is ready and a few seconds
// more, and returns its memory and start time.
func (b *bench) agentProcess(dir, kubeconfig, node string) (rssPoint, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return rssPoint{}, err
	}
	health := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return rssPoint{}, err
	}
	defer logf.Close()
	cmd := exec.Command(b.path(b.agentBin), "--kubeconfig", kubeconfig, "--socket", filepath.Join(dir, "agent.sock"),
		"--metrics-addr=", "--health-addr", health, "--gc-interval=1h")
	cmd.Env = append(os.Environ(), "NODE_NAME="+node)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return rssPoint{}, fmt.Errorf("failed to start %s (make build): %w", b.agentBin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// stop ends the agent; how it exits (the signal) is of no interest.
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			_ = err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err := <-exited
			_ = err
		}
	}
	var ready time.Duration
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			return rssPoint{}, fmt.Errorf("the agent exited before it was ready: %v\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = time.Since(start)
				break
			}
		}
		if time.Since(start) > 5*time.Minute {
			stop()
			return rssPoint{}, errors.New("the agent was not ready within 5 minutes")
		}
	}
	cpu, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		stop()
		return rssPoint{}, err
	}
	time.Sleep(5 * time.Second)
	rss, peak, err := memory(cmd.Process.Pid)
	stop()
	if err != nil {
		return rssPoint{}, err
	}
	return rssPoint{RSSMiB: rss, PeakMiB: peak, ReadyS: ready.Seconds(), CPUS: cpu.Seconds()}, nil
}
