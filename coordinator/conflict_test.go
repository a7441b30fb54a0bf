package coordinator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/routing"
)

func testRun() (*run, *bytes.Buffer) {
	var logs bytes.Buffer
	return &run{log: slog.New(slog.NewTextHandler(&logs, nil)), done: func() {}}, &logs
}

// A detected conflict is reported to the node agent with the pod, the
// sandbox, the interface, the address and the MAC that owns it, and ADD
// fails with code 150 naming the address and the MAC.
func TestConflictIsReportedToTheAgent(t *testing.T) {
	got := make(chan nodeapi.ConflictReport, 1)
	src := NewAgentClient(serveAgent(t, &agentBackend{conflicts: got}), time.Second)
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "net1", Netns: "/ns",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=5b1c;K8S_POD_INFRA_CONTAINER_ID=c1"}
	conflict := &routing.ConflictError{IP: net.ParseIP("10.6.0.9"), MAC: net.HardwareAddr{0xf2, 0x3c, 0x59, 0x91, 0x82, 0x11}, Dev: "net1"}
	r, _ := testRun()

	err := (&Plugin{}).conflictError(context.Background(), r, src, args, conflict)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != ErrCodeIPConflict ||
		cniErr.Msg != "IP address 10.6.0.9 is already used by f2:3c:59:91:82:11 (probed on net1)" ||
		!strings.Contains(cniErr.Details, "released") {
		t.Fatalf("got %#v, want code 150 naming the address and the MAC, saying the address was released", err)
	}
	select {
	case rep := <-got:
		want := nodeapi.ConflictReport{PodNamespace: "default", PodName: "web-0", PodUID: "5b1c", ContainerID: "c1",
			IfName: "net1", Address: "10.6.0.9", MAC: "f2:3c:59:91:82:11"}
		if rep != want {
			t.Fatalf("agent got %+v, want %+v", rep, want)
		}
	default:
		t.Fatal("the conflict was not reported to the agent")
	}
}

// Reporting is best effort: without an agent, or when it fails, ADD still
// fails with code 150.
func TestConflictWithoutAgentStillFails(t *testing.T) {
	conflict := &routing.ConflictError{IP: net.ParseIP("fd00:10::33"), MAC: net.HardwareAddr{0x16, 0xdb, 0x85, 0x8d, 0xfe, 0x4f}, Dev: "eth0"}
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "eth0", Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"}
	failing := serveAgent(t, &agentBackend{err: &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "spindle-agent is not ready"}})
	for name, sock := range map[string]string{
		"no socket":     filepath.Join(t.TempDir(), "none.sock"),
		"agent refuses": failing,
	} {
		t.Run(name, func(t *testing.T) {
			r, logs := testRun()
			err := (&Plugin{}).conflictError(context.Background(), r, NewAgentClient(sock, time.Second), args, conflict)
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != ErrCodeIPConflict || !strings.Contains(cniErr.Msg, "IP address fd00:10::33 is already used by 16:db:85:8d:fe:4f") {
				t.Fatalf("got %v, want code 150 naming the address", err)
			}
			if !strings.Contains(logs.String(), "failed to report the address conflict") {
				t.Errorf("the failed report is not logged:\n%s", logs.String())
			}
		})
	}
}
