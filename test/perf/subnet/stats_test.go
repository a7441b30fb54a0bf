package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/subnets"
)

func secs(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, s := range v {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	cases := []struct {
		name string
		d    []time.Duration
		p    float64
		want float64
	}{
		{"empty", nil, 99, 0},
		{"one", secs(3), 50, 3},
		{"p50 of 1..100", secs(hundred...), 50, 50},
		{"p99 of 1..100", secs(hundred...), 99, 99},
		{"p100 of 1..100", secs(hundred...), 100, 100},
		{"p99 of 10 is the largest", secs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10},
		{"p50 of 4", secs(4, 1, 3, 2), 50, 2},
		{"p0 is the smallest", secs(4, 1, 3, 2), 0, 1},
	}
	for _, c := range cases {
		if got := percentile(c.d, c.p); got != c.want {
			t.Errorf("%s: percentile = %v, want %v", c.name, got, c.want)
		}
	}
	d := secs(3, 1, 2)
	percentile(d, 50)
	if d[0] != secs(3)[0] {
		t.Error("percentile sorted its input")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestDuplicates(t *testing.T) {
	a, b, c := netip.MustParseAddr("172.30.16.1"), netip.MustParseAddr("172.30.16.2"), netip.MustParseAddr("172.30.16.3")
	n, ex := duplicates(map[string][]netip.Addr{"p1": {a}, "p2": {b}, "p3": {c}})
	if n != 0 || len(ex) != 0 {
		t.Fatalf("distinct addresses: %d duplicates %v", n, ex)
	}
	// A pod listing its own address twice is not a duplicate.
	if n, _ := duplicates(map[string][]netip.Addr{"p1": {a, a}}); n != 0 {
		t.Fatalf("one pod, one address listed twice: %d duplicates", n)
	}
	n, ex = duplicates(map[string][]netip.Addr{"p1": {a}, "p2": {a}, "p3": {a}, "p4": {b}, "p5": {b}, "p6": {c}})
	if n != 3 {
		t.Fatalf("a held by 3 pods, b by 2: %d duplicates, want 3", n)
	}
	want := []string{"172.30.16.1 held by p1, p2, p3", "172.30.16.2 held by p4, p5"}
	if strings.Join(ex, "|") != strings.Join(want, "|") {
		t.Fatalf("examples %q, want %q", ex, want)
	}
}

func TestAddrRange(t *testing.T) {
	got, err := addrRange(netip.MustParseAddr("172.30.16.0"), 1024)
	if err != nil || got != "172.30.16.0-172.30.19.255" {
		t.Fatalf("1024 from 172.30.16.0 = %q, %v", got, err)
	}
	if got, _ := addrRange(netip.MustParseAddr("10.0.0.7"), 1); got != "10.0.0.7-10.0.0.7" {
		t.Fatalf("one address = %q", got)
	}
	if _, err := addrRange(netip.MustParseAddr("10.0.0.7"), 0); err == nil {
		t.Fatal("a range of no addresses was accepted")
	}
	if _, err := addrRange(netip.MustParseAddr("255.255.255.254"), 4); err == nil {
		t.Fatal("a range past 255.255.255.255 was accepted")
	}
}

func TestSummaryLine(t *testing.T) {
	s := summary{apps: 2, replicas: 10,
		manual: []phaseResult{
			{allRunning: 40 * time.Second, deleted: 20 * time.Second, pods: 20, sandboxFailures: 1},
			{allRunning: 60 * time.Second, deleted: 30 * time.Second, pods: 20},
			{allRunning: 50 * time.Second, deleted: 10 * time.Second, pods: 20},
		},
		auto: []phaseResult{
			{allRunning: 55 * time.Second, deleted: 25 * time.Second, pods: 20, poolsReady: secs(1, 2), sandboxFailures: 7},
			{allRunning: 65 * time.Second, deleted: 25 * time.Second, pods: 20, poolsReady: secs(3, 4), duplicates: 1},
			{allRunning: 60 * time.Second, deleted: 25 * time.Second, pods: 20, poolsReady: secs(5, 6), claimMismatches: 2},
		},
	}
	want := "bench_subnet: apps=2 pods=20 pools_ready_p50_s=3.0 pools_ready_p99_s=6.0 all_running_s=60.0 manual_all_running_s=50.0 ratio=1.20 " +
		"delete_s=25.0 manual_delete_s=20.0 sandbox_failures=7 manual_sandbox_failures=1 duplicates=1 claim_mismatches=2 reps=3"
	if got := s.line(); got != want {
		t.Fatalf("summary line\n got %s\nwant %s", got, want)
	}
	if f := s.failures(); !strings.Contains(f, "1 addresses held by more than one pod") || !strings.Contains(f, "2 pod addresses") {
		t.Fatalf("failures = %q", f)
	}
	s.auto[1].duplicates, s.auto[2].claimMismatches = 0, 0
	if f := s.failures(); f != "" {
		t.Fatalf("failures of a clean run = %q", f)
	}
	var out strings.Builder
	s.table(&out)
	if strings.Count(out.String(), "\nmanual ") != 3 || strings.Count(out.String(), "\nauto ") != 3 {
		t.Fatalf("table lacks rows:\n%s", out.String())
	}
}

func TestSummaryLineWithoutManualRun(t *testing.T) {
	s := summary{apps: 1, replicas: 1, auto: []phaseResult{{allRunning: time.Second}}}
	if !strings.Contains(s.line(), " ratio=0.00 ") {
		t.Fatalf("ratio without a manual phase: %s", s.line())
	}
}

func pod(name, uid string, phase corev1.PodPhase, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}, Status: corev1.PodStatus{Phase: phase}}
	if phase == corev1.PodRunning {
		p.Status.PodIP = "10.244.1.2"
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func TestPodTracker(t *testing.T) {
	tr := newPodTracker(2)
	t0 := time.Unix(1000, 0)
	tr.observe(pod("a", "1", corev1.PodPending, false), t0)
	tr.observe(pod("a", "1", corev1.PodRunning, true), t0.Add(time.Second))
	tr.observe(pod("b", "2", corev1.PodRunning, false), t0.Add(2*time.Second))
	if present, running := tr.counts(); present != 2 || running != 1 {
		t.Fatalf("counts = %d, %d; want 2 present, 1 running (b is not Ready)", present, running)
	}
	select {
	case <-tr.all:
		t.Fatal("all Running with one of two")
	default:
	}
	terminating := pod("b", "2", corev1.PodRunning, true)
	terminating.DeletionTimestamp = &metav1.Time{Time: t0}
	tr.observe(terminating, t0.Add(3*time.Second))
	if !tr.allRunningAt().IsZero() {
		t.Fatal("a terminating pod counted as Running")
	}
	tr.observe(pod("b", "2", corev1.PodRunning, true), t0.Add(4*time.Second))
	select {
	case <-tr.all:
	default:
		t.Fatal("not all Running with two of two")
	}
	if got := tr.allRunningAt(); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("all Running at %v, want the time the second came up", got)
	}
	// Later changes do not move the time nor close the channel twice.
	tr.observe(pod("c", "3", corev1.PodRunning, true), t0.Add(5*time.Second))
	if got := tr.allRunningAt(); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("all Running moved to %v", got)
	}
	failed := pod("d", "4", corev1.PodFailed, false)
	failed.Status.Reason, failed.Status.Message = "Evicted", "node ran out of pods"
	tr.observe(failed, t0)
	if f := tr.failures(); f["d"] != "Evicted: node ran out of pods" || len(f) != 1 {
		t.Fatalf("failures = %v", f)
	}
	for _, p := range []*corev1.Pod{pod("a", "1", "", false), pod("b", "2", "", false), pod("c", "3", "", false), failed} {
		tr.forget(p)
	}
	if present, running := tr.counts(); present != 0 || running != 0 {
		t.Fatalf("after deletes: %d present, %d running", present, running)
	}
}

func TestPoolTracker(t *testing.T) {
	tr := newPoolTracker(3)
	t0 := time.Unix(1000, 0)
	mk := func(app, ips string) *v2beta1.SpiderIPPool {
		return &v2beta1.SpiderIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: "auto4-" + app, Labels: map[string]string{subnets.LabelAppName: app}},
			Spec:       v2beta1.IPPoolSpec{Subnet: "172.30.0.0/16", IPs: []string{ips}},
		}
	}
	tr.observe(mk("web", "172.30.32.0-172.30.32.1"), t0)
	if _, ok := tr.ready("web"); ok {
		t.Fatal("a pool of 2 addresses counted as ready for 3 replicas")
	}
	tr.observe(mk("web", "172.30.32.0-172.30.32.2"), t0.Add(time.Second))
	tr.observe(mk("web", "172.30.32.0-172.30.32.3"), t0.Add(2*time.Second))
	if at, ok := tr.ready("web"); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("web ready at %v (%v), want the first time it had 3 addresses", at, ok)
	}
	unlabelled := mk("x", "172.30.40.0-172.30.40.9")
	unlabelled.Labels = nil
	tr.observe(unlabelled, t0)
	deleting := mk("db", "172.30.33.0-172.30.33.9")
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	tr.observe(deleting, t0)
	if tr.count() != 1 {
		t.Fatalf("%d pools ready, want only web's", tr.count())
	}
}

func TestMetricSum(t *testing.T) {
	text := `# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="subnet-apps",result="error"} 2
controller_runtime_reconcile_total{controller="subnet-apps",result="success"} 31
controller_runtime_reconcile_total{controller="poolstatus",result="success"} 500
controller_runtime_reconcile_time_seconds_sum{controller="subnet-apps"} 249.25
controller_runtime_reconcile_time_seconds_count{controller="subnet-apps"} 33
process_start_time_seconds 1.7e+09
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"controller_runtime_reconcile_total", []string{`controller="subnet-apps"`}, 33, true},
		{"controller_runtime_reconcile_total", []string{`controller="subnet-apps"`, `result="success"`}, 31, true},
		{"controller_runtime_reconcile_total", nil, 533, true},
		{"controller_runtime_reconcile_time_seconds_sum", []string{`controller="subnet-apps"`}, 249.25, true},
		{"controller_runtime_reconcile_time_seconds", []string{`controller="subnet-apps"`}, 0, false},
		{"process_start_time_seconds", nil, 1.7e9, true},
		{"controller_runtime_reconcile_total", []string{`controller="missing"`}, 0, false},
	} {
		got, ok := metricSum(text, c.name, c.labels...)
		if got != c.want || ok != c.ok {
			t.Errorf("metricSum(%s, %v) = %v, %v; want %v, %v", c.name, c.labels, got, ok, c.want, c.ok)
		}
	}
}
