package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func pool(name, ips string, mut ...func(*v2beta1.SpiderIPPool)) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", Gateway: ptr.To("10.6.0.1"), IPs: []string{ips}}}
	for _, m := range mut {
		m(p)
	}
	return p
}

func claim(addr, pool, ns, pod, uid, iface string, age time.Duration) *v2beta1.SpiderIPClaim {
	c := v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: pool, PodNamespace: ns, PodName: pod, PodUID: uid, Interface: iface, Node: "n1"})
	c.UID = types.UID("claim-" + addr)
	c.CreationTimestamp = metav1.NewTime(now.Add(-age))
	return c
}

func runningPod(ns, name, uid, node string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Annotations: ann},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func netStatus(iface, mac string, ips ...string) string {
	b, _ := json.Marshal([]nadv1.NetworkStatus{{Name: "ns/underlay", Interface: iface, IPs: ips, Mac: mac}})
	return string(b)
}

func newEnv(t *testing.T, objs ...client.Object) (*Env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(objs...).Build()
	var out, errb bytes.Buffer
	return &Env{Stdout: &out, Stderr: &errb, Client: c, Now: func() time.Time { return now }, kube: kubeFlags{kubeconfig: writeKubeconfig(t)}}, &out, &errb
}

// writeKubeconfig writes a kubeconfig whose context namespace is "ctxns"
// (the client is the fake; only the namespace is read from it).
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	data := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ctxns}}]
current-context: x
`
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplitSubcommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		sub  string
		rest []string
	}{
		{[]string{"pools", "-o", "wide"}, "pools", []string{"-o", "wide"}},
		{[]string{"--context", "prod", "pools"}, "pools", []string{"--context", "prod"}},
		{[]string{"-n", "ns", "why", "ns/p"}, "why", []string{"-n", "ns", "ns/p"}},
		{[]string{"--kubeconfig=/k", "check"}, "check", []string{"--kubeconfig=/k"}},
		{[]string{"--help"}, "", []string{"--help"}},
		{nil, "", nil},
	} {
		sub, rest := SplitSubcommand(c.args)
		if sub != c.sub || strings.Join(rest, " ") != strings.Join(c.rest, " ") {
			t.Errorf("SplitSubcommand(%q) = %q %q, want %q %q", c.args, sub, rest, c.sub, c.rest)
		}
	}
}

func TestParsePodRef(t *testing.T) {
	if r, err := ParsePodRef("ns/p-1", "x"); err != nil || r != (PodRef{"ns", "p-1"}) {
		t.Errorf("ns/p-1: %v %v", r, err)
	}
	if r, err := ParsePodRef("p", "def"); err != nil || r != (PodRef{"def", "p"}) {
		t.Errorf("p: %v %v", r, err)
	}
	for _, bad := range []string{"", "/p", "ns/", "NS/p", "a/b/c", "p"} {
		if _, err := ParsePodRef(bad, ""); err == nil {
			t.Errorf("ParsePodRef(%q) accepted", bad)
		}
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{"10.6.0.5": "10.6.0.5", " fd00::5 ": "fd00::5", "::ffff:10.1.2.3": "10.1.2.3",
		"fd00-0000-0000-0000-0000-0000-0000-0005": "fd00::5"} {
		a, err := ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for _, bad := range []string{"", "10.6.0.5/24", "fe80::1%eth0", "host", "1-2-3-4-5-6-7-8"} {
		if _, err := ParseAddress(bad); err == nil {
			t.Errorf("ParseAddress(%q) accepted", bad)
		}
	}
}

func TestResolveSettings(t *testing.T) {
	cfg := map[string]string{"SPINDLE_AGENT_ENABLE_IPV6": "true", "SPINDLE_AGENT_CLUSTER_DEFAULT_NETWORK": "kube-system/macvlan"}
	st, used, err := ResolveSettings(map[string]string{"enable-ipv4": "false"}, map[string]bool{"enable-ipv4": true}, cfg, "ConfigMap kube-system/spindle-config", "kube-system")
	if err != nil {
		t.Fatal(err)
	}
	if st.EnableIPv4 || !st.EnableIPv6 || st.ClusterDefaultNetwork != "kube-system/macvlan" || st.SystemNamespace != "kube-system" {
		t.Errorf("settings %+v", st)
	}
	src := map[string]string{}
	for _, u := range used {
		src[u.Name] = u.Source
	}
	if src["enable-ipv4"] != "flag --enable-ipv4" || !strings.Contains(src["enable-ipv6"], "SPINDLE_AGENT_ENABLE_IPV6") || src["cluster-default-subnet-v4"] != "spindle-agent default" {
		t.Errorf("sources %v", src)
	}
	if _, _, err := ResolveSettings(nil, nil, map[string]string{"SPINDLE_AGENT_ENABLE_IPV4": "yes please"}, "cm", "x"); err == nil {
		t.Error("a non-boolean ConfigMap value was accepted")
	}
}

func TestSummarizePoolsCountsLikeTheAllocator(t *testing.T) {
	// 10.6.0.1-10.6.0.10: the gateway .1 and the reserved .10 are not
	// usable, so 8 addresses; two claims, one outside the pool's range
	// (spec changed): allocated 2, free 7.
	s := &IPAM{
		Pools:    []v2beta1.SpiderIPPool{*pool("b", "10.6.0.1-10.6.0.10", func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = []string{"n2"}; p.Spec.Default = ptr.To(true) }), *pool("a", "10.6.1.1-10.6.1.4")},
		Claims:   []v2beta1.SpiderIPClaim{*claim("10.6.0.2", "b", "ns", "p", "u1", "net1", time.Hour), *claim("10.6.9.9", "b", "ns", "q", "u2", "net1", time.Hour)},
		Reserved: []v2beta1.SpiderReservedIP{{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: v2beta1.ReservedIPSpec{IPs: []string{"10.6.0.10"}}}},
	}
	rows := SummarizePools(s)
	if len(rows) != 2 || rows[0].Name != "b" && rows[1].Name != "b" {
		t.Fatalf("rows %+v", rows)
	}
	var b PoolSummary
	for _, r := range rows {
		if r.Name == "b" {
			b = r
		}
	}
	if b.Total != 8 || b.Allocated != 2 || b.Free != 7 || !b.Default || b.Affinity != "nodes=n2" || b.Family != "IPv4" {
		t.Errorf("pool b: %+v", b)
	}
	kept := FilterPools(rows, s.Pools, "n1", nil, "", nil)
	if len(kept) != 1 || kept[0].Name != "a" {
		t.Errorf("--node n1 kept %+v, want only a", kept)
	}
}

func findingKinds(r *Report) map[string][]Finding {
	out := map[string][]Finding{}
	for _, f := range r.Findings {
		out[f.Kind] = append(out[f.Kind], f)
	}
	return out
}

func TestCheckFindings(t *testing.T) {
	p := pool("p", "10.6.0.100-10.6.0.120", func(p *v2beta1.SpiderIPPool) { p.Status.AllocatedIPCount = ptr.To(int64(9)) })
	alive := runningPod("ns", "alive", "u-alive", "n1", map[string]string{nadv1.NetworkStatusAnnot: netStatus("net1", "02:00:00:00:00:01", "10.6.0.100/16", "10.6.0.101/16")})
	alive.Status.PodIPs = []corev1.PodIP{{IP: "10.244.1.5"}} // not Spindle's: ignored
	twin := runningPod("ns", "twin", "u-twin", "n2", map[string]string{nadv1.NetworkStatusAnnot: netStatus("net1", "02:00:00:00:00:02", "10.6.0.100/16")})
	replaced := runningPod("ns", "replaced", "u-new", "n1", nil)
	in := &CheckInput{Now: now, Grace: 2 * time.Minute, IPAM: &IPAM{
		Pools: []v2beta1.SpiderIPPool{*p},
		Claims: []v2beta1.SpiderIPClaim{
			*claim("10.6.0.100", "p", "ns", "alive", "u-alive", "net1", time.Hour),
			*claim("10.6.0.110", "p", "ns", "gone", "u-gone", "net1", time.Hour),         // leaked
			*claim("10.6.0.111", "p", "ns", "young", "u-young", "net1", time.Second),     // within grace
			*claim("10.6.0.112", "p", "ns", "replaced", "u-old", "net1", 10*time.Minute), // leaked: other UID
		}},
		Pods: []corev1.Pod{*alive, *twin, *replaced},
	}
	// A StatefulSet replica scaled away keeps its address: not leaked.
	sts := claim("10.6.0.113", "p", "ns", "db-1", "u-db1", "net1", time.Hour)
	sts.Spec.OwnerKind, sts.Spec.OwnerName = "StatefulSet", "db"
	in.IPAM.Claims = append(in.IPAM.Claims, *sts)
	in.StatefulSets = append(in.StatefulSets, stsObj("ns", "db", 1))

	got := findingKinds(Check(in))
	if l := got[FindingLeaked]; len(l) != 2 || l[0].Address != "10.6.0.110" || l[1].Address != "10.6.0.112" || l[0].ClaimUID != "claim-10.6.0.110" {
		t.Errorf("leaked: %+v", l)
	}
	// alive shows .101 without a claim; twin shows .100, alive's claim.
	if l := got[FindingLost]; len(l) != 2 {
		t.Errorf("lost: %+v", l)
	} else {
		for _, f := range l {
			if !(f.Pod == "ns/alive" && f.Address == "10.6.0.101") && !(f.Pod == "ns/twin" && strings.Contains(f.Detail, "names pod ns/alive")) {
				t.Errorf("unexpected lost finding %+v", f)
			}
		}
	}
	if d := got[FindingDuplicate]; len(d) != 1 || d[0].Address != "10.6.0.100" || d[0].Pod != "ns/alive,ns/twin" {
		t.Errorf("duplicate: %+v", d)
	}
	if d := got[FindingCounterDrift]; len(d) != 1 || !strings.Contains(d[0].Detail, "is 9, the pool has 5 claims") {
		t.Errorf("drift: %+v", d)
	}

	// Nothing wrong: no findings.
	clean := &CheckInput{Now: now, Grace: time.Minute, IPAM: &IPAM{Pools: []v2beta1.SpiderIPPool{*pool("p", "10.6.0.100-10.6.0.120", func(p *v2beta1.SpiderIPPool) { p.Status.AllocatedIPCount = ptr.To(int64(1)) })},
		Claims: []v2beta1.SpiderIPClaim{*claim("10.6.0.100", "p", "ns", "alive", "u-alive", "net1", time.Hour)}},
		Pods: []corev1.Pod{*runningPod("ns", "alive", "u-alive", "n1", map[string]string{nadv1.NetworkStatusAnnot: netStatus("net1", "", "10.6.0.100/16")})}}
	if r := Check(clean); len(r.Findings) != 0 {
		t.Errorf("clean cluster: %+v", r.Findings)
	}
}

func TestCheckCommandReportAndReleaseFromReport(t *testing.T) {
	p := pool("p", "10.6.0.100-10.6.0.120", func(p *v2beta1.SpiderIPPool) { p.Status.AllocatedIPCount = ptr.To(int64(2)) })
	alive := runningPod("ns", "alive", "u-alive", "n1", nil)
	env, out, errb := newEnv(t, p, alive, claim("10.6.0.100", "p", "ns", "alive", "u-alive", "net1", time.Hour), claim("10.6.0.110", "p", "ns", "gone", "u-gone", "net1", time.Hour))
	report := filepath.Join(t.TempDir(), "report.json")
	if code := Run(context.Background(), env, []string{"check", "--settle", "0s", "-o", report}); code != ExitFindings {
		t.Fatalf("check exit %d, want 1; %s %s", code, out, errb)
	}
	if !strings.Contains(out.String(), "leaked") || !strings.Contains(out.String(), "1 findings: 1 leaked") {
		t.Errorf("check output:\n%s", out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := ParseReport(data)
	if err != nil || len(targets) != 1 || targets[0].Claim != "10.6.0.110" || targets[0].UID != "claim-10.6.0.110" {
		t.Fatalf("ParseReport: %+v %v", targets, err)
	}
	out.Reset()
	env.User = "alice"
	if code := Run(context.Background(), env, []string{"release", "--from-report", report}); code != ExitOK {
		t.Fatalf("release exit %d: %s %s", code, out, errb)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "10.6.0.110"}, &v2beta1.SpiderIPClaim{}); err == nil {
		t.Error("the leaked claim still exists")
	}
	evs := &corev1.EventList{}
	if err := env.Client.List(context.Background(), evs, client.InNamespace(EventNamespace)); err != nil || len(evs.Items) != 1 {
		t.Fatalf("events: %+v %v", evs.Items, err)
	}
	ev := evs.Items[0]
	if ev.Reason != ReasonAddressReleased || ev.InvolvedObject.Kind != "SpiderIPPool" || ev.InvolvedObject.Name != "p" ||
		!strings.Contains(ev.Message, "10.6.0.110") || !strings.Contains(ev.Message, "operator alice") {
		t.Errorf("event %+v", ev)
	}
	// The live pod's address is refused without --force, released with it.
	errb.Reset()
	if code := Run(context.Background(), env, []string{"release", "--ip", "10.6.0.100"}); code != ExitFindings || !strings.Contains(errb.String(), "is alive") {
		t.Errorf("release of a live pod's address: exit %d, stderr %s", code, errb)
	}
	if code := Run(context.Background(), env, []string{"release", "--ip", "10.6.0.100", "--force"}); code != ExitOK {
		t.Errorf("release --force: exit %d, stderr %s", code, errb)
	}
}

func TestReleaseFromReportRefusesAReallocatedAddress(t *testing.T) {
	env, _, errb := newEnv(t, pool("p", "10.6.0.100-10.6.0.120"), claim("10.6.0.110", "p", "ns", "new", "u-new", "net1", time.Second))
	rep := filepath.Join(t.TempDir(), "r.json")
	data, _ := json.Marshal(Report{Findings: []Finding{{Kind: FindingLeaked, Address: "10.6.0.110", Claim: "10.6.0.110", ClaimUID: "an-older-claim"}}})
	if err := os.WriteFile(rep, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := Run(context.Background(), env, []string{"release", "--from-report", rep}); code != ExitFindings || !strings.Contains(errb.String(), "allocated again") {
		t.Errorf("exit %d, stderr %s", code, errb)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "10.6.0.110"}, &v2beta1.SpiderIPClaim{}); err != nil {
		t.Errorf("the new holder's claim was deleted: %v", err)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"pools", "-o", "table"}, {"release"}, {"release", "--ip", "10.0.0.1/24"}, {"why"}, {"ips", "--pod", "a/b/c"}, {"check", "--grace", "-1s"}, {"pools", "--bogus"}} {
		env, _, errb := newEnv(t)
		if code := Run(context.Background(), env, args); code != ExitUsage {
			t.Errorf("%q: exit %d, want 2 (stderr %s)", args, code, errb)
		}
	}
}

func TestIPsCommand(t *testing.T) {
	pod := runningPod("ns", "a", "u-a", "n1", map[string]string{nadv1.NetworkStatusAnnot: netStatus("net1", "02:AA:00:00:00:01", "10.6.0.100/16")})
	env, out, _ := newEnv(t, pool("p", "10.6.0.100-10.6.0.120"), pod, claim("10.6.0.100", "p", "ns", "a", "u-a", "net1", 3*time.Minute), claim("10.6.0.101", "p", "ns", "gone", "u-g", "net1", time.Hour))
	if code := Run(context.Background(), env, []string{"ips", "--pool", "p"}); code != ExitOK {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "10.6.0.100") || !strings.Contains(lines[1], "02:aa:00:00:00:01") || !strings.Contains(lines[1], "3m") ||
		!strings.Contains(lines[2], "PodGone") {
		t.Errorf("ips output:\n%s", out)
	}
	out.Reset()
	if code := Run(context.Background(), env, []string{"ips", "--pod", "ns/a", "-o", "json"}); code != ExitOK {
		t.Fatal(code)
	}
	var rows []IPRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 1 || rows[0].State != HolderRunning {
		t.Errorf("ips -o json: %v %+v", err, rows)
	}
}

func stsObj(ns, name string, replicas int32) appsv1.StatefulSet {
	return appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "sts-uid"}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas)}}
}
