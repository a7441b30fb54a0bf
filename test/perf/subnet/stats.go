package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/perf/perflab"
)

// percentile returns the p-th percentile (0-100) of d in seconds, by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. An empty slice gives 0.
type phaseResult struct {
	// allRunning is the time from the first Deployment create until every
	// pod was Running.
	allRunning time.Duration
	// poolsReady is, per Deployment, the time from its create until its
	// carved pool had its addresses (carved pools only).
	poolsReady []time.Duration
	// deleted is the time from the first Deployment delete until no pod,
	// claim or carved pool of the phase was left.
	deleted time.Duration
	pods    int
	// duplicates counts addresses held by more than one Running pod.
	duplicates int
	// claimMismatches counts the problems of Running pods' net1
	// addresses: no SpiderIPClaim, a claim naming another pod or pool, or
	// not exactly one IPv4 address.
	claimMismatches int
	// sandboxFailures sums the FailedCreatePodSandBox events of the pods:
	// CNI ADDs that failed and were retried.
	sandboxFailures int
}

// summary is the result of all repetitions.
type summary struct {
	apps, replicas int
	manual, auto   []phaseResult
}

func seconds(rs []phaseResult, f func(phaseResult) time.Duration) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r).Seconds()
	}
	return out
}

func total(rs []phaseResult, f func(phaseResult) int) int {
	n := 0
	for _, r := range rs {
		n += f(r)
	}
	return n
}

// line renders the summary line. Times are medians over the repetitions;
// the pool percentiles are those of every Deployment of every repetition;
// counts are totals.
func (s summary) line() string {
	var ready []time.Duration
	for _, r := range s.auto {
		ready = append(ready, r.poolsReady...)
	}
	auto := perflab.Median(seconds(s.auto, func(r phaseResult) time.Duration { return r.allRunning }))
	manual := perflab.Median(seconds(s.manual, func(r phaseResult) time.Duration { return r.allRunning }))
	ratio := 0.0
	if manual > 0 {
		ratio = auto / manual
	}
	all := append(slices.Clone(s.manual), s.auto...)
	return fmt.Sprintf("bench_subnet: apps=%d pods=%d pools_ready_p50_s=%.1f pools_ready_p99_s=%.1f all_running_s=%.1f manual_all_running_s=%.1f ratio=%.2f delete_s=%.1f manual_delete_s=%.1f sandbox_failures=%d manual_sandbox_failures=%d duplicates=%d claim_mismatches=%d reps=%d",
		s.apps, s.apps*s.replicas,
		perflab.Percentile(ready, 50), perflab.Percentile(ready, 99), auto, manual, ratio,
		perflab.Median(seconds(s.auto, func(r phaseResult) time.Duration { return r.deleted })),
		perflab.Median(seconds(s.manual, func(r phaseResult) time.Duration { return r.deleted })),
		total(s.auto, func(r phaseResult) int { return r.sandboxFailures }),
		total(s.manual, func(r phaseResult) int { return r.sandboxFailures }),
		total(all, func(r phaseResult) int { return r.duplicates }),
		total(all, func(r phaseResult) int { return r.claimMismatches }),
		min(len(s.manual), len(s.auto)))
}

// failures says why the run failed, or "" when it did not.
func (s summary) failures() string {
	all := append(slices.Clone(s.manual), s.auto...)
	var out []string
	if n := total(all, func(r phaseResult) int { return r.duplicates }); n > 0 {
		out = append(out, fmt.Sprintf("%d addresses held by more than one pod", n))
	}
	if n := total(all, func(r phaseResult) int { return r.claimMismatches }); n > 0 {
		out = append(out, fmt.Sprintf("%d pod addresses without a matching SpiderIPClaim", n))
	}
	return strings.Join(out, "; ")
}

// table prints one row per phase and repetition.
func (s summary) table(w io.Writer) {
	fmt.Fprintf(w, "\n%-8s %4s %6s %15s %12s %12s %10s %9s %10s\n", "phase", "rep", "pods", "all_running_s", "pools_p50_s", "pools_p99_s", "delete_s", "sandbox", "duplicates")
	row := func(name string, i int, r phaseResult) {
		p50, p99 := "-", "-"
		if len(r.poolsReady) > 0 {
			p50, p99 = fmt.Sprintf("%.1f", perflab.Percentile(r.poolsReady, 50)), fmt.Sprintf("%.1f", perflab.Percentile(r.poolsReady, 99))
		}
		fmt.Fprintf(w, "%-8s %4d %6d %15.1f %12s %12s %10.1f %9d %10d\n", name, i+1, r.pods, r.allRunning.Seconds(), p50, p99, r.deleted.Seconds(), r.sandboxFailures, r.duplicates)
	}
	for i := range max(len(s.manual), len(s.auto)) {
		if i < len(s.manual) {
			row("manual", i, s.manual[i])
		}
		if i < len(s.auto) {
			row("auto", i, s.auto[i])
		}
	}
	fmt.Fprintln(w)
}

// metricSum adds up the samples of metric name in Prometheus text exposition
// whose label set contains every one of labels (each written `key="value"`).
// ok is false when no sample matched.
