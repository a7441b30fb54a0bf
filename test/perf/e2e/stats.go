package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/perf/perflab"
)

// phaseResult is what one phase measured.
type phaseResult struct {
	// allRunning is the time from the first Deployment create until every
	// pod was Running.
	allRunning time.Duration
	// deleted is the time from the first Deployment delete until no pod
	// (and no claim) of the phase was left.
	deleted time.Duration
	pods    int
	// duplicates counts net1 addresses held by more than one Running pod.
	duplicates int
	// failedAdds sums the FailedCreatePodSandBox events of the pods: CNI
	// ADDs that failed and were retried.
	failedAdds int
	adds       addTimings
}

// summary is the result of all repetitions.
type summary struct {
	pods, nodes        int
	spindle, hostLocal []phaseResult
}

func (s *summary) add(kind ipamKind, r phaseResult) {
	if kind == hostLocal {
		s.hostLocal = append(s.hostLocal, r)
	} else {
		s.spindle = append(s.spindle, r)
	}
}

func medianSeconds(rs []phaseResult, f func(phaseResult) time.Duration) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r).Seconds()
	}
	return perflab.Median(v)
}

func total(rs []phaseResult, f func(phaseResult) int) int {
	n := 0
	for _, r := range rs {
		n += f(r)
	}
	return n
}

// pooled gathers one span of every pod of every repetition.
func pooled(rs []phaseResult, f func(addTimings) []time.Duration) []time.Duration {
	var out []time.Duration
	for _, r := range rs {
		out = append(out, f(r.adds)...)
	}
	return out
}

// line renders the summary line. Phase times are medians over the
// repetitions; ADD percentiles pool every pod of every repetition; counts
// are totals.
func (s summary) line() string {
	create := medianSeconds(s.spindle, func(r phaseResult) time.Duration { return r.allRunning })
	hlCreate := medianSeconds(s.hostLocal, func(r phaseResult) time.Duration { return r.allRunning })
	ratio := 0.0
	if hlCreate > 0 {
		ratio = create / hlCreate
	}
	add := pooled(s.spindle, func(t addTimings) []time.Duration { return t.total })
	hlAdd := pooled(s.hostLocal, func(t addTimings) []time.Duration { return t.total })
	ipam := pooled(s.spindle, func(t addTimings) []time.Duration { return t.ipam })
	coord := pooled(s.spindle, func(t addTimings) []time.Duration { return t.coordinator })
	return fmt.Sprintf("bench_e2e: pods=%d nodes=%d spindle_create_s=%.1f hostlocal_create_s=%.1f ratio=%.2f spindle_delete_s=%.1f hostlocal_delete_s=%.1f"+
		" add_p50_ms=%.0f add_p99_ms=%.0f hostlocal_add_p50_ms=%.0f hostlocal_add_p99_ms=%.0f ipam_p50_ms=%.1f ipam_p99_ms=%.1f coordinator_p50_ms=%.0f"+
		" spindle_dups=%d hostlocal_dups=%d failed_adds=%d hostlocal_failed_adds=%d reps=%d",
		s.pods, s.nodes, create, hlCreate, ratio,
		medianSeconds(s.spindle, func(r phaseResult) time.Duration { return r.deleted }),
		medianSeconds(s.hostLocal, func(r phaseResult) time.Duration { return r.deleted }),
		ms(add, 50), ms(add, 99), ms(hlAdd, 50), ms(hlAdd, 99), ms(ipam, 50), ms(ipam, 99), ms(coord, 50),
		total(s.spindle, func(r phaseResult) int { return r.duplicates }),
		total(s.hostLocal, func(r phaseResult) int { return r.duplicates }),
		total(s.spindle, func(r phaseResult) int { return r.failedAdds }),
		total(s.hostLocal, func(r phaseResult) int { return r.failedAdds }),
		min(len(s.spindle), len(s.hostLocal)))
}

// failures says why the run failed, or "" when it did not. host-local's
// duplicates are its nature (leases per node), not a failure.
func (s summary) failures() string {
	var out []string
	if n := total(s.spindle, func(r phaseResult) int { return r.duplicates }); n > 0 {
		out = append(out, fmt.Sprintf("%d Spindle addresses held by more than one pod", n))
	}
	if len(pooled(s.spindle, func(t addTimings) []time.Duration { return t.total })) == 0 {
		out = append(out, "no CNI ADD of the spindle pods found in the lab's logs")
	}
	return strings.Join(out, "; ")
}

// table prints one row per phase and repetition, then the per-pod split
// of the ADD (medians over every pod of every repetition).
func (s summary) table(w io.Writer) {
	fmt.Fprintf(w, "\n%-10s %4s %6s %10s %10s %11s %11s %6s %7s\n", "phase", "rep", "pods", "create_s", "delete_s", "add_p50_ms", "add_p99_ms", "dups", "failed")
	row := func(name string, i int, r phaseResult) {
		fmt.Fprintf(w, "%-10s %4d %6d %10.1f %10.1f %11.0f %11.0f %6d %7d\n", name, i+1, r.pods, r.allRunning.Seconds(), r.deleted.Seconds(),
			ms(r.adds.total, 50), ms(r.adds.total, 99), r.duplicates, r.failedAdds)
	}
	for i := range max(len(s.spindle), len(s.hostLocal)) {
		if i < len(s.spindle) {
			row("spindle", i, s.spindle[i])
		}
		if i < len(s.hostLocal) {
			row("hostlocal", i, s.hostLocal[i])
		}
	}
	fmt.Fprintf(w, "\nper pod ADD, median ms (p99):\n%-10s %12s %12s %12s %12s %12s %14s\n", "phase", "total", "multus+eth0", "net1", "ipam(agent)", "coordinator", "multus-status")
	for _, k := range []struct {
		name string
		rs   []phaseResult
	}{{"spindle", s.spindle}, {"hostlocal", s.hostLocal}} {
		cell := func(f func(addTimings) []time.Duration) string {
			d := pooled(k.rs, f)
			if len(d) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f (%.0f)", ms(d, 50), ms(d, 99))
		}
		fmt.Fprintf(w, "%-10s %12s %12s %12s %12s %12s %14s\n", k.name,
			cell(func(t addTimings) []time.Duration { return t.total }), cell(func(t addTimings) []time.Duration { return t.eth0 }),
			cell(func(t addTimings) []time.Duration { return t.net1 }), cell(func(t addTimings) []time.Duration { return t.ipam }),
			cell(func(t addTimings) []time.Duration { return t.coordinator }), cell(func(t addTimings) []time.Duration { return t.tail }))
	}
	fmt.Fprintln(w)
}
