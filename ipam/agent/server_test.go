package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/client"
)

type fakeBackend struct {
	addErr error
	got    *client.Request
}

func (f *fakeBackend) Add(_ context.Context, r *client.Request) (*client.Result, error) {
	f.got = r
	if f.addErr != nil {
		return nil, f.addErr
	}
	return &client.Result{Interface: r.IfName, IPs: []client.IP{{Address: "10.0.0.2/24", Version: 4, Pool: "p"}}}, nil
}
func (f *fakeBackend) Del(context.Context, *client.Request) error { return errors.New("boom") }
func (f *fakeBackend) Check(context.Context, *client.Request) (*client.Result, error) {
	return &client.Result{}, nil
}
func (f *fakeBackend) GC(context.Context, *client.GCRequest) (*client.GCResult, error) {
	return &client.GCResult{Released: []string{"10.0.0.3"}}, nil
}
func (f *fakeBackend) Conflict(_ context.Context, rep *client.ConflictReport) (*client.ConflictResult, error) {
	if rep.PodName == "missing" {
		return nil, fmt.Errorf("address %s is not held by pod %q: %w", rep.Address, rep.PodName, ErrNotFound)
	}
	return &client.ConflictResult{Action: client.ConflictReleased}, nil
}
func (f *fakeBackend) Ready() error { return nil }
func (f *fakeBackend) Coordinator(context.Context) (any, error) {
	return &client.CoordinatorConfig{}, nil
}
func (f *fakeBackend) Pod(_ context.Context, ns, name string) (any, error) {
	if name == "missing" {
		return nil, fmt.Errorf("pod %q: %w", ns+"/"+name, ErrNotFound)
	}
	return &client.PodInfo{Namespace: ns, Name: name}, nil
}

func serve(t *testing.T, b Backend) *client.Client {
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
	return client.New(sock)
}

func TestProtocolRoundTrip(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	ctx := context.Background()
	res, err := c.Add(ctx, &client.Request{ContainerID: "c", IfName: "net1", PodNamespace: "ns", PodName: "p", DefaultIPv4Pools: []string{"a"}})
	if err != nil || res.IPs[0].Address != "10.0.0.2/24" || b.got.DefaultIPv4Pools[0] != "a" || res.Interface != "net1" {
		t.Fatalf("add: %+v %v", res, err)
	}
	b.addErr = &client.ErrorResponse{Code: client.CodeTryAgainLater, Msg: "failed to allocate", Details: `pool "b": 254/254 allocated`}
	_, err = c.Add(ctx, &client.Request{})
	var e *client.ErrorResponse
	if !errors.As(err, &e) || e.Code != 11 || !strings.Contains(e.Details, "254/254") {
		t.Fatalf("add error: %#v", err)
	}
	if err := c.Del(ctx, &client.Request{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a failed release must be reported, got %v", err)
	}
	if gc, err := c.GC(ctx, &client.GCRequest{}); err != nil || gc.Released[0] != "10.0.0.3" {
		t.Fatalf("gc: %+v %v", gc, err)
	}
	if res, err := c.Conflict(ctx, &client.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", Address: "10.0.0.2"}); err != nil || res.Action != client.ConflictReleased {
		t.Fatalf("conflict: %+v %v", res, err)
	}
	if _, err := c.Conflict(ctx, &client.ConflictReport{PodNamespace: "ns", PodName: "missing", IfName: "net1", Address: "10.0.0.2"}); !errors.As(err, &e) || !strings.Contains(e.Msg, "not held") {
		t.Fatalf("conflict for an address the pod does not hold: %v", err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatal(err)
	}
	pod := &client.PodInfo{}
	if err := c.Do(ctx, "GET", client.PathPods+"kube-system/web-0", nil, pod); err != nil || pod.Namespace != "kube-system" || pod.Name != "web-0" {
		t.Fatalf("pod: %+v %v", pod, err)
	}
	err = c.Do(ctx, "GET", client.PathPods+"kube-system/missing", nil, &client.PodInfo{})
	if !errors.As(err, &e) || !strings.Contains(e.Msg, "not found") {
		t.Fatalf("missing pod: %v", err)
	}
	// Malformed JSON is a config error naming the path.
	err = c.Do(ctx, "POST", client.PathAdd, "not an object", nil)
	if !errors.As(err, &e) || e.Code != client.CodeInvalidConfig || !strings.Contains(e.Msg, client.PathAdd) {
		t.Fatalf("bad body: %#v", err)
	}
}
