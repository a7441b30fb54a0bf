// Command subnet measures, in one lab of its own, what pools carved from a
// SpiderSubnet cost an application against naming a pool by hand:
//
//	manual: -apps Deployments of -replicas replicas whose pods name one
//	        shared SpiderIPPool (ipam.spidernet.io/ippool);
//	auto:   the same Deployments asking ipam.spidernet.io/subnets for a pool
//	        of exactly their replicas ("+0"), which spindle-controller
//	        carves from one SpiderSubnet.
//
// Each phase times the first Deployment create until every pod is Running,
// checks that no address is held twice and that every pod's net1 address is
// claimed for it in the right pool, then deletes the Deployments and times
// until no pod, claim or carved pool is left. The auto phase also times, per
// Deployment, its create until its pool has its addresses. After an
// uncounted warm-up round, the phases run one after the other (manual
// first) -reps times; medians are reported.
//
// The lab (bin/lab, built by make build) gets its own directory, network
// namespace prefix and ports, so it runs beside a developer's lab; the ports
// lie below Linux's ephemeral range (32768 on), where test API servers and
// client connections cannot take them first. It is torn down at the end,
// also on failure. The program ends with one summary
// line starting with "bench_subnet:" and exits non-zero when a pod failed,
// an address was held twice or a claim did not match.
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
	o := perflab.OwnLab(repo, "bench-subnet-lab", "spb", 6, 5, 250, 1)
	o.AddFlags(flag.CommandLine)
	apps := flag.Int("apps", 100, "Deployments per phase")
	replicas := flag.Int("replicas", 10, "replicas of every Deployment")
	reps := flag.Int("reps", 1, "repetitions of the two phases (manual, then auto); medians are reported")
	warmup := flag.Int("warmup", 10, "Deployments of an uncounted manual round first (0: none)")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long a phase may take to start (or remove) its pods")
	keep := flag.Bool("keep", false, "leave the lab up at the end (bin/lab --dir DIR down removes it)")
	flag.Parse()
	if repo == "" {
		fmt.Fprintln(os.Stderr, "bench_subnet: failed to find the repository (go.mod) above", wd, "- run it from the repository")
		os.Exit(1)
	}
	if *apps < 1 || *replicas < 1 || *reps < 1 {
		fmt.Fprintln(os.Stderr, "bench_subnet: -apps, -replicas and -reps must be at least 1")
		os.Exit(2)
	}
	if err := o.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench_subnet:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	s, err := run(ctx, o, *apps, *replicas, *reps, *warmup, *timeout, *keep)
	fmt.Printf("# total subnet bench time %v\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench_subnet:", err)
		os.Exit(1)
	}
	fmt.Println(s.line())
	if n := s.failures(); n != "" {
		fmt.Fprintln(os.Stderr, "bench_subnet: failed:", n)
		os.Exit(1)
	}
}

func run(ctx context.Context, o perflab.LabOptions, apps, replicas, reps, warmup int, timeout time.Duration, keep bool) (sum summary, err error) {
	sum = summary{apps: apps, replicas: replicas}
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
	b, err := newBench(o.Kubeconfig(), o.EnvFile(), o.Bin("lab"), o.MetricsURL(), apps, replicas, timeout)
	if err != nil {
		return sum, err
	}
	if err := b.setup(ctx); err != nil {
		return sum, err
	}
	if warmup > 0 {
		p := phase{warmup: true, apps: min(warmup, apps)}
		if _, err := b.run(ctx, p); err != nil {
			return sum, fmt.Errorf("%s: %w", p, err)
		}
	}
	for r := 1; r <= reps; r++ {
		for _, auto := range []bool{false, true} {
			p := phase{auto: auto, rep: r, apps: apps}
			res, err := b.run(ctx, p)
			if err != nil {
				return sum, fmt.Errorf("%s: %w", p, err)
			}
			if auto {
				sum.auto = append(sum.auto, res)
			} else {
				sum.manual = append(sum.manual, res)
			}
		}
	}
	sum.table(os.Stdout)
	return sum, nil
}
