// Package nodeapi is the protocol between the spiderpool IPAM CNI plugin and the
// node agent: JSON over HTTP/1.1 on a root-only unix socket.
//
// It is deliberately tiny (standard library only) because the plugin is
// executed once per ADD/DEL and its start-up time is on the pod's critical path.
package nodeapi

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/var/run/spindle/agent.sock"

// Paths served by the agent.
const (
	PathAdd         = "/v1/ipam/add"
	PathDel         = "/v1/ipam/del"
	PathCheck       = "/v1/ipam/check"
	PathGC          = "/v1/ipam/gc"
	PathConflict    = "/v1/ipam/conflict"
	PathHealthz     = "/v1/healthz"
	PathCoordinator = "/v1/coordinator"
	PathPods        = "/v1/pods/" // + <namespace>/<name>
)

// Error codes carried by ErrorResponse.Code. They are CNI error codes so the
// plugin passes them through unchanged.
const (
	CodeInvalidConfig uint = 7   // bad network config or annotation
	CodeTryAgainLater uint = 11  // transient failure; the runtime retries
	CodeInternal      uint = 999 // anything else
)

// Request is the body of add, del and check.
type Request struct {
	// ContainerID is CNI_CONTAINERID (the sandbox ID).
	ContainerID string `json:"containerID"`
	// Netns is CNI_NETNS (informational).
	Netns string `json:"netns,omitempty"`
	// IfName is CNI_IFNAME, the interface inside the pod.
	IfName string `json:"ifName"`
	// PodNamespace, PodName and PodUID come from CNI_ARGS (K8S_POD_*).
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID,omitempty"`
	// NetworkName is the "name" of the network configuration (for Multus
	// delegates, the NetworkAttachmentDefinition's network name).
	NetworkName string `json:"networkName,omitempty"`
	// DefaultIPv4Pools and DefaultIPv6Pools are the network configuration's
	// default_ipv4_ippool / default_ipv6_ippool.
	DefaultIPv4Pools []string `json:"defaultIPv4Pools,omitempty"`
	DefaultIPv6Pools []string `json:"defaultIPv6Pools,omitempty"`
	// InlineIPv4Pools and InlineIPv6Pools are set when the network
	// configuration carries its own ranges: the name suffixes
	// (inline.PoolName) of the pools of its ranges, per family, in order.
	// The agent completes them with the NetworkAttachmentDefinition of the
	// interface.
	InlineIPv4Pools []string `json:"inlineIPv4Pools,omitempty"`
	InlineIPv6Pools []string `json:"inlineIPv6Pools,omitempty"`
}

// Inline reports whether the network configuration carries its own ranges.
func (r *Request) Inline() bool {
	return len(r.InlineIPv4Pools)+len(r.InlineIPv6Pools) > 0
}

// DNS is the dns field of the CNI result.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// IP is one allocated address.
type IP struct {
	// Address in CIDR notation with the pool's prefix length, e.g. 10.6.0.9/16.
	Address string `json:"address"`
	// Gateway of the pool; empty when the pool has none or cleanGateway is set.
	Gateway string `json:"gateway,omitempty"`
	// Version is 4 or 6.
	Version int `json:"version"`
	// Pool is the SpiderIPPool the address came from.
	Pool string `json:"pool"`
	// Vlan of the pool (0 when unset).
	Vlan int64 `json:"vlan,omitempty"`
}

// Route is a route for the interface.
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// Result is the answer to add (and the current allocation for check).
type Result struct {
	Interface    string  `json:"interface"`
	IPs          []IP    `json:"ips"`
	Routes       []Route `json:"routes,omitempty"`
	CleanGateway bool    `json:"cleanGateway,omitempty"`
	// MAC is the MAC address the pod asked for on the interface (lower
	// case, colons); the coordinator sets it on the interface.
	MAC string `json:"mac,omitempty"`
	// DNS is the spec.dns of the first pool of the interface's addresses
	// that has one; nil when none has.
	DNS *DNS `json:"dns,omitempty"`
}

// Attachment identifies one CNI attachment for gc.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// GCRequest is the body of gc: every attachment the runtime still knows.
type GCRequest struct {
	NetworkName      string       `json:"networkName,omitempty"`
	ValidAttachments []Attachment `json:"validAttachments"`
}

// GCResult reports what gc released.
type GCResult struct {
	Released []string `json:"released,omitempty"`
}

// ConflictReport is the body of conflict: the coordinator plugin found that
// an address it was given for the pod's interface already answers ARP or
// neighbour solicitations from another machine, and refused it.
type ConflictReport struct {
	PodNamespace string `json:"podNamespace"`
	PodName      string `json:"podName"`
	PodUID       string `json:"podUID,omitempty"`
	ContainerID  string `json:"containerID,omitempty"`
	IfName       string `json:"ifName"`
	// Address is the refused address, without prefix length.
	Address string `json:"address"`
	// MAC is the hardware address that answered for it.
	MAC string `json:"mac,omitempty"`
}

// Validate checks that the report names a pod interface, an incarnation
// (podUID or containerID) and an address, and returns the address.
func (r *ConflictReport) Validate() (netip.Addr, error) {
	pod := r.PodNamespace + "/" + r.PodName
	if r.PodNamespace == "" || r.PodName == "" || r.IfName == "" {
		return netip.Addr{}, errors.New("invalid conflict report: podNamespace, podName and ifName are required")
	}
	if r.PodUID == "" && r.ContainerID == "" {
		return netip.Addr{}, fmt.Errorf("invalid conflict report for pod %q: podUID or containerID is required", pod)
	}
	addr, err := netip.ParseAddr(r.Address)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid conflict report for pod %q: address %q: %w", pod, r.Address, err)
	}
	return addr.Unmap(), nil
}

// Conflict outcomes.
const (
	// ConflictReleased: the claim was released and the address is not
	// offered again by this node's agent for a while.
	ConflictReleased = "released"
	// ConflictKept: the address is a StatefulSet replica's fixed address;
	// the claim is kept and the pod keeps being refused until the
	// conflict is resolved.
	ConflictKept = "kept"
)

// ConflictResult is the answer to conflict.
type ConflictResult struct {
	// Action is ConflictReleased or ConflictKept.
	Action string `json:"action"`
	// QuarantinedUntil is when the address may be offered again (RFC 3339),
	// set with ConflictReleased.
	QuarantinedUntil string `json:"quarantinedUntil,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
	// Reason says why, for metrics and tools (one of the Reason constants);
	// Code says what the runtime should do.
	Reason string `json:"reason,omitempty"`
	// Pools are the pools the reason concerns: for ReasonExhausted, the
	// candidate pools that had no free address.
	Pools []string `json:"pools,omitempty"`
	// Status is the HTTP status the agent answered with, set by the
	// client; zero when the agent could not be reached.
	Status int `json:"-"`
}

// Error makes ErrorResponse an error.
func (e *ErrorResponse) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// Is reports an answer "404 Not Found" as ErrNotFound.
func (e *ErrorResponse) Is(target error) bool {
	return target == ErrNotFound && e.Status == StatusNotFound
}

// Why a call failed (ErrorResponse.Reason; the "reason" label of
// spindle_ipam_failures_total).
const (
	ReasonInvalid   = "invalid_request" // bad request or configuration
	ReasonNoPool    = "no_pool"         // no pool may serve the interface
	ReasonExhausted = "exhausted"       // the candidate pools are full
	ReasonAPI       = "api"             // the API server failed (transient)
	ReasonNotOwned  = "wrong_node"      // the pod runs on another node
	// ReasonFixedUnavailable: the fixed addresses the pod asks for are held
	// by others or in no pool it may use.
	ReasonFixedUnavailable = "fixed_address_unavailable"
	ReasonInternal         = "internal" // anything else
)

// ReasonOf is the failure reason of err: the reason the error carries, else
// one derived from its CNI code.
func ReasonOf(err error) string {
	e := AsErrorResponse(err)
	switch {
	case e.Reason != "":
		return e.Reason
	case e.Code == CodeInvalidConfig:
		return ReasonInvalid
	case e.Code == CodeTryAgainLater:
		return ReasonAPI
	}
	return ReasonInternal
}

// ErrNotFound is what the agent's backend returns, wrapped, for an object it
// does not know (a pod, an address not held); the handler answers 404 and the
// client's error matches it with errors.Is.
var ErrNotFound = errors.New("not found")

// HTTP statuses of the protocol (kept here so the client needs no net/http).
const (
	StatusOK                 = 200
	StatusBadRequest         = 400
	StatusNotFound           = 404
	StatusInternalError      = 500
	StatusServiceUnavailable = 503
)

// StatusOf is the HTTP status the agent answers an error with.
func StatusOf(err error) int {
	var e *ErrorResponse
	switch {
	case errors.Is(err, ErrNotFound):
		return StatusNotFound
	case !errors.As(err, &e):
		return StatusInternalError
	case e.Code == CodeInvalidConfig:
		return StatusBadRequest
	case e.Code == CodeTryAgainLater:
		return StatusServiceUnavailable
	}
	return StatusInternalError
}

// codeOf is the CNI code for an answer without a protocol error body (a
// proxy, an older agent): the inverse of StatusOf.
func codeOf(status int) uint {
	switch status {
	case StatusBadRequest:
		return CodeInvalidConfig
	case StatusServiceUnavailable:
		return CodeTryAgainLater
	}
	return CodeInternal
}

// AsErrorResponse converts any error into the protocol's error body; errors
// that are not already *ErrorResponse get CodeInternal.
func AsErrorResponse(err error) *ErrorResponse {
	var e *ErrorResponse
	if errors.As(err, &e) {
		return e
	}
	return &ErrorResponse{Code: CodeInternal, Msg: err.Error()}
}

// TrimDetails keeps error details readable in kubelet events.
func TrimDetails(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// CoordinatorConfig is the answer of GET /v1/coordinator: the spec of the
// SpiderCoordinator named "default" plus the CIDRs its status reports. Unset
// optional fields are omitted so the coordinator plugin applies its own
// defaults; without a SpiderCoordinator "default" the answer is {}.
type CoordinatorConfig struct {
	Mode               string   `json:"mode,omitempty"`
	PodCIDRType        string   `json:"podCIDRType,omitempty"`
	HijackCIDR         []string `json:"hijackCIDR,omitempty"`
	PodMACPrefix       string   `json:"podMACPrefix,omitempty"`
	TunePodRoutes      *bool    `json:"tunePodRoutes,omitempty"`
	PodDefaultRouteNIC string   `json:"podDefaultRouteNIC,omitempty"`
	HostRuleTable      *int     `json:"hostRuleTable,omitempty"`
	PodRPFilter        *int     `json:"podRPFilter,omitempty"`
	HostRPFilter       *int     `json:"hostRPFilter,omitempty"`
	TxQueueLen         *int     `json:"txQueueLen,omitempty"`
	DetectIPConflict   *bool    `json:"detectIPConflict,omitempty"`
	DetectGateway      *bool    `json:"detectGateway,omitempty"`
	VethLinkAddress    string   `json:"vethLinkAddress,omitempty"`
	// Status fields.
	Phase          string   `json:"phase,omitempty"`
	OverlayPodCIDR []string `json:"overlayPodCIDR,omitempty"`
	ServiceCIDR    []string `json:"serviceCIDR,omitempty"`
}

// PodInfo is the answer of GET /v1/pods/<namespace>/<name>: the pod's
// annotations and the current allocation of each of its interfaces.
type PodInfo struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid"`
	Node        string            `json:"node"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// OwnerKind is the kind of the pod's controller ("StatefulSet", ...).
	OwnerKind string `json:"ownerKind,omitempty"`
	// Interfaces maps each pod interface name to its current allocation
	// (addresses, gateway, routes, cleanGateway).
	Interfaces map[string]Result `json:"interfaces"`
}
