package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/lab/shim"
	"github.com/spindle-net/spindle/test/prereq"
)

func TestPlanFaultsIsSeededAndCoversEveryKind(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	a := PlanFaults(16, 4*time.Minute, nodes, 0)
	b := PlanFaults(16, 4*time.Minute, nodes, 0)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different plans:\n%v\n%v", a, b)
	}
	if c := PlanFaults(17, 4*time.Minute, nodes, 0); reflect.DeepEqual(a, c) {
		t.Fatalf("seeds 16 and 17 gave the same plan %v", a)
	}
	kinds := map[string]int{}
	for i, f := range a {
		kinds[f.Kind]++
		if i > 0 && f.At < a[i-1].At {
			t.Errorf("plan not in time order: %v", a)
		}
		if f.At > 4*time.Minute*8/10 {
			t.Errorf("%s after 80%% of the churn", f)
		}
		if f.Kind == FaultNodeLoss && f.At > 2*time.Minute {
			t.Errorf("%s: node loss after the middle of the churn", f)
		}
	}
	for _, k := range FaultKinds {
		if kinds[k] != 1 {
			t.Errorf("kind %s planned %d times, want once: %v", k, kinds[k], a)
		}
	}
	long := PlanFaults(16, 30*time.Minute, nodes, 2*time.Minute)
	if len(long) != len(FaultKinds)+15 {
		t.Errorf("a 30-minute run with one extra fault per 2 minutes has %d faults, want %d", len(long), len(FaultKinds)+15)
	}
	n := 0
	for _, f := range long {
		if f.Kind == FaultNodeLoss {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d node losses planned, want 1", n)
	}
}

func TestChoose(t *testing.T) {
	for _, c := range []struct {
		u, v, rate float64
		watch      bool
		want       string
	}{
		{0.5, 0.1, 0, false, InjectNone},
		{0.1, 0.1, 0.3, true, InjectNone},
		{0.3, 0.1, 0.3, false, InjectNone},
		{0.29, 0.1, 0.3, false, InjectHTTP},
		{0.29, 0.6, 0.3, false, InjectRetry},
		{0.29, 0.9, 0.3, false, InjectReset},
	} {
		if got := Choose(c.u, c.v, c.rate, c.watch); got != c.want {
			t.Errorf("Choose(%v, %v, %v, %v) = %q, want %q", c.u, c.v, c.rate, c.watch, got, c.want)
		}
	}
}

func TestFaultProxyFailsAShareAndRelaysTheRest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	p := NewFaultProxy(u, http.DefaultTransport, 1)
	front := httptest.NewServer(p)
	defer front.Close()
	// No connection reuse: a transport retries a request whose reused
	// connection was dropped, which would hide an injected drop.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (int, string, error) {
		resp, err := c.Get(front.URL + "/api/v1/pods")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for range 20 {
		code, body, err := get()
		if err != nil || code != 200 || body != "upstream /api/v1/pods" {
			t.Fatalf("rate 0: %d %q %v", code, body, err)
		}
	}
	p.SetRate(0.5)
	failed := 0
	for range 200 {
		code, body, err := get()
		switch {
		case err != nil:
			failed++
		case code == 500 || code == 429:
			if !strings.Contains(body, `"kind":"Status"`) {
				t.Fatalf("injected %d without a Status body: %q", code, body)
			}
			failed++
		case code != 200:
			t.Fatalf("unexpected %d %q", code, body)
		}
	}
	if failed < 60 || failed > 140 || p.Injected.Load() != int64(failed) {
		t.Fatalf("rate 0.5: %d of 200 failed, %d counted as injected", failed, p.Injected.Load())
	}
}

func TestInvariants(t *testing.T) {
	a := netip.MustParseAddr("172.30.180.10")
	b := netip.MustParseAddr("fd30:172:30::b40a")
	pod := func(name, uid string) PodView { return PodView{Namespace: "ns", Name: name, UID: uid} }
	s := Snapshot{
		Live:   map[string]PodView{"u1": pod("p1", "u1"), "u2": pod("p2", "u2")},
		Exists: map[string]bool{"u1": true, "u2": true, "u3": true},
		Addrs: map[string][]AddrOn{
			"u1": {{"net1", a}, {"net1", b}},
			"u2": {{"net1", a}},
			"u3": {{"net1", b}}, // not live (terminating): neither duplicate nor lost
		},
		Claims: []Claim{
			{Name: "c1", Pool: "v4", Address: "172.30.180.10", PodUID: "u1"},
			{Name: "c2", Pool: "v6", Address: "fd30:172:30:0::b40a/64", PodUID: "u1"},
			{Name: "c3", Pool: "v4", Address: "172.30.180.11", PodUID: "gone"},
		},
	}
	if d := Duplicates(s); len(d) != 1 || !strings.Contains(d[0], "172.30.180.10") {
		t.Errorf("duplicates %v", d)
	}
	if l := Lost(s); len(l) != 1 || !strings.Contains(l[0], "pod ns/p2 (uid u2) runs with 172.30.180.10") {
		t.Errorf("lost %v", l)
	}
	if l := Leaked(s.Claims, s.Exists); len(l) != 1 || !strings.Contains(l[0], "claim c3") {
		t.Errorf("leaked %v", l)
	}
	two, one := int64(2), int64(1)
	if d := CounterDrift([]PoolView{{"v4", &two}, {"v6", &one}, {"empty", nil}}, s.Claims); len(d) != 0 {
		t.Errorf("counters %v", d)
	}
	if d := CounterDrift([]PoolView{{"v4", &one}}, s.Claims); len(d) != 1 || d[0] != "pool v4: status.allocatedIPCount 1, claims 2" {
		t.Errorf("counters %v", d)
	}
	eps := []EndpointView{{"ns", "p1", "u1", []string{"fd30:172:30::b40a/64", "172.30.180.10/16"}}, {"ns", "p2", "old", nil}}
	if d := EndpointDrift(s.Live, eps, s.Claims); len(d) != 1 || !strings.Contains(d[0], "names uid old") {
		t.Errorf("endpoints %v", d)
	}
	now := time.Now()
	dels := []shim.DelRecord{
		{Time: now.Add(-time.Minute), Namespace: "ns", Name: "x", UID: "gone", Phase: "teardown", OK: true},
		{Time: now.Add(-time.Minute), Namespace: "ns", Name: "p1", UID: "u1", Phase: "teardown", OK: true},    // pod still there
		{Time: now.Add(-time.Second), Namespace: "ns", Name: "y", UID: "gone", Phase: "teardown", OK: true},   // too recent
		{Time: now.Add(-time.Minute), Namespace: "ns", Name: "z", UID: "gone", Phase: "failed-add", OK: true}, // the pod retries
	}
	if h := HeldAfterDel(dels, s.Claims, s.Exists, now, 15*time.Second); len(h) != 1 || !strings.Contains(h[0], "claim c3") {
		t.Errorf("held %v", h)
	}
	sts := []Claim{{Name: "s", PodUID: "gone", OwnerKind: "StatefulSet"}}
	if h := HeldAfterDel(dels[:1], sts, s.Exists, now, 0); len(h) != 0 {
		t.Errorf("a StatefulSet's claim kept for the next incarnation counted as held: %v", h)
	}
	if l := Leaked(sts, s.Exists); len(l) != 0 {
		t.Errorf("a StatefulSet's claim kept for the next incarnation counted as leaked: %v", l)
	}
}

func TestLineAndFailure(t *testing.T) {
	r := Result{Seed: 16, Pods: 1000, Faults: 7, Violations: map[string][]string{}, Reclaim: []time.Duration{31 * time.Second, 33 * time.Second, 40 * time.Second}}
	want := "chaos: seed=16 pods=1000 faults=7 duplicates=0 lost=0 leaked=0 counter_drift=0 dels_ok_but_held=0 node_reclaim_max_s=40.0 node_reclaim_p50_s=33.0"
	if got := r.Line(); got != want || r.Failed() {
		t.Fatalf("got %q (failed %v), want %q", got, r.Failed(), want)
	}
	r.Violations["lost"] = []string{"x"}
	if !r.Failed() || !strings.Contains(r.Line(), " lost=1 ") {
		t.Fatalf("a violation: %q failed=%v", r.Line(), r.Failed())
	}
}

// TestLabChaos is the short chaos run of make test, on the lab whose
// kubeconfig LAB_KUBECONFIG names (test/lab/run-suites.sh runs it last: it
// kills the control plane). CHAOS_OUT names a file that gets the output.
func TestLabChaos(t *testing.T) {
	prereq.Tier(t, prereq.LabE2E)
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the chaos run enters the lab's network namespaces and kills its processes: run it as root")
		return
	}
	kc := os.Getenv("LAB_KUBECONFIG")
	if kc == "" {
		prereq.Missing(t, "a running lab: set LAB_KUBECONFIG to its kubeconfig (make test-lab does)")
		return
	}
	wd, _ := os.Getwd()
	repo := framework.RepoRoot(wd)
	if _, err := os.Stat(filepath.Join(repo, "bin", "lab")); err != nil {
		prereq.Missing(t, "bin/lab: run make build")
		return
	}
	o := ShortOptions(repo, filepath.Dir(kc))
	var out io.Writer = testWriter{t}
	if p := os.Getenv("CHAOS_OUT"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		out = io.MultiWriter(out, f)
	}
	o.Log = out
	if rc := report(context.Background(), o); rc != 0 {
		t.Fatalf("chaos run failed (see the output above)")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
