package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAllocationDetail is the allocation of one pod interface.
type IPAllocationDetail struct {
	// interface is the name of the interface inside the pod, e.g. eth0 or net1.
	// +kubebuilder:validation:Required
	Interface string `json:"interface"`

	// ipv4 is the IPv4 address with the subnet's prefix length, e.g. 10.6.0.5/16.
	// +optional
	IPv4 *string `json:"ipv4,omitempty"`

	// ipv6 is the IPv6 address with the subnet's prefix length, e.g. fd00:6::5/64.
	// +optional
	IPv6 *string `json:"ipv6,omitempty"`

	// ipv4Pool is the SpiderIPPool the IPv4 address came from.
	// +optional
	IPv4Pool *string `json:"ipv4Pool,omitempty"`

	// ipv6Pool is the SpiderIPPool the IPv6 address came from.
	// +optional
	IPv6Pool *string `json:"ipv6Pool,omitempty"`

	// vlan is the VLAN ID of the pool. Deprecated, kept for compatibility.
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// ipv4Gateway is the IPv4 gateway of the pool.
	// +optional
	IPv4Gateway *string `json:"ipv4Gateway,omitempty"`

	// ipv6Gateway is the IPv6 gateway of the pool.
	// +optional
	IPv6Gateway *string `json:"ipv6Gateway,omitempty"`

	// cleanGateway is true when no default route via the gateway is given to
	// this interface.
	// +optional
	CleanGateway *bool `json:"cleanGateway,omitempty"`

	// routes are the routes handed to this interface.
	// +optional
	Routes []Route `json:"routes,omitempty"`
}

// PodIPAllocation is the current allocation of a pod.
type PodIPAllocation struct {
	// uid is the UID of the pod the allocation belongs to.
	// +kubebuilder:validation:Required
	UID string `json:"uid"`

	// node is the node the pod runs on.
	// +kubebuilder:validation:Required
	Node string `json:"node"`

	// ips are the allocations, one entry per interface.
	// +optional
	IPs []IPAllocationDetail `json:"ips,omitempty"`

	// containerID is the sandbox container ID of the CNI ADD that made the
	// allocation. Spindle extension.
	// +optional
	ContainerID string `json:"containerID,omitempty"`
	// addresses lists the addresses of every entry of ips on one line,
	// interfaces separated by spaces, e.g.
	// "eth0=10.6.0.5/16,fd00:6::5/64 net1=10.7.0.5/24". It repeats ips for
	// kubectl's ADDRESSES column. Spindle extension.
	// +optional
	Addresses string `json:"addresses,omitempty"`
}

// WorkloadEndpointStatus is the allocation state of a pod.
type WorkloadEndpointStatus struct {
	// current is the allocation of the pod's current incarnation.
	// +optional
	Current PodIPAllocation `json:"current"`

	// ownerControllerType is the kind of the pod's top controller, e.g.
	// StatefulSet, or "Pod" for a bare pod.
	// +optional
	OwnerControllerType string `json:"ownerControllerType"`

	// ownerControllerName is the name of the pod's top controller.
	// +optional
	OwnerControllerName string `json:"ownerControllerName"`
}

// SpiderEndpoint records the addresses of one pod. It has the pod's name and
// namespace. Like Spiderpool's, it has no status subresource: an object
// is written whole, status included, in one request.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spiderendpoints,scope=Namespaced,shortName={se},singular=spiderendpoint
// +kubebuilder:printcolumn:name="ADDRESSES",type=string,JSONPath=`.status.current.addresses`,description="addresses of every interface"
// +kubebuilder:printcolumn:name="NODE",type=string,JSONPath=`.status.current.node`,description="node of the pod"
// +kubebuilder:printcolumn:name="INTERFACE",type=string,JSONPath=`.status.current.ips[0].interface`,priority=1,description="first interface"
// +kubebuilder:printcolumn:name="IPV4POOL",type=string,JSONPath=`.status.current.ips[0].ipv4Pool`,priority=1,description="IPv4 pool of the first interface"
// +kubebuilder:printcolumn:name="IPV4",type=string,JSONPath=`.status.current.ips[0].ipv4`,priority=1,description="IPv4 address of the first interface"
// +kubebuilder:printcolumn:name="IPV6POOL",type=string,JSONPath=`.status.current.ips[0].ipv6Pool`,priority=1,description="IPv6 pool of the first interface"
// +kubebuilder:printcolumn:name="IPV6",type=string,JSONPath=`.status.current.ips[0].ipv6`,priority=1,description="IPv6 address of the first interface"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status WorkloadEndpointStatus `json:"status,omitempty"`
}

// SpiderEndpointList is a list of SpiderEndpoint.
//
// +kubebuilder:object:root=true
type SpiderEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderEndpoint `json:"items"`
}

func init() {
	register(&SpiderEndpoint{}, &SpiderEndpointList{})
}
