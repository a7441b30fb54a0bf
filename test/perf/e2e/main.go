// Command e2e measures, in one lab of its own, the path a user waits on:
// Deployments whose pods get a second interface (net1, macvlan on the lab
// underlay) from
//
//	spindle:   spiderpool IPAM (the plugin asks the node's spindle-agent,
//	           which creates one SpiderIPClaim per address) with the
//	           coordinator chained, from a SpiderMultusConfig;
//	hostlocal: host-local IPAM and nothing else, from a plain
//	           NetworkAttachmentDefinition: the same path without Spindle,
//	           its lower bound.
//
// Each phase times the first Deployment create until every pod is Running,
// counts the net1 addresses (from the pods' Multus network-status) held by
// more than one pod, then deletes the Deployments and times until no pod and
// (spindle) no claim of the phase is left. host-local keeps its leases per
// node, so it hands the same addresses to pods on different nodes: its
// duplicates are expected and reported, Spindle's fail the run.
//
// From the lab's per-node logs it then splits every pod's CNI ADD: the
// whole ADD (the lab's node shim runs Multus and times it), Multus with the
// default network until eth0 is added, net1 until Multus adds it, within it
// the IPAM call as the agent times it, and the coordinator from its plan
// to the end of net1.
//
// After an uncounted warm-up round, the phases run -reps times, alternating
// which goes first; medians are reported. The program ends with one summary
// line starting with "bench_e2e:" and exits non-zero when a pod failed, a
// Spindle address was held twice or a claim was left.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

func main() {
	wd, _ := os.Getwd()
	repo := framework.RepoRoot(wd)
	o := perflab.OwnLab(repo, "bench-e2e-lab", "spe", 7, 5, 250, 1)
	o.AddFlags(flag.CommandLine)
	apps := flag.Int("apps", 100, "Deployments per phase")
	replicas := flag.Int("replicas", 10, "replicas of every Deployment")
	reps := flag.Int("reps", 1, "repetitions of the two phases, alternating which goes first; medians are reported")
	warmup := flag.Int("warmup", 5, "Deployments of an uncounted round of each phase first (0: none)")
	timeout := flag.Duration("timeout", 15*time.Minute, "how long a phase may take to start (or remove) its pods")
	keep := flag.Bool("keep", false, "leave the lab up at the end (bin/lab --dir DIR down removes it)")
	flag.Parse()
	if repo == "" {
		fmt.Fprintln(os.Stderr, "bench_e2e: failed to find the repository (go.mod) above", wd, "- run it from the repository")
		os.Exit(1)
	}
	if *apps < 1 || *replicas < 1 || *reps < 1 || *warmup < 0 {
		fmt.Fprintln(os.Stderr, "bench_e2e: -apps, -replicas and -reps must be at least 1, -warmup at least 0")
		os.Exit(2)
	}
	if pods := *apps * *replicas; pods > o.Nodes*o.MaxPods {
		fmt.Fprintf(os.Stderr, "bench_e2e: %d pods do not fit %d nodes of %d pods (-nodes, -max-pods)\n", pods, o.Nodes, o.MaxPods)
		os.Exit(2)
	}
	if err := o.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench_e2e:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	s, err := run(ctx, o, *apps, *replicas, *reps, *warmup, *timeout, *keep)
	fmt.Printf("# total e2e bench time %v\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench_e2e:", err)
		os.Exit(1)
	}
	fmt.Println(s.line())
	if n := s.failures(); n != "" {
		fmt.Fprintln(os.Stderr, "bench_e2e: failed:", n)
		os.Exit(1)
	}
}

func run(ctx context.Context, o perflab.LabOptions, apps, replicas, reps, warmup int, timeout time.Duration, keep bool) (sum summary, err error) {
	sum = summary{pods: apps * replicas, nodes: o.Nodes}
	fmt.Printf("# machine: %d CPUs, %s; lab: %d nodes of %d pods, %d CNI workers each, in %s (prefix %s, API server port %d)\n",
		runtime.NumCPU(), runtime.Version(), o.Nodes, o.MaxPods, o.CNIWorkers, o.Dir, o.Prefix, o.APIServerPort)
	labStart := time.Now()
	defer func() {
		if keep {
			fmt.Printf("# lab kept: kubeconfig %s; remove it with %s --dir %s down\n", o.Kubeconfig(), o.Bin("lab"), o.Dir)
			return
		}
		if derr := o.Down(); derr != nil && err == nil {
			err = derr
		}
	}()
	if err := o.Up(ctx); err != nil {
		return sum, err
	}
	fmt.Printf("# lab up in %.0f s\n", time.Since(labStart).Seconds())
	b, err := newBench(o, replicas, timeout)
	if err != nil {
		return sum, err
	}
	if err := b.setup(ctx, apps*replicas); err != nil {
		return sum, err
	}
	if warmup > 0 {
		for _, kind := range []ipamKind{spindle, hostLocal} {
			p := phase{kind: kind, warmup: true, apps: min(warmup, apps)}
			if _, err := b.run(ctx, p); err != nil {
				return sum, fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	for r := 1; r <= reps; r++ {
		order := []ipamKind{spindle, hostLocal}
		if r%2 == 0 {
			order = []ipamKind{hostLocal, spindle}
		}
		for _, kind := range order {
			p := phase{kind: kind, rep: r, apps: apps}
			res, err := b.run(ctx, p)
			if err != nil {
				return sum, fmt.Errorf("%s: %w", p, err)
			}
			sum.add(kind, res)
		}
	}
	sum.table(os.Stdout)
	return sum, nil
}
