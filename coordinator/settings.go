package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	ipamclient "github.com/spindle-net/spindle/ipam/client"
)

// SettingsSource supplies what the coordinator needs from the cluster: the
// cluster-wide defaults (the SpiderCoordinator "default" object) and the
// pod's annotations and per-NIC allocation facts. The node agent serves it;
// tests use a fake.
type SettingsSource interface {
	// Defaults returns the cluster-wide settings; nil when there are none.
	Defaults(ctx context.Context) (*Settings, error)
	// Pod returns what the coordinator needs to know about a pod.
	Pod(ctx context.Context, namespace, name string) (*PodInfo, error)
}

// PodInfo is the agent's view of a pod.
type PodInfo struct {
	// Annotations are the pod's annotations (at least those under
	// ipam.spidernet.io/).
	Annotations map[string]string `json:"annotations,omitempty"`
	// Interfaces holds, per pod interface name, facts of its allocation.
	Interfaces map[string]InterfaceInfo `json:"interfaces,omitempty"`
}

// InterfaceInfo is one pod interface's allocation.
type InterfaceInfo struct {
	// CleanGateway: this NIC never carries the pod's default route.
	CleanGateway bool `json:"cleanGateway,omitempty"`
}

// Agent HTTP paths, served over the agent's unix socket.
const (
	AgentPathCoordinator = "/v1/coordinator"
	AgentPathPods        = "/v1/pods/" // + <namespace>/<name>
	AgentPathConflict    = ipamclient.PathConflict
)

// ErrAgentUnavailable is returned, wrapped, for transient agent failures: the
// socket exists but the request failed, timed out or got a 5xx/404.
var ErrAgentUnavailable = errors.New("node agent unavailable")

// AgentClient is the SettingsSource backed by the node agent's unix socket.
// When the socket does not exist it reports no defaults and an empty pod.
type AgentClient struct {
	Socket string
	client *http.Client
}

// NewAgentClient returns a client for the agent listening on socket.
func NewAgentClient(socket string, timeout time.Duration) *AgentClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &AgentClient{Socket: socket, client: &http.Client{Transport: tr, Timeout: timeout}}
}

func (c *AgentClient) absent() bool {
	_, err := os.Stat(c.Socket)
	return errors.Is(err, fs.ErrNotExist)
}

// Defaults implements SettingsSource.
func (c *AgentClient) Defaults(ctx context.Context) (*Settings, error) {
	if c.absent() {
		return nil, nil
	}
	s := &Settings{}
	if err := c.get(ctx, AgentPathCoordinator, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Pod implements SettingsSource.
func (c *AgentClient) Pod(ctx context.Context, namespace, name string) (*PodInfo, error) {
	if c.absent() || namespace == "" || name == "" {
		return &PodInfo{}, nil
	}
	p := &PodInfo{}
	path := AgentPathPods + url.PathEscape(namespace) + "/" + url.PathEscape(name)
	if err := c.get(ctx, path, p); err != nil {
		return nil, err
	}
	return p, nil
}

// ReportConflict implements ConflictReporter: it tells the agent that an
// address of the pod's interface already answers from another machine.
func (c *AgentClient) ReportConflict(ctx context.Context, rep *ipamclient.ConflictReport) (*ipamclient.ConflictResult, error) {
	if c.absent() {
		return nil, fmt.Errorf("failed to report conflict to agent %q: %w: no socket", c.Socket, ErrAgentUnavailable)
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return nil, fmt.Errorf("failed to encode conflict report: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+AgentPathConflict, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to build request %q: %w", AgentPathConflict, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res := &ipamclient.ConflictResult{}
	if err := c.do(req, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (c *AgentClient) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+path, nil)
	if err != nil {
		return fmt.Errorf("failed to build request %q: %w", path, err)
	}
	return c.do(req, into)
}

// do sends req and decodes a 200 answer into into. Transport failures, 5xx
// and 404 answers wrap ErrAgentUnavailable.
func (c *AgentClient) do(req *http.Request, into any) error {
	path := req.URL.Path
	verb := "get %q from"
	if req.Method == http.MethodPost {
		verb = "post %q to"
	}
	verb = fmt.Sprintf(verb, path)
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to %s agent %q: %w: %w", verb, c.Socket, ErrAgentUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("failed to read %q from agent %q: %w: %w", path, c.Socket, ErrAgentUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("failed to %s agent %q: status %d: %s", verb, c.Socket, resp.StatusCode, body)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %w", ErrAgentUnavailable, err)
		}
		return err
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("failed to decode %q from agent %q: %w", path, c.Socket, err)
	}
	return nil
}
