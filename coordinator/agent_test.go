package coordinator

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/nodeapi/nodeserver"
)

// agentBackend is what the node agent answers the coordinator, served by the
// agent's real socket handler so that these tests exercise the same wire
// format the plugin meets on a node.
type agentBackend struct {
	coordinator *nodeapi.CoordinatorConfig
	pods        map[string]*nodeapi.PodInfo // namespace/name
	conflicts   chan nodeapi.ConflictReport
	err         error // returned by every call when set
}

var errNotServed = errors.New("the coordinator does not call this")

func (b *agentBackend) Add(context.Context, *nodeapi.Request) (*nodeapi.Result, error) {
	return nil, errNotServed
}
func (b *agentBackend) Del(context.Context, *nodeapi.Request) error { return errNotServed }
func (b *agentBackend) Check(context.Context, *nodeapi.Request) (*nodeapi.Result, error) {
	return nil, errNotServed
}
func (b *agentBackend) GC(context.Context, *nodeapi.GCRequest) (*nodeapi.GCResult, error) {
	return nil, errNotServed
}
func (b *agentBackend) Ready() error { return b.err }

func (b *agentBackend) Conflict(_ context.Context, rep *nodeapi.ConflictReport) (*nodeapi.ConflictResult, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.conflicts <- *rep
	return &nodeapi.ConflictResult{Action: nodeapi.ConflictReleased}, nil
}

func (b *agentBackend) Coordinator(context.Context) (*nodeapi.CoordinatorConfig, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.coordinator == nil {
		return &nodeapi.CoordinatorConfig{}, nil
	}
	return b.coordinator, nil
}

func (b *agentBackend) Pod(_ context.Context, namespace, name string) (*nodeapi.PodInfo, error) {
	if b.err != nil {
		return nil, b.err
	}
	if p, ok := b.pods[namespace+"/"+name]; ok {
		return p, nil
	}
	return nil, nodeapi.ErrNotFound
}

// serveAgent serves b with the agent's socket handler and returns the socket.
func serveAgent(t *testing.T, b nodeserver.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	lis, err := nodeserver.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: nodeserver.Handler(b)}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}
