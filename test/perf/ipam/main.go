// Command ipam measures Spindle's IPAM storage against a real API server
// (envtest: kube-apiserver + etcd started by the program itself):
//
//	(a) the API server's object-create ceiling (32 requests in flight);
//	(b) a single-object read-modify-write baseline (32 writers updating one
//	    pool status, the design Spindle replaces);
//	(c) Spindle: 10 node agents allocating 1000 addresses from one /16
//	    pool through the agent's ADD path (32 in flight), then releasing them;
//	(d) ADD latency with the pool empty vs. 90% full at /16 scale;
//	and the spiderpool plugin's own exec overhead (process start to request
//	sent) against a stub agent socket.
//
// It prints a table and ends with one summary line starting with "bench:".
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	reps := flag.Int("reps", 3, "repetitions of (a), (b) and (c); medians are reported")
	creates := flag.Int("creates", 2000, "objects created per repetition of (a)")
	rmw := flag.Int("rmw", 400, "allocations per repetition of (b)")
	allocs := flag.Int("allocs", 1000, "addresses allocated per repetition of (c)")
	agents := flag.Int("agents", 10, "node agents in (c)")
	fill := flag.Float64("fill", 0.9, "fill level of the full pool in (d)")
	samples := flag.Int("samples", 200, "sequential ADDs per pool in (d)")
	execs := flag.Int("execs", 50, "plugin executions for the exec overhead")
	seWorkers := flag.Int("endpoint-workers", 0, "background SpiderEndpoint writers per agent (0: the agent's default)")
	only := flag.String("only", "", "comma-separated subset of plugin,a,b,c,d to run (default: all)")
	skipSync := flag.Bool("skip-sync", false, "skip the synchronous-SpiderEndpoint variant of (c)")
	flag.Parse()
	b := &bench{reps: *reps, creates: *creates, rmw: *rmw, allocs: *allocs, agents: *agents, fill: *fill,
		samples: *samples, execs: *execs, skipSync: *skipSync, seWorkers: *seWorkers, only: *only}
	start := time.Now()
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("# total bench time %v\n", time.Since(start).Round(time.Second))
	fmt.Println(b.summary())
}
