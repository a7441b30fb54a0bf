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
