package coordinator

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// fakeSource is a SettingsSource for tests of the plugin's error paths.
type fakeSource struct {
	defaults *Settings
	pod      *nodeapi.PodInfo
	err      error
}

func (f *fakeSource) Defaults(context.Context) (*Settings, error) { return f.defaults, f.err }
func (f *fakeSource) Pod(context.Context, string, string) (*nodeapi.PodInfo, error) {
	return f.pod, f.err
}

const chained = `{"cniVersion":"1.0.0","name":"n","type":"coordinator",
	"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"net1","sandbox":"/ns"}],
	"ips":[{"interface":0,"address":"10.6.0.5/24","gateway":"10.6.0.1"}]}}`

func TestPluginErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stdin    string
		source   *fakeSource
		cmd      func(*Plugin, *skel.CmdArgs) error
		wantCode uint
		wantMsg  string
	}{
		{"ADD without prevResult", `{"cniVersion":"1.0.0","name":"n","type":"coordinator"}`, &fakeSource{},
			(*Plugin).Add, types.ErrInvalidNetworkConfig, "prevResult"},
		{"ADD with the agent failing", chained, &fakeSource{err: ErrAgentUnavailable},
			(*Plugin).Add, types.ErrTryAgainLater, "node agent"},
		{"ADD with bad agent defaults", chained, &fakeSource{defaults: &Settings{Mode: "sideways"}},
			(*Plugin).Add, types.ErrInvalidNetworkConfig, `"mode"`},
		{"CHECK with the agent failing", chained, &fakeSource{err: ErrAgentUnavailable},
			(*Plugin).Check, types.ErrTryAgainLater, "node agent"},
		{"bad logLevel", `{"cniVersion":"1.0.0","name":"n","type":"coordinator","logLevel":"x"}`, &fakeSource{},
			(*Plugin).Status, types.ErrInvalidNetworkConfig, `"logLevel"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := &Plugin{NewSource: func(*NetConf) SettingsSource { return tc.source }, Stderr: &logs}
			err := tc.cmd(p, &skel.CmdArgs{ContainerID: "c1", Netns: "/ns", IfName: "net1", StdinData: []byte(tc.stdin)})
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != tc.wantCode || !strings.Contains(cniErr.Msg, tc.wantMsg) {
				t.Fatalf("got %v, want code %d mentioning %s", err, tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestPodArgs(t *testing.T) {
	ns, name, err := podArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc")
	if err != nil || ns != "default" || name != "web-0" {
		t.Errorf("podArgs = %q, %q, %v", ns, name, err)
	}
	if _, _, err := podArgs("garbage"); err == nil {
		t.Error("malformed CNI_ARGS accepted")
	}
}
