package coordinator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// serveUnix serves h on a unix socket in a temporary directory.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

// The coordinator's view of the agent, against the agent's real handler:
// cluster defaults become Settings, a pod's per-interface facts arrive, and a
// pod the agent does not know yet is a transient failure.
func TestAgentClient(t *testing.T) {
	sock := serveAgent(t, &agentBackend{
		coordinator: &nodeapi.CoordinatorConfig{Mode: "underlay", PodDefaultRouteNIC: "net1", TunePodRoutes: new(false),
			HostRuleTable: new(600), ServiceCIDR: []string{"10.233.0.0/18"}, Phase: "Synced"},
		pods: map[string]*nodeapi.PodInfo{"default/web-0": {
			Namespace: "default", Name: "web-0",
			Annotations: map[string]string{DefaultRouteNICAnnotation: "net2"},
			Interfaces:  map[string]nodeapi.Result{"net1": {Interface: "net1", CleanGateway: true}},
		}},
	})
	c := NewAgentClient(sock, time.Second)
	ctx := context.Background()

	defs, err := c.Defaults(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if defs.Mode != ModeUnderlay || defs.PodDefaultRouteNIC != "net1" || *defs.TunePodRoutes || *defs.HostRuleTable != 600 || defs.ServiceCIDR[0] != "10.233.0.0/18" {
		t.Errorf("defaults %+v", defs)
	}
	pod, err := c.Pod(ctx, "default", "web-0")
	if err != nil {
		t.Fatal(err)
	}
	if podAnnotation(pod, DefaultRouteNICAnnotation) != "net2" || !pod.Interfaces["net1"].CleanGateway {
		t.Errorf("pod %+v", pod)
	}
	if _, err := c.Pod(ctx, "default", "unknown"); !errors.Is(err, ErrAgentUnavailable) {
		t.Errorf("unknown pod: %v, want ErrAgentUnavailable (the agent may lag behind the API)", err)
	}
}

func TestAgentClientSocketAbsent(t *testing.T) {
	c := NewAgentClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	defs, err := c.Defaults(context.Background())
	if err != nil || defs != nil {
		t.Errorf("Defaults without agent = %v, %v; want nil, nil", defs, err)
	}
	pod, err := c.Pod(context.Background(), "default", "web-0")
	if err != nil || pod == nil || len(pod.Annotations) != 0 {
		t.Errorf("Pod without agent = %+v, %v; want empty", pod, err)
	}
}

func TestAgentClientFailures(t *testing.T) {
	t.Run("agent not ready is transient", func(t *testing.T) {
		sock := serveAgent(t, &agentBackend{err: &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "informer not synced"}})
		_, err := NewAgentClient(sock, time.Second).Defaults(context.Background())
		if !errors.Is(err, ErrAgentUnavailable) {
			t.Errorf("got %v, want ErrAgentUnavailable", err)
		}
	})
	t.Run("a plain-text 503 is transient", func(t *testing.T) {
		sock := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
		}))
		_, err := NewAgentClient(sock, time.Second).Defaults(context.Background())
		if !errors.Is(err, ErrAgentUnavailable) {
			t.Errorf("got %v, want ErrAgentUnavailable", err)
		}
	})
	t.Run("an answer cut off mid-way is transient", func(t *testing.T) {
		// An agent killed while answering leaves half a JSON document: the
		// next attempt reaches its successor (nodeapi treats it as try-again).
		sock := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{")) }))
		_, err := NewAgentClient(sock, time.Second).Defaults(context.Background())
		if !errors.Is(err, ErrAgentUnavailable) || !strings.Contains(err.Error(), "failed to decode answer") {
			t.Errorf("got %v, want ErrAgentUnavailable naming the decode failure", err)
		}
	})
	t.Run("socket that does not answer", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "dead.sock")
		lis, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		lis.Close() // the file may stay; nobody accepts
		_, err = NewAgentClient(sock, 200*time.Millisecond).Defaults(context.Background())
		if err != nil && !errors.Is(err, ErrAgentUnavailable) {
			t.Errorf("got %v, want nil (socket removed) or ErrAgentUnavailable", err)
		}
	})
}
