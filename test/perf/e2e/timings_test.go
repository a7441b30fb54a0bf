package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Lines as the lab writes them (shortened where the parser does not look).
const (
	shimLog = `2026/12/06 20:59:29.100000 pod bench/spindle1-000-abc: CNI ADD failed after 80ms: timed out
2026/12/06 20:59:30.027595 pod bench/spindle1-000-abc: CNI ADD ok in 321ms: [10.244.1.2 fd10:244:0:1::2]
2026/12/06 20:59:31.000000 pod bench/hostlocal1-000-xyz: CNI ADD ok in 100ms: [10.244.1.3]
2026/12/06 20:59:32.000000 pod other/spindle1-000-abc: CNI ADD ok in 999ms: [10.244.1.4]
2026/12/06 20:59:29.200000 pod bench/spindle1-000-abc/29407e22: failed to set up network of pod bench/spindle1-000-abc: plugin type="multus" name="multus-cni-network" failed (add): Multus: [bench/spindle1-000-abc/29407e22]: error waiting for pod: Get "https://127.0.0.1:27443/api/v1/namespaces/bench/pods/spindle1-000-abc?timeout=1m0s": context deadline exceeded (attempt 1)
2026/12/06 20:59:29.300000 pod bench/spindle1-000-abc/29407e22: failed to set up network of pod bench/spindle1-000-abc: plugin type="multus" name="multus-cni-network" failed (add): Multus: [bench/spindle1-000-abc/29407e22/]: error adding container to network "underlay-spindle": plugin type="spiderpool" failed (add): no pool (attempt 2)
2026/12/06 20:59:29.400000 pod bench/hostlocal1-000-xyz/1: failed to set up network of pod bench/hostlocal1-000-xyz: plugin type="multus" failed (add): boom (attempt 1)
2026/12/06 20:59:43.172195 pod bench/spindle1-000-abc: CNI DEL ok in 368ms
`
	cniLog = `I1206 20:59:29.924397   27966 event.go:377] Event(v1.ObjectReference{Kind:"Pod", Namespace:"bench", Name:"spindle1-000-abc", UID:"29407e22", APIVersion:"v1", ResourceVersion:"344", FieldPath:""}): type: 'Normal' reason: 'AddedInterface' Add eth0 [10.244.1.2/24] from lab-default
time=2026-12-06T20:59:29.967Z level=INFO msg=planned cmd=ADD containerID=c0ffee ifName=net1 netns=/run/netns/x mode=overlay podRoutes=2 hostRoutes=1 prepare=12.5ms
I1206 20:59:30.007856   27966 event.go:377] Event(v1.ObjectReference{Kind:"Pod", Namespace:"bench", Name:"spindle1-000-abc", UID:"29407e22", APIVersion:"v1", ResourceVersion:"344", FieldPath:""}): type: 'Normal' reason: 'AddedInterface' Add net1 [172.30.48.1/16] from bench/underlay-spindle
`
	agentLog = `E1206 20:59:29.500000   27824 oplog.go:83] "ADD failed" err="no pool" pod="bench/spindle1-000-abc" interface="net1" containerID="dead" addresses=[] pools=[] duration="281µs"
I1206 20:59:29.943007   27824 oplog.go:86] "ADD" pod="bench/spindle1-000-abc" interface="net1" containerID="c0ffee" addresses=["172.30.48.1/16"] pools=["bench-e2e"] duration="10.378ms"
`
)

func TestReadTimingsSplitsTheAdd(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"n1-shim.log": shimLog, "n1-cni.log": cniLog, "n1-agent.log": agentLog, "n1-multus.log": "noise\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readTimings(dir, "bench", "spindle1-", 2026)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	// The ADD started at 29.706595 (30.027595 - 321ms).
	for _, c := range []struct {
		name string
		got  []time.Duration
		want time.Duration
	}{
		{"total", got.total, ms(321)},
		{"eth0", got.eth0, ms(217.802)},
		{"net1", got.net1, ms(83.459)},
		{"ipam", got.ipam, ms(10.378)},
		{"coordinator", got.coordinator, ms(53.356)}, // 40.856 after the plan, 12.5 before
		{"tail", got.tail, ms(19.739)},
	} {
		if len(c.got) != 1 || (c.got[0]-c.want).Abs() > time.Microsecond {
			t.Errorf("%s = %v, want [%v]", c.name, c.got, c.want)
		}
	}
	hl, err := readTimings(dir, "bench", "hostlocal1-", 2026)
	if err != nil {
		t.Fatal(err)
	}
	if len(hl.total) != 1 || hl.total[0] != ms(100) || len(hl.ipam)+len(hl.coordinator)+len(hl.eth0) != 0 || hl.failed["other"] != 1 {
		t.Errorf("host-local timings = %+v, want only its total of 100ms", hl)
	}
	if got.failed["multus-pod-lookup"] != 1 || got.failed["ipam"] != 1 || len(got.failed) != 2 {
		t.Errorf("failed ADDs = %v, want one Multus pod lookup and one IPAM", got.failed)
	}
	if !strings.Contains(got.describe(), "total 321/321") || !strings.Contains(got.describe(), "failed ADDs: ipam 1, multus-pod-lookup 1") {
		t.Errorf("describe = %q", got.describe())
	}
	none, err := readTimings(t.TempDir(), "bench", "spindle1-", 2026)
	if err != nil || len(none.total) != 0 || !strings.Contains(none.describe(), "no CNI ADD") {
		t.Errorf("empty log dir: %+v, %v", none, err)
	}
}

func TestSummaryLine(t *testing.T) {
	s := summary{pods: 1000, nodes: 10}
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	s.add(spindle, phaseResult{allRunning: sec(120), deleted: sec(60), pods: 1000, failedAdds: 2,
		adds: addTimings{total: []time.Duration{sec(0.3), sec(0.5)}, ipam: []time.Duration{sec(0.01)}, coordinator: []time.Duration{sec(0.04)}}})
	s.add(hostLocal, phaseResult{allRunning: sec(100), deleted: sec(50), pods: 1000, duplicates: 900,
		adds: addTimings{total: []time.Duration{sec(0.2)}}})
	s.add(spindle, phaseResult{allRunning: sec(140), deleted: sec(80), pods: 1000,
		adds: addTimings{total: []time.Duration{sec(0.4)}}})
	s.add(hostLocal, phaseResult{allRunning: sec(120), deleted: sec(70), pods: 1000, duplicates: 900})
	want := "bench_e2e: pods=1000 nodes=10 spindle_create_s=130.0 hostlocal_create_s=110.0 ratio=1.18 spindle_delete_s=70.0 hostlocal_delete_s=60.0" +
		" add_p50_ms=400 add_p99_ms=500 hostlocal_add_p50_ms=200 hostlocal_add_p99_ms=200 ipam_p50_ms=10.0 ipam_p99_ms=10.0 coordinator_p50_ms=40" +
		" spindle_dups=0 hostlocal_dups=1800 failed_adds=2 hostlocal_failed_adds=0 reps=2"
	if got := s.line(); got != want {
		t.Errorf("line =\n%s\nwant\n%s", got, want)
	}
	if f := s.failures(); f != "" {
		t.Errorf("failures = %q; host-local duplicates are not a failure", f)
	}
	s.spindle[0].duplicates = 1
	if f := s.failures(); !strings.Contains(f, "1 Spindle addresses") {
		t.Errorf("failures = %q, want the Spindle duplicate", f)
	}
}
