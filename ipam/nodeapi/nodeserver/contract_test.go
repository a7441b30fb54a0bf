package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

type fakeBackend struct {
	addErr error
	got    *nodeapi.Request
}

func (f *fakeBackend) Add(_ context.Context, r *nodeapi.Request) (*nodeapi.Result, error) {
	f.got = r
	if f.addErr != nil {
		return nil, f.addErr
	}
	return &nodeapi.Result{Interface: r.IfName, IPs: []nodeapi.IP{{Address: "10.0.0.2/24", Version: 4, Pool: "p"}}}, nil
}
func (f *fakeBackend) Del(context.Context, *nodeapi.Request) error { return errors.New("boom") }
func (f *fakeBackend) Check(context.Context, *nodeapi.Request) (*nodeapi.Result, error) {
	return &nodeapi.Result{}, nil
}
func (f *fakeBackend) GC(context.Context, *nodeapi.GCRequest) (*nodeapi.GCResult, error) {
	return &nodeapi.GCResult{Released: []string{"10.0.0.3"}}, nil
}
func (f *fakeBackend) Conflict(_ context.Context, rep *nodeapi.ConflictReport) (*nodeapi.ConflictResult, error) {
	if rep.PodName == "missing" {
		return nil, fmt.Errorf("address %s is not held by pod %q: %w", rep.Address, rep.PodName, nodeapi.ErrNotFound)
	}
	return &nodeapi.ConflictResult{Action: nodeapi.ConflictReleased}, nil
}
func (f *fakeBackend) Ready() error { return nil }
func (f *fakeBackend) Coordinator(context.Context) (*nodeapi.CoordinatorConfig, error) {
	return &nodeapi.CoordinatorConfig{Mode: "underlay", HostRuleTable: new(500), HijackCIDR: []string{"169.254.0.0/16"}, Phase: "Synced"}, nil
}
func (f *fakeBackend) Pod(_ context.Context, ns, name string) (*nodeapi.PodInfo, error) {
	if name == "missing" {
		return nil, fmt.Errorf("pod %q: %w", ns+"/"+name, nodeapi.ErrNotFound)
	}
	return &nodeapi.PodInfo{Namespace: ns, Name: name, Interfaces: map[string]nodeapi.Result{
		"net1": {Interface: "net1", CleanGateway: true, IPs: []nodeapi.IP{{Address: "10.0.0.2/24", Version: 4, Pool: "p"}}}}}, nil
}

func serve(t *testing.T, b Backend) *nodeapi.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "agent.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v, want 0600", st.Mode().Perm(), err)
	}
	srv := &http.Server{Handler: Handler(b)}
	go srv.Serve(l) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return nodeapi.New(sock)
}

// TestProtocolRoundTrip is the node protocol's contract: the client both CNI
// plugins use against the agent's real handler, every call and its errors.
func TestProtocolRoundTrip(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	ctx := context.Background()
	res, err := c.Add(ctx, &nodeapi.Request{ContainerID: "c", IfName: "net1", PodNamespace: "ns", PodName: "p", DefaultIPv4Pools: []string{"a"}})
	if err != nil || res.IPs[0].Address != "10.0.0.2/24" || b.got.DefaultIPv4Pools[0] != "a" || res.Interface != "net1" {
		t.Fatalf("add: %+v %v", res, err)
	}
	b.addErr = &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "failed to allocate", Details: `pool "b": 254/254 allocated`}
	_, err = c.Add(ctx, &nodeapi.Request{})
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != 11 || !strings.Contains(e.Details, "254/254") {
		t.Fatalf("add error: %#v", err)
	}
	if err := c.Del(ctx, &nodeapi.Request{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a failed release must be reported, got %v", err)
	}
	if gc, err := c.GC(ctx, &nodeapi.GCRequest{}); err != nil || gc.Released[0] != "10.0.0.3" {
		t.Fatalf("gc: %+v %v", gc, err)
	}
	if res, err := c.Conflict(ctx, &nodeapi.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", Address: "10.0.0.2"}); err != nil || res.Action != nodeapi.ConflictReleased {
		t.Fatalf("conflict: %+v %v", res, err)
	}
	if _, err := c.Conflict(ctx, &nodeapi.ConflictReport{PodNamespace: "ns", PodName: "missing", IfName: "net1", Address: "10.0.0.2"}); !errors.As(err, &e) || !strings.Contains(e.Msg, "not held") {
		t.Fatalf("conflict for an address the pod does not hold: %v", err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	cc, err := c.Coordinator(ctx)
	if err != nil || cc.Mode != "underlay" || *cc.HostRuleTable != 500 || cc.HijackCIDR[0] != "169.254.0.0/16" || cc.Phase != "Synced" {
		t.Fatalf("coordinator: %+v %v", cc, err)
	}
	pod, err := c.Pod(ctx, "kube-system", "web-0")
	if err != nil || pod.Namespace != "kube-system" || pod.Name != "web-0" || !pod.Interfaces["net1"].CleanGateway || pod.Interfaces["net1"].IPs[0].Address != "10.0.0.2/24" {
		t.Fatalf("pod: %+v %v", pod, err)
	}
	_, err = c.Pod(ctx, "kube-system", "missing")
	if !errors.Is(err, nodeapi.ErrNotFound) || !errors.As(err, &e) || e.Status != nodeapi.StatusNotFound || !strings.Contains(e.Msg, "missing") {
		t.Fatalf("missing pod: %#v, want a 404 matching nodeapi.ErrNotFound", err)
	}
	if pod, err := c.Pod(ctx, "a/b", "c"); err != nil || pod.Namespace != "a/b" || pod.Name != "c" {
		t.Fatalf("a namespace with a slash must stay one path segment: %+v %v", pod, err)
	}
	// Malformed JSON is a config error naming the path.
	err = c.Do(ctx, "POST", nodeapi.PathAdd, "not an object", nil)
	if !errors.As(err, &e) || e.Code != nodeapi.CodeInvalidConfig || !strings.Contains(e.Msg, nodeapi.PathAdd) {
		t.Fatalf("bad body: %#v", err)
	}
}
