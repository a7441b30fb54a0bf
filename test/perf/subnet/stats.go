package main

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0-100) of d in seconds, by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. An empty slice gives 0.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1].Seconds()
}

// median returns the median of v (the mean of the middle two for an even
// count); an empty slice gives 0.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// duplicates counts the addresses held by more than one pod: for every
// address, each holder beyond the first counts once. held maps a pod to its
// addresses; a pod listing an address twice counts as one holder.
func duplicates(held map[string][]netip.Addr) (n int, examples []string) {
	holders := map[netip.Addr][]string{}
	for pod, addrs := range held {
		seen := map[netip.Addr]bool{}
		for _, a := range addrs {
			if !seen[a] {
				seen[a] = true
				holders[a] = append(holders[a], pod)
			}
		}
	}
	for a, pods := range holders {
		if len(pods) > 1 {
			n += len(pods) - 1
			sort.Strings(pods)
			examples = append(examples, fmt.Sprintf("%s held by %s", a, strings.Join(pods, ", ")))
		}
	}
	sort.Strings(examples)
	return n, examples
}

// addrRange returns the inclusive range of n addresses starting at first,
// written as a pool's or subnet's spec.ips entry.
func addrRange(first netip.Addr, n int) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("failed to make a range of %d addresses from %s: want at least one", n, first)
	}
	last := first
	for range n - 1 {
		last = last.Next()
		if !last.IsValid() {
			return "", fmt.Errorf("failed to make a range of %d addresses from %s: it runs past the end of the address space", n, first)
		}
	}
	return first.String() + "-" + last.String(), nil
}

// phaseResult is what one phase (manual pool or carved pools) measured.
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
	auto := median(seconds(s.auto, func(r phaseResult) time.Duration { return r.allRunning }))
	manual := median(seconds(s.manual, func(r phaseResult) time.Duration { return r.allRunning }))
	ratio := 0.0
	if manual > 0 {
		ratio = auto / manual
	}
	all := append(slices.Clone(s.manual), s.auto...)
	return fmt.Sprintf("bench_subnet: apps=%d pods=%d pools_ready_p50_s=%.1f pools_ready_p99_s=%.1f all_running_s=%.1f manual_all_running_s=%.1f ratio=%.2f delete_s=%.1f manual_delete_s=%.1f sandbox_failures=%d manual_sandbox_failures=%d duplicates=%d claim_mismatches=%d reps=%d",
		s.apps, s.apps*s.replicas,
		percentile(ready, 50), percentile(ready, 99), auto, manual, ratio,
		median(seconds(s.auto, func(r phaseResult) time.Duration { return r.deleted })),
		median(seconds(s.manual, func(r phaseResult) time.Duration { return r.deleted })),
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
			p50, p99 = fmt.Sprintf("%.1f", percentile(r.poolsReady, 50)), fmt.Sprintf("%.1f", percentile(r.poolsReady, 99))
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
func metricSum(text, name string, labels ...string) (sum float64, ok bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		set := ""
		if rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			set, rest = rest[1:end], rest[end+1:]
		}
		match := true
		for _, l := range labels {
			if !slices.Contains(strings.Split(set, ","), l) {
				match = false
			}
		}
		fields := strings.Fields(rest)
		if !match || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}
