package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubnetSpec is the desired state of a SpiderSubnet.
type SubnetSpec struct {
	// ipVersion is the IP family of the subnet, 4 or 6.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// subnet is the CIDR of the subnet.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="subnet must be a CIDR such as 10.6.0.0/16 or fd00:6::/64"
	Subnet string `json:"subnet"`

	// ips lists the addresses of the subnet that pools may use.
	// +optional
	IPs []string `json:"ips,omitempty"`

	// excludeIPs lists addresses that pools never use.
	// +optional
	ExcludeIPs []string `json:"excludeIPs,omitempty"`

	// gateway is the default gateway of the subnet.
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="gateway must be an IP address"
	// +optional
	Gateway *string `json:"gateway,omitempty"`

	// vlan is the VLAN ID of the subnet. Deprecated, kept for compatibility.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// routes are extra routes of the subnet.
	// +optional
	Routes []Route `json:"routes,omitempty"`
}

// SubnetStatus is the observed state of a SpiderSubnet.
type SubnetStatus struct {
	// controlledIPPools records the pools carved out of the subnet.
	// +optional
	ControlledIPPools *string `json:"controlledIPPools,omitempty"`

	// totalIPCount is the number of addresses of the subnet.
	// +optional
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// allocatedIPCount is the number of addresses given to pools.
	// +optional
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// SpiderSubnet is a subnet that pools are carved out of: it is the parent of
// every SpiderIPPool with the same spec.subnet, gives them their addresses
// (spec.ips minus spec.excludeIPs), gateway and routes, and counts in its
// status what they use.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spidersubnets,scope=Cluster,shortName={ss},singular=spidersubnet
// +kubebuilder:printcolumn:name="VERSION",type=integer,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="SUBNET",type=string,JSONPath=`.spec.subnet`,description="subnet"
// +kubebuilder:printcolumn:name="ALLOCATED-IP-COUNT",type=integer,JSONPath=`.status.allocatedIPCount`,description="addresses given to pools"
// +kubebuilder:printcolumn:name="TOTAL-IP-COUNT",type=integer,JSONPath=`.status.totalIPCount`,description="addresses of the subnet"
// +kubebuilder:printcolumn:name="CONTROLLED-IPPOOLS",type=string,JSONPath=`.status.controlledIPPools`,priority=1,description="pools of the subnet and their addresses"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderSubnet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SubnetSpec   `json:"spec,omitempty"`
	Status SubnetStatus `json:"status,omitempty"`
}

// SpiderSubnetList is a list of SpiderSubnet.
//
// +kubebuilder:object:root=true
type SpiderSubnetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderSubnet `json:"items"`
}

func init() {
	register(&SpiderSubnet{}, &SpiderSubnetList{})
}
