package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPoolSpec is the desired state of a SpiderIPPool.
type IPPoolSpec struct {
	// ipVersion is the IP family of the pool, 4 or 6. When unset the family is
	// taken from subnet.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// subnet is the CIDR the pool's addresses belong to, e.g. 10.6.0.0/16. Its
	// prefix length is the prefix length of the addresses given to pods.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="subnet must be a CIDR such as 10.6.0.0/16 or fd00:6::/64"
	Subnet string `json:"subnet"`

	// ips lists the addresses the pool may hand out: single addresses
	// (10.6.0.5) and inclusive ranges (10.6.0.10-10.6.0.20). Only listed
	// addresses are usable; all of them must lie inside subnet.
	// +optional
	IPs []string `json:"ips,omitempty"`

	// excludeIPs lists addresses and ranges (same syntax as ips) that are never
	// handed out even though ips contains them.
	// +optional
	ExcludeIPs []string `json:"excludeIPs,omitempty"`

	// gateway is the default gateway of the subnet. It is never handed out to a
	// pod.
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="gateway must be an IP address"
	// +optional
	Gateway *string `json:"gateway,omitempty"`

	// vlan is the VLAN ID of the pool. Deprecated: kept for compatibility with
	// existing manifests; the VLAN is configured by the main CNI plugin.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// routes are extra routes handed to pods that get an address from this
	// pool. Do not add a default route when gateway is set.
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// podAffinity restricts the pool to pods whose labels match.
	// +optional
	PodAffinity *metav1.LabelSelector `json:"podAffinity,omitempty"`

	// namespaceAffinity restricts the pool to pods in namespaces whose labels
	// match. namespaceName takes precedence when both are set.
	// +optional
	NamespaceAffinity *metav1.LabelSelector `json:"namespaceAffinity,omitempty"`

	// namespaceName restricts the pool to pods in the listed namespaces.
	// +optional
	NamespaceName []string `json:"namespaceName,omitempty"`

	// nodeAffinity restricts the pool to pods on nodes whose labels match.
	// nodeName takes precedence when both are set.
	// +optional
	NodeAffinity *metav1.LabelSelector `json:"nodeAffinity,omitempty"`

	// nodeName restricts the pool to pods on the listed nodes.
	// +optional
	NodeName []string `json:"nodeName,omitempty"`

	// multusName restricts the pool to interfaces attached through the listed
	// NetworkAttachmentDefinitions, as "namespace/name" or "name".
	// +optional
	MultusName []string `json:"multusName,omitempty"`

	// default marks the pool as a cluster default pool, used when neither the
	// pod, its namespace nor the CNI configuration names a pool.
	// +kubebuilder:default=false
	// +optional
	Default *bool `json:"default,omitempty"`

	// disable stops new allocations from the pool; existing ones are kept.
	// +kubebuilder:default=false
	// +optional
	Disable *bool `json:"disable,omitempty"`

	// dns is handed to pods that get an address from this pool as the dns
	// field of the CNI result, unless the network configuration gives its
	// own ("dns" or "resolvConf" in its ipam object).
	// +optional
	DNS *DNS `json:"dns,omitempty"`
}

// DNS is the dns field of a CNI result.
type DNS struct {
	// nameservers are the addresses of the name servers, in order.
	// +optional
	Nameservers []string `json:"nameservers,omitempty"`

	// domain is the local domain name.
	// +optional
	Domain string `json:"domain,omitempty"`

	// search are the search domains, in order.
	// +optional
	Search []string `json:"search,omitempty"`

	// options are resolver options, e.g. ndots:5.
	// +optional
	Options []string `json:"options,omitempty"`
}

// IPPoolStatus is the observed state of a SpiderIPPool.
type IPPoolStatus struct {
	// allocatedIPs is Spiderpool's per-address allocation record. Spindle does
	// not read or write it (allocations are SpiderIPClaim objects); the field
	// exists so objects written by Spiderpool round-trip unchanged.
	// +optional
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`

	// totalIPCount is the number of addresses the pool can hand out.
	// +optional
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// allocatedIPCount is the number of addresses currently handed out.
	// +optional
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// SpiderIPPool is a set of addresses from one subnet that pods get their
// addresses from.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spiderippools,scope=Cluster,shortName={sp},singular=spiderippool
// +kubebuilder:printcolumn:name="VERSION",type=integer,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="SUBNET",type=string,JSONPath=`.spec.subnet`,description="subnet"
// +kubebuilder:printcolumn:name="ALLOCATED-IP-COUNT",type=integer,JSONPath=`.status.allocatedIPCount`,description="addresses handed out"
// +kubebuilder:printcolumn:name="TOTAL-IP-COUNT",type=integer,JSONPath=`.status.totalIPCount`,description="addresses the pool can hand out"
// +kubebuilder:printcolumn:name="DEFAULT",type=boolean,JSONPath=`.spec.default`,description="cluster default pool"
// +kubebuilder:printcolumn:name="DISABLE",type=boolean,JSONPath=`.spec.disable`,description="allocation disabled"
// +kubebuilder:printcolumn:name="NODENAME",type=string,JSONPath=`.spec.nodeName`,description="nodes the pool is restricted to",priority=1
// +kubebuilder:printcolumn:name="MULTUSNAME",type=string,JSONPath=`.spec.multusName`,description="NetworkAttachmentDefinitions the pool is restricted to",priority=1
// +kubebuilder:printcolumn:name="APP-NAMESPACE",type=string,JSONPath=`.spec.podAffinity.matchLabels['ipam\.spidernet\.io/app-namespace']`,description="namespace of the application an automatically created pool belongs to",priority=1
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec,omitempty"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// SpiderIPPoolList is a list of SpiderIPPool.
//
// +kubebuilder:object:root=true
type SpiderIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderIPPool `json:"items"`
}

func init() {
	register(&SpiderIPPool{}, &SpiderIPPoolList{})
}
