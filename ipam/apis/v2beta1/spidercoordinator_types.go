package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Coordinator modes (spec.mode).
const (
	CoordinatorModeAuto     = "auto"
	CoordinatorModeUnderlay = "underlay"
	CoordinatorModeOverlay  = "overlay"
	CoordinatorModeDisabled = "disabled"
)

// CoordinatorSpec configures the coordinator plugin. SpiderCoordinator holds
// the cluster-wide values; SpiderMultusConfig's coordinator field overrides
// them per network. Unset fields are inherited (SpiderMultusConfig) or take
// the documented default (SpiderCoordinator); the CRD sets no defaults so an
// override never masks a cluster-wide value.
type CoordinatorSpec struct {
	// mode is auto (default), underlay, overlay or disabled.
	// +kubebuilder:validation:Enum=auto;underlay;overlay;disabled
	// +optional
	Mode *string `json:"mode,omitempty"`

	// podCIDRType says where the cluster's pod CIDRs are read from: auto,
	// cluster, calico, cilium or none.
	// +kubebuilder:validation:Enum=auto;cluster;calico;cilium;none
	// +optional
	PodCIDRType *string `json:"podCIDRType,omitempty"`

	// hijackCIDR lists CIDRs the pod reaches through the host network stack,
	// e.g. 169.254.0.0/16 for node-local DNS.
	// +optional
	HijackCIDR []string `json:"hijackCIDR,omitempty"`

	// podMACPrefix fixes the first two bytes of pod MAC addresses, e.g. 0a:1b;
	// the rest is taken from the pod's IPv4 address. Empty leaves MACs alone.
	// +optional
	PodMACPrefix *string `json:"podMACPrefix,omitempty"`

	// tunePodRoutes adjusts routes of pods with several interfaces so replies
	// leave through the interface the request came in on. Default true.
	// +optional
	TunePodRoutes *bool `json:"tunePodRoutes,omitempty"`

	// podDefaultRouteNIC is the pod interface that carries the default route.
	// Empty keeps it on eth0.
	// +optional
	PodDefaultRouteNIC *string `json:"podDefaultRouteNIC,omitempty"`

	// hostRuleTable is the host routing table that holds the routes to pods'
	// underlay addresses. Default 500.
	// +optional
	HostRuleTable *int `json:"hostRuleTable,omitempty"`

	// podRPFilter is the rp_filter value set in the pod: 0, 1 or 2; a negative
	// value leaves it alone. Default 0.
	// +optional
	PodRPFilter *int `json:"podRPFilter,omitempty"`

	// hostRPFilter is accepted for compatibility with older manifests and not
	// used.
	// +optional
	HostRPFilter *int `json:"hostRPFilter,omitempty"`

	// txQueueLen sets the pod interfaces' transmit queue length; 0 (default)
	// leaves it alone.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TxQueueLen *int `json:"txQueueLen,omitempty"`

	// detectIPConflict fails the pod's network setup when its address is
	// already used on the link. Default false.
	// +optional
	DetectIPConflict *bool `json:"detectIPConflict,omitempty"`

	// detectGateway fails the pod's network setup when the gateway does not
	// answer. Default false.
	// +optional
	DetectGateway *bool `json:"detectGateway,omitempty"`

	// vethLinkAddress is an IPv4 link-local address (e.g. 169.254.100.1) given
	// to the pod's veth0; empty gives none.
	// +optional
	VethLinkAddress *string `json:"vethLinkAddress,omitempty"`
}

// CoordinatorStatus is the observed state of a SpiderCoordinator.
type CoordinatorStatus struct {
	// phase is Synced once the CIDRs below are known, NotReady otherwise.
	// +optional
	Phase string `json:"phase,omitempty"`

	// reason explains a NotReady phase.
	// +optional
	Reason string `json:"reason,omitempty"`

	// overlayPodCIDR lists the pod CIDRs of the cluster's default network.
	// +optional
	OverlayPodCIDR []string `json:"overlayPodCIDR,omitempty"`

	// serviceCIDR lists the cluster's service CIDRs.
	// +optional
	ServiceCIDR []string `json:"serviceCIDR,omitempty"`
}

// SpiderCoordinator holds the cluster-wide configuration of the coordinator
// plugin. There is one, named "default".
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spidercoordinators,scope=Cluster,shortName={scc},singular=spidercoordinator
// +kubebuilder:printcolumn:name="MODE",type=string,JSONPath=`.spec.mode`,description="coordinator mode (empty: auto)"
// +kubebuilder:printcolumn:name="PHASE",type=string,JSONPath=`.status.phase`,description="Synced once the cluster's CIDRs are known"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderCoordinator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CoordinatorSpec   `json:"spec,omitempty"`
	Status CoordinatorStatus `json:"status,omitempty"`
}

// SpiderCoordinatorList is a list of SpiderCoordinator.
//
// +kubebuilder:object:root=true
type SpiderCoordinatorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderCoordinator `json:"items"`
}

func init() {
	register(&SpiderCoordinator{}, &SpiderCoordinatorList{})
}
