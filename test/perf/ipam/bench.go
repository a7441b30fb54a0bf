package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	reps, creates, rmw, allocs, agents, samples, execs int
	seWorkers                                          int
	fill                                               float64
	skipSync                                           bool
	only                                               string

	env *kubeapi.Env
	k   client.Client
	ctx context.Context

	createPerS, rmwPerS, spindlePerS, spindleP99, ratio, pluginP50 float64
	duplicates                                                     int
}

func (b *bench) summary() string {
	return fmt.Sprintf("bench: create_ceiling_per_s=%.0f rmw_baseline_per_s=%.1f spindle_allocs_per_s=%.0f spindle_p99_ms=%.1f full_empty_latency_ratio=%.2f duplicates=%d plugin_exec_p50_ms=%.2f",
		b.createPerS, b.rmwPerS, b.spindlePerS, b.spindleP99, b.ratio, b.duplicates, b.pluginP50)
}

func (b *bench) run() error {
	ctrllog.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard()) // informers of stopped agents log their cancelled watches
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ctx = ctx
	env, k, err := perflab.StartAPIServer(agent.Scheme())
	if err != nil {
		return err
	}
	defer env.Stop() //nolint:errcheck
	b.env, b.k = env, k

	for _, step := range []struct {
		name string
		f    func() error
	}{{"plugin", b.pluginExec}, {"a", b.createCeiling}, {"b", b.rmwBaseline}, {"c", b.spindle}, {"d", b.fullVsEmpty}} {
		if b.only != "" && !slices.Contains(strings.Split(b.only, ","), step.name) {
			continue
		}
		if err := step.f(); err != nil {
			return fmt.Errorf("(%s): %w", step.name, err)
		}
	}
	fmt.Println()
	fmt.Printf("%-58s %12s\n", "result", "value")
	row := func(k string, v string) { fmt.Printf("%-58s %12s\n", k, v) }
	row("(a) API server create ceiling, objects/s (median)", fmt.Sprintf("%.0f", b.createPerS))
	row("(b) single-object read-modify-write, allocs/s (median)", fmt.Sprintf("%.1f", b.rmwPerS))
	row("(c) Spindle, 10 agents, allocs/s (median)", fmt.Sprintf("%.0f", b.spindlePerS))
	row("(c) / (b)", fmt.Sprintf("%.1fx", b.spindlePerS/b.rmwPerS))
	row("(c) / (a)", fmt.Sprintf("%.0f%%", 100*b.spindlePerS/b.createPerS))
	row("(c) ADD latency p99, ms (median)", fmt.Sprintf("%.1f", b.spindleP99))
	row("(d) ADD latency p50 full / p50 empty", fmt.Sprintf("%.2f", b.ratio))
	row("duplicates", fmt.Sprint(b.duplicates))
	row("plugin exec overhead p50, ms", fmt.Sprintf("%.2f", b.pluginP50))
	return nil
}

// parallel runs f(i) for i in [0,n) with `workers` goroutines and returns
// the per-call latencies and the first error.
func parallel(n, workers int, f func(i int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := f(i); err != nil {
					errOnce.Do(func() { firstErr = err })
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// (a) raw create ceiling: SpiderIPClaims (the object Spindle writes), no
// agents watching.
func (b *bench) createCeiling() error {
	fmt.Printf("\n## (a) API server create ceiling: %d SpiderIPClaims per repetition, %d in flight\n", b.creates, inFlight)
	var rates []float64
	for r := -1; r < b.reps; r++ { // r == -1: warm-up, not reported
		base := netip.MustParseAddr(fmt.Sprintf("10.%d.0.0", 201+r))
		_, took, err := parallel(b.creates, inFlight, func(i int) error {
			addr := addrAdd(base, uint64(i))
			return b.k.Create(b.ctx, v2beta1.NewClaim(addr, v2beta1.IPClaimSpec{Pool: "ceiling"}))
		})
		if err != nil {
			return err
		}
		rate := float64(b.creates) / took.Seconds()
		if r >= 0 {
			rates = append(rates, rate)
			fmt.Printf("rep %d: %d creates in %v = %.0f/s\n", r+1, b.creates, took.Round(time.Millisecond), rate)
		} else {
			fmt.Printf("warm-up: %d creates in %v = %.0f/s (not counted)\n", b.creates, took.Round(time.Millisecond), rate)
		}
		if err := b.k.DeleteAllOf(b.ctx, &v2beta1.SpiderIPClaim{}, client.MatchingLabels{v2beta1.LabelPool: "ceiling"}); err != nil {
			return err
		}
	}
	b.createPerS = median(rates)
	return nil
}

func addrAdd(a netip.Addr, n uint64) netip.Addr {
	b := a.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// (b) the single-object design: every allocation reads the pool, adds a
// record to the JSON string in its status and writes it back, retrying on
// conflict.
func (b *bench) rmwBaseline() error {
	fmt.Printf("\n## (b) single-object read-modify-write: %d allocations per repetition, %d writers on one pool status\n", b.rmw, inFlight)
	var rates []float64
	for r := 0; r < b.reps; r++ {
		name := fmt.Sprintf("rmw-%d", r)
		pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v2beta1.IPPoolSpec{Subnet: "10.250.0.0/16", IPs: []string{"10.250.0.1-10.250.255.254"}}}
		if err := b.k.Create(b.ctx, pool); err != nil {
			return err
		}
		var conflicts atomic.Int64
		base := netip.MustParseAddr("10.250.0.1")
		_, took, err := parallel(b.rmw, inFlight, func(i int) error {
			for {
				p := &v2beta1.SpiderIPPool{}
				if err := b.k.Get(b.ctx, client.ObjectKey{Name: name}, p); err != nil {
					return err
				}
				records := map[string]map[string]string{}
				if p.Status.AllocatedIPs != nil {
					if err := json.Unmarshal([]byte(*p.Status.AllocatedIPs), &records); err != nil {
						return err
					}
				}
				var addr netip.Addr
				for off := uint64(0); ; off++ {
					if _, used := records[addrAdd(base, off).String()]; !used {
						addr = addrAdd(base, off)
						break
					}
				}
				records[addr.String()] = map[string]string{"pod": fmt.Sprintf("default/pod-%d", i), "podUid": fmt.Sprint(i), "nic": "eth0"}
				raw, _ := json.Marshal(records)
				s := string(raw)
				n := int64(len(records))
				p.Status.AllocatedIPs, p.Status.AllocatedIPCount = &s, &n
				err := b.k.Status().Update(b.ctx, p)
				if apierrors.IsConflict(err) {
					conflicts.Add(1)
					continue
				}
				return err
			}
		})
		if err != nil {
			return err
		}
		rate := float64(b.rmw) / took.Seconds()
		rates = append(rates, rate)
		fmt.Printf("rep %d: %d allocations in %v = %.1f/s (%d conflicts retried)\n", r+1, b.rmw, took.Round(time.Millisecond), rate, conflicts.Load())
		_ = b.k.Delete(b.ctx, pool)
	}
	b.rmwPerS = median(rates)
	return nil
}

func (b *bench) ensureNamespace(name string) error {
	err := b.k.Create(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (b *bench) ensureNode(name string) error {
	err := b.k.Create(b.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (b *bench) createPool(name, subnet, ips string) error {
	return b.k.Create(b.ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: []string{ips}}})
}

func (b *bench) startAgents(ctx context.Context, n int, prefix, seMode string) ([]*agent.Agent, error) {
	agents := make([]*agent.Agent, n)
	for i := range agents {
		node := fmt.Sprintf("%s-%d", prefix, i)
		if err := b.ensureNode(node); err != nil {
			return nil, err
		}
		a, err := agent.New(b.env.Config, agent.Config{NodeName: node, EnableIPv4: true, EnableStatefulSet: true,
			EndpointWrites: seMode, EndpointWorkers: b.seWorkers, GCInterval: time.Hour})
		if err != nil {
			return nil, err
		}
		agents[i] = a
	}
	errs := make(chan error, n)
	for _, a := range agents {
		go func() { errs <- a.Start(ctx) }()
	}
	for range agents {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return agents, nil
}

func (b *bench) createPods(ns, prefix string, n int, node func(i int) string) ([]*corev1.Pod, error) {
	pods := make([]*corev1.Pod, n)
	_, _, err := parallel(n, inFlight, func(i int) error {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i)},
			Spec: corev1.PodSpec{NodeName: node(i), Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
		pods[i] = p
		return b.k.Create(b.ctx, p)
	})
	return pods, err
}

func req(p *corev1.Pod, pool string) *nodeapi.Request {
	return &nodeapi.Request{ContainerID: "sandbox-" + string(p.UID), IfName: "eth0", PodNamespace: p.Namespace,
		PodName: p.Name, PodUID: string(p.UID), DefaultIPv4Pools: []string{pool}}
}

// (c) Spindle through the agent's ADD/DEL path.
func (b *bench) spindle() error {
	fmt.Printf("\n## (c) Spindle: %d agents, %d allocations from one /16 pool per repetition, %d in flight in total\n", b.agents, b.allocs, inFlight)
	if err := b.ensureNamespace("bench-c"); err != nil {
		return err
	}
	if err := b.createPool("bench-c", "10.30.0.0/16", "10.30.0.1-10.30.255.254"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(b.ctx)
	agents, err := b.startAgents(ctx, b.agents, "node-c", agent.EndpointAsync)
	if err != nil {
		cancel()
		return err
	}
	var rates, p99s []float64
	for r := 0; r < b.reps; r++ {
		rate, p99, err := b.spindleRep(agents, fmt.Sprintf("a%d", r), "async")
		if err != nil {
			cancel()
			return err
		}
		rates, p99s = append(rates, rate), append(p99s, p99)
	}
	cancel()
	b.spindlePerS, b.spindleP99 = median(rates), median(p99s)
	if b.skipSync {
		return nil
	}
	fmt.Printf("\n## (c') same with the SpiderEndpoint written before ADD returns (--endpoint-writes=sync), 1 repetition\n")
	ctx, cancel = context.WithCancel(b.ctx)
	defer cancel()
	agents, err = b.startAgents(ctx, b.agents, "node-s", agent.EndpointSync)
	if err != nil {
		return err
	}
	_, _, err = b.spindleRep(agents, "s0", "sync")
	return err
}

func (b *bench) spindleRep(agents []*agent.Agent, tag, mode string) (float64, float64, error) {
	n := len(agents)
	pods, err := b.createPods("bench-c", "pod-"+tag, b.allocs, func(i int) string { return agents[i%n].NodeName() })
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second) // let the agents' pod informers catch up (outside the timed part)
	addrs := make([]string, b.allocs)
	var failed atomic.Int64
	lat, took, firstErr := parallel(b.allocs, inFlight, func(i int) error {
		res, err := agents[i%n].Add(b.ctx, req(pods[i], "bench-c"))
		if err != nil {
			failed.Add(1)
			return err
		}
		addrs[i] = res.IPs[0].Address
		return nil
	})
	addDone := time.Now()
	if f := failed.Load(); f > 0 {
		return 0, 0, fmt.Errorf("%d allocations failed, first: %w", f, firstErr)
	}
	dups := duplicates(addrs)
	b.duplicates += dups
	list := &v2beta1.SpiderIPClaimList{}
	if err := b.k.List(b.ctx, list, client.MatchingLabels{v2beta1.LabelPool: "bench-c"}); err != nil {
		return 0, 0, err
	}
	rate := float64(b.allocs) / took.Seconds()
	conflicts := 0.0
	for _, a := range agents {
		conflicts += testutil.ToFloat64(a.Metrics().Conflicts)
	}
	fmt.Printf("rep %s (%s SpiderEndpoints): %d ADDs in %v = %.0f/s, latency p50 %.1f ms p99 %.1f ms, %d claims, %d duplicates, %.0f claim conflicts so far\n",
		tag, mode, b.allocs, took.Round(time.Millisecond), rate, pct(lat, 50), pct(lat, 99), len(list.Items), dups, conflicts)
	if len(list.Items) != b.allocs {
		return 0, 0, fmt.Errorf("%d claims in the pool after %d allocations", len(list.Items), b.allocs)
	}
	seWait, err := b.waitEndpoints("bench-c", b.allocs)
	if err != nil {
		return 0, 0, err
	}
	fmt.Printf("    all %d SpiderEndpoints written %v after the last ADD returned\n", b.allocs, seWait.Sub(addDone).Round(time.Millisecond))

	// Release: the pods are deleted first (outside the timed part), then
	// every agent gets the DEL of its pods.
	if _, _, err := parallel(b.allocs, inFlight, func(i int) error {
		return b.k.Delete(b.ctx, pods[i], client.GracePeriodSeconds(0))
	}); err != nil {
		return 0, 0, err
	}
	dlat, dtook, err := parallel(b.allocs, inFlight, func(i int) error {
		return agents[i%n].Del(b.ctx, req(pods[i], "bench-c"))
	})
	if err != nil {
		return 0, 0, err
	}
	list = &v2beta1.SpiderIPClaimList{}
	if err := b.k.List(b.ctx, list, client.MatchingLabels{v2beta1.LabelPool: "bench-c"}); err != nil {
		return 0, 0, err
	}
	fmt.Printf("    %d DELs in %v = %.0f/s, latency p50 %.1f ms p99 %.1f ms, %d claims left\n",
		b.allocs, dtook.Round(time.Millisecond), float64(b.allocs)/dtook.Seconds(), pct(dlat, 50), pct(dlat, 99), len(list.Items))
	if len(list.Items) != 0 {
		return 0, 0, fmt.Errorf("%d claims left after release", len(list.Items))
	}
	if _, err := b.waitEndpoints("bench-c", 0); err != nil {
		return 0, 0, err
	}
	return rate, pct(lat, 99), nil
}

func (b *bench) waitEndpoints(ns string, want int) (time.Time, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		list := &v2beta1.SpiderEndpointList{}
		if err := b.k.List(b.ctx, list, client.InNamespace(ns)); err != nil {
			return time.Time{}, err
		}
		written := 0
		for _, se := range list.Items {
			if len(se.Status.Current.IPs) > 0 {
				written++
			}
		}
		if len(list.Items) == want && written == want {
			return time.Now(), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("SpiderEndpoints of %q did not converge to %d", ns, want)
}

func duplicates(addrs []string) int {
	seen := map[string]bool{}
	d := 0
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if seen[a] {
			d++
		}
		seen[a] = true
	}
	return d
}

// (d) ADD latency, empty vs. 90% full /16 pool, sequential ADDs alternating
// between the two pools so drift affects both equally.
func (b *bench) fullVsEmpty() error {
	const size = 65534
	prefill := int(b.fill * size)
	fmt.Printf("\n## (d) ADD latency: /16 pool empty vs. %.0f%% full (%d addresses pre-claimed), %d sequential ADDs each\n", 100*b.fill, prefill, b.samples)
	if err := b.ensureNamespace("bench-d"); err != nil {
		return err
	}
	if err := b.createPool("bench-empty", "10.40.0.0/16", "10.40.0.1-10.40.255.254"); err != nil {
		return err
	}
	if err := b.createPool("bench-full", "10.50.0.0/16", "10.50.0.1-10.50.255.254"); err != nil {
		return err
	}
	offs := rand.Perm(size)[:prefill]
	base := netip.MustParseAddr("10.50.0.1")
	_, took, err := parallel(prefill, 2*inFlight, func(i int) error {
		c := v2beta1.NewClaim(addrAdd(base, uint64(offs[i])), v2beta1.IPClaimSpec{Pool: "bench-full", PodNamespace: "bench-d", PodName: "filler", PodUID: "filler"})
		return b.k.Create(b.ctx, c)
	})
	if err != nil {
		return err
	}
	fmt.Printf("pre-claimed %d addresses in %v (%.0f/s)\n", prefill, took.Round(time.Second), float64(prefill)/took.Seconds())
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	t0 := time.Now()
	agents, err := b.startAgents(ctx, 1, "node-d", agent.EndpointAsync)
	if err != nil {
		return err
	}
	a := agents[0]
	fmt.Printf("agent informers synced %d claims in %v\n", prefill, time.Since(t0).Round(time.Millisecond))
	pods, err := b.createPods("bench-d", "pod", 2*b.samples, func(int) string { return a.NodeName() })
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	var empty, full []time.Duration
	var addrs []string
	for i, p := range pods {
		pool := "bench-empty"
		if i%2 == 1 {
			pool = "bench-full"
		}
		t := time.Now()
		res, err := a.Add(b.ctx, req(p, pool))
		d := time.Since(t)
		if err != nil {
			return err
		}
		addrs = append(addrs, res.IPs[0].Address)
		if i < 2 {
			fmt.Printf("first ADD from %s (builds the pool's bitmap from the cache): %.1f ms\n", pool, float64(d)/float64(time.Millisecond))
			continue
		}
		if i%2 == 1 {
			full = append(full, d)
		} else {
			empty = append(empty, d)
		}
	}
	dups := duplicates(addrs)
	b.duplicates += dups
	list := &v2beta1.SpiderIPClaimList{}
	if err := b.k.List(b.ctx, list, client.MatchingLabels{v2beta1.LabelPool: "bench-full"}); err != nil {
		return err
	}
	if len(list.Items) != prefill+b.samples {
		return fmt.Errorf("full pool holds %d claims, want %d", len(list.Items), prefill+b.samples)
	}
	b.ratio = pct(full, 50) / pct(empty, 50)
	fmt.Printf("empty pool: p50 %.2f ms p99 %.2f ms; 90%% full pool: p50 %.2f ms p99 %.2f ms; ratio of p50 %.2f; %d duplicates\n",
		pct(empty, 50), pct(empty, 99), pct(full, 50), pct(full, 99), b.ratio, dups)
	return nil
}

// pluginExec measures the spiderpool plugin from process start to the
// request reaching a stub agent socket.
func (b *bench) pluginExec() error {
	root, err := kubeapi.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "spindle-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "spiderpool")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/spiderpool")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("failed to build the plugin: %w", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	arrivals := make(chan time.Time, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(conn)
			if _, err := r.Peek(1); err == nil {
				arrivals <- time.Now()
			}
			for {
				line, err := r.ReadString('\n')
				if err != nil || strings.TrimSpace(line) == "" {
					break
				}
			}
			body := `{"interface":"eth0","ips":[{"address":"10.9.0.5/16","gateway":"10.9.0.1","version":4,"pool":"p"}]}`
			fmt.Fprintf(conn, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			conn.Close()
		}
	}()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"macvlan-vlan0","type":"macvlan","ipam":{"type":"spiderpool","socket":%q}}`, sock)
	var lat []time.Duration
	for i := 0; i < b.execs+3; i++ {
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c" + fmt.Sprint(i), "CNI_NETNS=/var/run/netns/x", "CNI_IFNAME=eth0",
			"CNI_PATH=/opt/cni/bin", "CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=c"}
		cmd.Stdin = strings.NewReader(conf)
		var out strings.Builder
		cmd.Stdout = &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		var arrived time.Time
		select {
		case arrived = <-arrivals:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return errors.New("the plugin never reached the stub socket")
		}
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("plugin failed: %w: %s", err, out.String())
		}
		if !strings.Contains(out.String(), "10.9.0.5/16") {
			return fmt.Errorf("unexpected plugin output %q", out.String())
		}
		if i >= 3 { // the first runs warm the page cache
			lat = append(lat, arrived.Sub(start))
		}
	}
	b.pluginP50 = pct(lat, 50)
	fmt.Printf("\n## plugin exec overhead: %d runs of the spiderpool binary against a stub socket: p50 %.2f ms p99 %.2f ms (process start to request received)\n",
		b.execs, b.pluginP50, pct(lat, 99))
	return nil
}
