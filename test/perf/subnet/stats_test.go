package main

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
