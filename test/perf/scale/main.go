// Command scale measures how Spindle's node agent grows with the cluster,
// against a real API server (envtest: kube-apiserver + etcd started by the
// program itself):
//
//	(r) the resident memory of one spindle-agent process (bin/spindle-agent)
//	    with 10,000 and 100,000 SpiderIPClaims in the cluster, once with the
//	    claims in pools its node may use and once in pools it may not, and
//	    the time and CPU it takes to become ready;
//	(w) the API server's CPU time per allocation with 10, 50 and 200 agents
//	    watching (in this process, each with its own informers): one agent
//	    allocates from a pool only its node may use, the others serve nodes
//	    that cannot use that pool.
//
// It prints a table, writes a PNG plot of both curves and ends with one
// summary line starting with "bench_scale:".
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var b bench
	claims := flag.String("claims", "10000,100000", "claim counts in the cluster for (r)")
	agents := flag.String("agents", "10,50,200", "watching agent counts for (w)")
	flag.IntVar(&b.allocs, "allocs", 300, "allocations per repetition of (w)")
	flag.IntVar(&b.reps, "reps", 3, "repetitions of (w) per agent count and of (r) per state; medians are reported")
	flag.StringVar(&b.agentBin, "agent-bin", "bin/spindle-agent", "the agent binary measured in (r), relative to the repository root")
	flag.StringVar(&b.plot, "plot", "_out/bench-scale.png", "PNG plot written at the end (relative to the repository root; empty: none)")
	flag.StringVar(&b.jsonOut, "json", "_out/bench-scale.json", "results as JSON (relative to the repository root; empty: none)")
	flag.StringVar(&b.baseline, "baseline", "test/perf/scale/testdata/before.json", "results of an earlier run drawn as the reference curves and reported as before_* keys (empty: none)")
	flag.StringVar(&b.only, "only", "", "run only r or w")
	flag.Parse()
	var err error
	if b.claimCounts, err = ints(*claims); err == nil {
		b.agentCounts, err = ints(*agents)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench_scale:", err)
		os.Exit(2)
	}
	start := time.Now()
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench_scale:", err)
		os.Exit(1)
	}
	fmt.Printf("# total bench time %v\n", time.Since(start).Round(time.Second))
	fmt.Println(b.summary())
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("failed to parse %q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
