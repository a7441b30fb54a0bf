package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// SettingsSource supplies what the coordinator needs from the cluster: the
// cluster-wide defaults (the SpiderCoordinator "default" object) and the
// pod's annotations and per-NIC allocation facts. The node agent serves it;
// tests use a fake.
type SettingsSource interface {
	// Defaults returns the cluster-wide settings; nil when there are none.
	Defaults(ctx context.Context) (*Settings, error)
	// Pod returns what the coordinator needs to know about a pod: its
	// annotations and, per interface, its allocation (cleanGateway).
	Pod(ctx context.Context, namespace, name string) (*nodeapi.PodInfo, error)
}

// ErrAgentUnavailable is returned, wrapped, for transient agent failures: the
// socket exists but the request failed, timed out, or the agent answered
// "try again", with an internal error, or did not know the pod yet (its
// informer may lag behind the API server).
var ErrAgentUnavailable = errors.New("node agent unavailable")

// AgentClient is the SettingsSource backed by the node agent's unix socket,
// spoken with the node protocol's client (package nodeapi). When the socket
// does not exist it reports no defaults and an empty pod.
type AgentClient struct {
	api *nodeapi.Client
}

// NewAgentClient returns a client for the agent listening on socket.
func NewAgentClient(socket string, timeout time.Duration) *AgentClient {
	api := nodeapi.New(socket)
	api.Timeout = timeout
	return &AgentClient{api: api}
}

// Socket is the agent's socket path.
func (c *AgentClient) Socket() string { return c.api.Socket }

func (c *AgentClient) absent() bool {
	_, err := os.Stat(c.api.Socket)
	return errors.Is(err, fs.ErrNotExist)
}

// Defaults implements SettingsSource.
func (c *AgentClient) Defaults(ctx context.Context) (*Settings, error) {
	if c.absent() {
		return nil, nil
	}
	cc, err := c.api.Coordinator(ctx)
	if err != nil {
		return nil, c.wrap("get the coordinator defaults from", err)
	}
	return clusterSettings(cc), nil
}

// clusterSettings is the part of the cluster's coordinator configuration the
// plugin merges under its own network configuration. (hostRPFilter is applied
// by the agent on the node, phase is informational.)
func clusterSettings(cc *nodeapi.CoordinatorConfig) *Settings {
	return &Settings{
		Mode:               Mode(cc.Mode),
		PodDefaultRouteNIC: cc.PodDefaultRouteNIC,
		TunePodRoutes:      cc.TunePodRoutes,
		HijackCIDR:         cc.HijackCIDR,
		HostRuleTable:      cc.HostRuleTable,
		PodMACPrefix:       cc.PodMACPrefix,
		PodRPFilter:        cc.PodRPFilter,
		TxQueueLen:         cc.TxQueueLen,
		VethLinkAddress:    cc.VethLinkAddress,
		DetectIPConflict:   cc.DetectIPConflict,
		DetectGateway:      cc.DetectGateway,
		ServiceCIDR:        cc.ServiceCIDR,
		OverlayPodCIDR:     cc.OverlayPodCIDR,
	}
}

// Pod implements SettingsSource.
func (c *AgentClient) Pod(ctx context.Context, namespace, name string) (*nodeapi.PodInfo, error) {
	if c.absent() || namespace == "" || name == "" {
		return &nodeapi.PodInfo{}, nil
	}
	p, err := c.api.Pod(ctx, namespace, name)
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("get pod %s/%s from", namespace, name), err)
	}
	return p, nil
}

// ReportConflict implements ConflictReporter: it tells the agent that an
// address of the pod's interface already answers from another machine.
func (c *AgentClient) ReportConflict(ctx context.Context, rep *nodeapi.ConflictReport) (*nodeapi.ConflictResult, error) {
	if c.absent() {
		return nil, fmt.Errorf("failed to report conflict to agent %q: %w: no socket", c.api.Socket, ErrAgentUnavailable)
	}
	res, err := c.api.Conflict(ctx, rep)
	if err != nil {
		return nil, c.wrap("report the conflict to", err)
	}
	return res, nil
}

// wrap names the call and the socket, and marks transient failures with
// ErrAgentUnavailable.
func (c *AgentClient) wrap(what string, err error) error {
	var e *nodeapi.ErrorResponse
	if errors.As(err, &e) && (e.Code == nodeapi.CodeTryAgainLater || e.Status == nodeapi.StatusNotFound || e.Status >= nodeapi.StatusInternalError) {
		return fmt.Errorf("failed to %s agent %q: %w: %w", what, c.api.Socket, ErrAgentUnavailable, err)
	}
	return fmt.Errorf("failed to %s agent %q: %w", what, c.api.Socket, err)
}
