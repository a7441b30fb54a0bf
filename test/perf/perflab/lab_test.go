package perflab

import (
	"strings"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	got := splitArgs(" --a=1,,--b , ")
	if strings.Join(got, "|") != "--a=1|--b" {
		t.Fatalf("splitArgs = %q", got)
	}
	if splitArgs("") != nil {
		t.Fatal("splitArgs of nothing is not empty")
	}
}

func TestOverrideFlags(t *testing.T) {
	in := []string{"--leader-elect=false", "--metrics-bind-address=127.0.0.1:5721", "-webhook-port=9443", "--metrics-addr=:1", "--webhook-manage-configurations=true"}
	got, err := overrideFlags(in, map[string]string{"metrics-bind-address": "127.0.0.1:5731", "webhook-port": "9453"},
		[]string{"webhook-port", "metrics-bind-address"}, "metrics-addr")
	if err != nil {
		t.Fatal(err)
	}
	want := "--leader-elect=false|--webhook-manage-configurations=true|--webhook-port=9453|--metrics-bind-address=127.0.0.1:5731"
	if strings.Join(got, "|") != want {
		t.Fatalf("overrideFlags\n got %s\nwant %s", strings.Join(got, "|"), want)
	}
	if _, err := overrideFlags(nil, map[string]string{"a": "1"}, nil); err == nil {
		t.Fatal("a flag to set missing from the order was accepted")
	}
	if _, err := overrideFlags(nil, map[string]string{"a": "1"}, []string{"b"}); err == nil {
		t.Fatal("an ordered flag that is not set was accepted")
	}
	if _, err := overrideFlags(nil, map[string]string{"a": "x,y"}, []string{"a"}); err == nil {
		t.Fatal("a value with a comma was accepted")
	}
}

func TestUpArgsMoveEveryControllerPort(t *testing.T) {
	o := LabOptions{Repo: "/repo", Dir: "/repo/_out/lab", Prefix: "spb", Nodes: 5, MaxPods: 250, CNIWorkers: 1,
		APIServerPort: 46443, EtcdPort: 42379, ControllerManagerPort: 46257, SchedulerPort: 46259,
		MetricsPort: 5731, HealthPort: 5730, WebhookPort: 9453,
		AgentArgs:      "--enable-ipv4=true,--enable-ipv6=true",
		ControllerArgs: "--leader-elect=false,--metrics-bind-address=127.0.0.1:5721,--health-probe-bind-address=127.0.0.1:5720,--webhook-host=127.0.0.1,--webhook-port=9443,--webhook-url=https://127.0.0.1:9443,--webhook-manage-configurations=true"}
	args, err := o.upArgs()
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	for k, v := range map[string]string{"--nodes": "5", "--max-pods": "250", "--cni-workers": "1", "--prefix": "spb", "--apiserver-port": "46443",
		"--etcd-port": "42379", "--controller-manager-port": "46257", "--scheduler-port": "46259",
		"--node-daemon": "agent=/repo/bin/spindle-agent,--enable-ipv4=true,--enable-ipv6=true"} {
		if flags[k] != v {
			t.Errorf("%s = %q, want %q", k, flags[k], v)
		}
	}
	ctrl := flags["--cluster-daemon"]
	for _, old := range []string{"5721", "5720", "9443"} {
		if strings.Contains(ctrl, old) {
			t.Errorf("controller keeps the default port %s: %s", old, ctrl)
		}
	}
	for _, want := range []string{"controller=/repo/bin/spindle-controller,", "--webhook-manage-configurations=true", "--metrics-bind-address=127.0.0.1:5731",
		"--health-probe-bind-address=127.0.0.1:5730", "--webhook-port=9453", "--webhook-url=https://127.0.0.1:9453", "--webhook-cert-dir=/repo/_out/lab/webhook-certs"} {
		if !strings.Contains(ctrl, want) {
			t.Errorf("controller spec lacks %s: %s", want, ctrl)
		}
	}
}

// Programs with different slots run their labs side by side: no port of
// one slot is a port of another, and slot 7 keeps the ports the e2e
// benchmark always had.
func TestOwnLabSlotsNeverSharePorts(t *testing.T) {
	ports := func(o LabOptions) []int {
		return []int{o.APIServerPort, o.EtcdPort, o.EtcdPort + 1, o.ControllerManagerPort, o.SchedulerPort, o.MetricsPort, o.HealthPort, o.WebhookPort}
	}
	owner := map[int]int{}
	for slot := 1; slot <= 9; slot++ {
		for _, p := range ports(OwnLab("/r", "x", "x", slot, 1, 1, 1)) {
			if s, ok := owner[p]; ok {
				t.Fatalf("port %d of slot %d is also a port of slot %d", p, slot, s)
			}
			owner[p] = slot
		}
	}
	got := ports(OwnLab("/r", "bench-e2e-lab", "spe", 7, 5, 250, 1))
	want := []int{27443, 23379, 23380, 27257, 27259, 5741, 5740, 9463}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("slot 7 ports %v, want %v", got, want)
		}
	}
}
