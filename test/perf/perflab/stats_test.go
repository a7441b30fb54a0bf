package perflab

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
		if got := Percentile(c.d, c.p); got != c.want {
			t.Errorf("%s: Percentile = %v, want %v", c.name, got, c.want)
		}
	}
	d := secs(3, 1, 2)
	Percentile(d, 50)
	if d[0] != secs(3)[0] {
		t.Error("Percentile sorted its input")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{5}, 5}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.v); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestDuplicates(t *testing.T) {
	a, b, c := netip.MustParseAddr("172.30.16.1"), netip.MustParseAddr("172.30.16.2"), netip.MustParseAddr("172.30.16.3")
	n, ex := Duplicates(map[string][]netip.Addr{"p1": {a}, "p2": {b}, "p3": {c}})
	if n != 0 || len(ex) != 0 {
		t.Fatalf("distinct addresses: %d duplicates %v", n, ex)
	}
	// A pod listing its own address twice is not a duplicate.
	if n, _ := Duplicates(map[string][]netip.Addr{"p1": {a, a}}); n != 0 {
		t.Fatalf("one pod, one address listed twice: %d duplicates", n)
	}
	n, ex = Duplicates(map[string][]netip.Addr{"p1": {a}, "p2": {a}, "p3": {a}, "p4": {b}, "p5": {b}, "p6": {c}})
	if n != 3 {
		t.Fatalf("a held by 3 pods, b by 2: %d duplicates, want 3", n)
	}
	want := []string{"172.30.16.1 held by p1, p2, p3", "172.30.16.2 held by p4, p5"}
	if strings.Join(ex, "|") != strings.Join(want, "|") {
		t.Fatalf("examples %q, want %q", ex, want)
	}
}

func TestAddrRange(t *testing.T) {
	got, err := AddrRange(netip.MustParseAddr("172.30.16.0"), 1024)
	if err != nil || got != "172.30.16.0-172.30.19.255" {
		t.Fatalf("1024 from 172.30.16.0 = %q, %v", got, err)
	}
	if got, _ := AddrRange(netip.MustParseAddr("10.0.0.7"), 1); got != "10.0.0.7-10.0.0.7" {
		t.Fatalf("one address = %q", got)
	}
	if _, err := AddrRange(netip.MustParseAddr("10.0.0.7"), 0); err == nil {
		t.Fatal("a range of no addresses was accepted")
	}
	if _, err := AddrRange(netip.MustParseAddr("255.255.255.254"), 4); err == nil {
		t.Fatal("a range past 255.255.255.255 was accepted")
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
	tr := NewPodTracker(2)
	t0 := time.Unix(1000, 0)
	tr.Observe(pod("a", "1", corev1.PodPending, false), t0)
	tr.Observe(pod("a", "1", corev1.PodRunning, true), t0.Add(time.Second))
	tr.Observe(pod("b", "2", corev1.PodRunning, false), t0.Add(2*time.Second))
	if present, running := tr.Counts(); present != 2 || running != 1 {
		t.Fatalf("counts = %d, %d; want 2 present, 1 running (b is not Ready)", present, running)
	}
	select {
	case <-tr.All():
		t.Fatal("all Running with one of two")
	default:
	}
	terminating := pod("b", "2", corev1.PodRunning, true)
	terminating.DeletionTimestamp = &metav1.Time{Time: t0}
	tr.Observe(terminating, t0.Add(3*time.Second))
	if !tr.AllRunningAt().IsZero() {
		t.Fatal("a terminating pod counted as Running")
	}
	tr.Observe(pod("b", "2", corev1.PodRunning, true), t0.Add(4*time.Second))
	select {
	case <-tr.All():
	default:
		t.Fatal("not all Running with two of two")
	}
	if got := tr.AllRunningAt(); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("all Running at %v, want the time the second came up", got)
	}
	// Later changes do not move the time nor close the channel twice.
	tr.Observe(pod("c", "3", corev1.PodRunning, true), t0.Add(5*time.Second))
	if got := tr.AllRunningAt(); !got.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("all Running moved to %v", got)
	}
	failed := pod("d", "4", corev1.PodFailed, false)
	failed.Status.Reason, failed.Status.Message = "Evicted", "node ran out of pods"
	tr.Observe(failed, t0)
	if f := tr.Failures(); f["d"] != "Evicted: node ran out of pods" || len(f) != 1 {
		t.Fatalf("failures = %v", f)
	}
	for _, p := range []*corev1.Pod{pod("a", "1", "", false), pod("b", "2", "", false), pod("c", "3", "", false), failed} {
		tr.Forget(p)
	}
	if present, running := tr.Counts(); present != 0 || running != 0 {
		t.Fatalf("after deletes: %d present, %d running", present, running)
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
		got, ok := MetricSum(text, c.name, c.labels...)
		if got != c.want || ok != c.ok {
			t.Errorf("MetricSum(%s, %v) = %v, %v; want %v, %v", c.name, c.labels, got, ok, c.want, c.ok)
		}
	}
}
