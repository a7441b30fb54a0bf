// Command chaos churns pods on a lab while it kills and cuts off every
// component, and checks against the truth inside the pods' network
// namespaces that no address is duplicated, lost or leaked, that the
// counters match, that the addresses of a lost node's pods come back in
// time and that no CNI DEL reported a release it did not make.
//
// The churn and the fault schedule are drawn from one seed (CHAOS_SEED,
// printed first): Deployments and StatefulSets scaled up and down,
// StatefulSet pods deleted, bare pods created, force-deleted and created
// again under the same name, single- and dual-NIC pods, every interface
// dual-stack. The faults: SIGKILL of a node's agent, of spindle-controller,
// of kube-apiserver and of etcd (each started again after a random delay), a
// node's shim stopped past the node-monitor grace (node loss), a spiderpool
// plugin killed in the middle of an ADD, and a window in which the fault
// proxy in front of the first node's agent fails a share of its API
// requests. See docs/chaos.md.
//
// By default the command starts a 3-node lab of its own (and removes it at
// the end); -lab-dir runs against a lab that is up. It ends with one line
//
//	chaos: seed=S pods=N faults=F duplicates=0 lost=0 leaked=0 counter_drift=0 dels_ok_but_held=0 node_reclaim_max_s=X node_reclaim_p50_s=Y
//
// and exits 1 on any violation, after printing the first violating objects.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

// DefaultSeed is the seed of a run that names none.
const DefaultSeed = 16

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

// LongOptions are the options of `make chaos`; ShortOptions those of the
// variant inside `make test`.
func LongOptions(repo, labDir string) Options {
	return Options{Seed: envInt("CHAOS_SEED", DefaultSeed), Pods: int(envInt("CHAOS_PODS", 5000)), Churn: 40 * time.Minute,
		LabDir: labDir, Repo: repo, Sample: 15 * time.Second, Settle: 2 * time.Minute, Extra: 2 * time.Minute, Pending: 40,
		ErrorRate: 0.3, PodGrace: 1, GCDelay: 30 * time.Second, Log: os.Stdout}
}

// ShortOptions: about 1,000 pods in about five minutes on two cores.
func ShortOptions(repo, labDir string) Options {
	o := LongOptions(repo, labDir)
	o.Pods, o.Churn, o.Sample, o.Extra = int(envInt("CHAOS_PODS", 1000)), 4*time.Minute, 10*time.Second, 0
	return o
}

func main() {
	wd, _ := os.Getwd()
	repo := framework.RepoRoot(wd)
	lo := perflab.OwnLab(repo, "chaos-lab", "sch", 8, 3, 110, 4)
	lo.AddFlags(flag.CommandLine)
	o := LongOptions(repo, "")
	labDir := flag.String("lab-dir", "", "run against the lab that is up in this directory instead of a lab of its own")
	short := flag.Bool("short", false, "the variant make test runs: about 1,000 pods in about five minutes")
	keep := flag.Bool("keep", false, "leave the lab of its own up at the end")
	flag.Int64Var(&o.Seed, "seed", o.Seed, "seed of the churn and the fault schedule ($CHAOS_SEED)")
	flag.IntVar(&o.Pods, "pods", o.Pods, "pod creations to reach ($CHAOS_PODS)")
	flag.DurationVar(&o.Churn, "churn", o.Churn, "the churn stops after this long even if -pods was not reached")
	flag.Parse()
	if repo == "" {
		fmt.Fprintln(os.Stderr, "chaos: failed to find the repository (go.mod) above", wd, "- run it from the repository")
		os.Exit(2)
	}
	if *short {
		s := ShortOptions(repo, "")
		flag.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "seed":
				s.Seed = o.Seed
			case "pods":
				s.Pods = o.Pods
			case "churn":
				s.Churn = o.Churn
			}
		})
		o = s
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.LabDir = *labDir
	if o.LabDir != "" {
		os.Exit(report(ctx, o))
	}
	if err := lo.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if err := lo.Up(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	o.LabDir = lo.Dir
	rc := report(ctx, o)
	if !*keep {
		if err := lo.Down(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			rc = 1
		}
	}
	os.Exit(rc)
}

// report runs o and prints the result; it returns the exit status.
func report(ctx context.Context, o Options) int {
	fmt.Fprintf(o.Log, "chaos: seed=%d (CHAOS_SEED=%d reproduces this schedule)\n", o.Seed, o.Seed)
	res, err := Run(ctx, o)
	res.Report(o.Log)
	fmt.Fprintf(o.Log, "chaos: %d samples, fault proxy failed %d of %d requests, %s\n", res.Samples, res.ProxyInjected, res.ProxyInjected+res.Proxied, res.Elapsed.Round(time.Second))
	fmt.Fprintln(o.Log, res.Line())
	if err != nil {
		fmt.Fprintln(o.Log, "chaos: failed:", err)
		return 1
	}
	if res.Failed() {
		return 1
	}
	return 0
}
