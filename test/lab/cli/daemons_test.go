package cli

import (
	"reflect"
	"testing"

	"github.com/spindle-net/spindle/test/lab/config"
)

func TestParseExtraArgs(t *testing.T) {
	st := config.State{
		NodeDaemons:    []config.DaemonSpec{{Name: "agent", Path: "/bin/agent"}},
		ClusterDaemons: []config.DaemonSpec{{Name: "controller", Path: "/bin/controller"}},
	}
	got, err := parseExtraArgs([]string{"agent=--a=1,--b", "controller=--c", "agent=--d"}, st)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"agent": {"--a=1", "--b", "--d"}, "controller": {"--c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for in, msg := range map[string]string{
		"agent":      `failed to parse --with "agent": want NAME=ARG[,ARG...]`,
		"agent=":     `failed to parse --with "agent=": want NAME=ARG[,ARG...]`,
		"shim=--x=1": `failed to parse --with "shim=--x=1": the lab runs no daemon "shim" (run ` + "`lab status`)",
	} {
		if _, err := parseExtraArgs([]string{in}, st); err == nil || err.Error() != msg {
			t.Errorf("%q: error %v, want %s", in, err, msg)
		}
	}
}

func TestKillTargets(t *testing.T) {
	known := []string{"etcd", "kube-apiserver", "daemon-lab-node-1-agent"}
	pid := func(n string) (int, bool) {
		switch n {
		case "etcd":
			return 10, true
		case "daemon-lab-node-1-agent":
			return 12, true
		}
		return 0, false
	}
	got, err := killTargets(known, pid, []string{"daemon-lab-node-1-agent", "etcd"})
	if err != nil || !reflect.DeepEqual(got, []int{12, 10}) {
		t.Fatalf("got %v, %v; want [12 10]", got, err)
	}
	for _, c := range []struct {
		names []string
		msg   string
	}{
		{nil, "usage: lab kill NAME... (names as `lab status` lists them)"},
		{[]string{"agent"}, `failed to kill "agent": the lab has no such process (it has daemon-lab-node-1-agent, etcd, kube-apiserver)`},
		{[]string{"kube-apiserver"}, "failed to kill \"kube-apiserver\": it is not running (run `lab up` to start it)"},
	} {
		if _, err := killTargets(known, pid, c.names); err == nil || err.Error() != c.msg {
			t.Errorf("%v: error %v, want %s", c.names, err, c.msg)
		}
	}
}
