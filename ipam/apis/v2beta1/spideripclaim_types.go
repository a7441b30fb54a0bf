package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPClaimSpec records who holds one address. Spindle extension.
type IPClaimSpec struct {
	// pool is the SpiderIPPool the address belongs to.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	Pool string `json:"pool"`

	// address is the claimed address without prefix length, e.g. 10.6.0.5.
	// It never changes.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="address must be an IP address without prefix length"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="address is immutable"
	Address string `json:"address"`

	// ipVersion is the IP family of address, 4 or 6.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:Enum=4;6
	IPVersion int64 `json:"ipVersion"`

	// podNamespace is the namespace of the pod holding the address.
	// +optional
	PodNamespace string `json:"podNamespace,omitempty"`

	// podName is the name of the pod holding the address.
	// +optional
	PodName string `json:"podName,omitempty"`

	// podUID is the UID of the pod holding the address.
	// +optional
	PodUID string `json:"podUID,omitempty"`

	// interface is the pod interface the address is configured on.
	// +optional
	Interface string `json:"interface,omitempty"`

	// containerID is the sandbox container ID of the CNI ADD that claimed the
	// address.
	// +optional
	ContainerID string `json:"containerID,omitempty"`

	// node is the node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`

	// ownerKind is the kind of the pod's controller, e.g. StatefulSet.
	// +optional
	OwnerKind string `json:"ownerKind,omitempty"`

	// ownerName is the name of the pod's controller.
	// +optional
	OwnerName string `json:"ownerName,omitempty"`

	// cleanGateway is true when the interface gets no default route via the
	// pool's gateway.
	// +optional
	CleanGateway bool `json:"cleanGateway,omitempty"`

	// mac is the MAC address the pod asked for on this interface, in lower
	// case with colons; empty when it asked for none.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`
	MAC string `json:"mac,omitempty"`
}

// SpiderIPClaim is the allocation record of one address. Its name is the
// address (see ClaimName), so the API server's name uniqueness guarantees that
// an address is held at most once in the cluster. Writers set the label
// LabelPool to spec.pool. spec.node is a selectable field: each node agent
// watches the claims of its node with the field selector spec.node=<node>.
// Spindle extension.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path=spideripclaims,scope=Cluster,shortName={sic},singular=spideripclaim
// +kubebuilder:selectablefield:JSONPath=`.spec.node`
// +kubebuilder:printcolumn:name="ADDRESS",type=string,JSONPath=`.spec.address`,description="the claimed address"
// +kubebuilder:printcolumn:name="POOL",type=string,JSONPath=`.spec.pool`,description="pool of the address"
// +kubebuilder:printcolumn:name="NAMESPACE",type=string,JSONPath=`.spec.podNamespace`,description="namespace of the pod"
// +kubebuilder:printcolumn:name="POD",type=string,JSONPath=`.spec.podName`,description="pod holding the address"
// +kubebuilder:printcolumn:name="INTERFACE",type=string,JSONPath=`.spec.interface`,description="pod interface"
// +kubebuilder:printcolumn:name="NODE",type=string,JSONPath=`.spec.node`,description="node of the pod"
// +kubebuilder:printcolumn:name="OWNER-KIND",type=string,JSONPath=`.spec.ownerKind`,priority=1,description="kind of the pod's controller; a StatefulSet holds its replicas' addresses while they are scaled away"
// +kubebuilder:printcolumn:name="OWNER",type=string,JSONPath=`.spec.ownerName`,priority=1,description="the pod's controller"
// +kubebuilder:printcolumn:name="MAC",type=string,JSONPath=`.spec.mac`,priority=1,description="MAC address the pod asked for"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderIPClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IPClaimSpec `json:"spec,omitempty"`
}

// SpiderIPClaimList is a list of SpiderIPClaim.
//
// +kubebuilder:object:root=true
type SpiderIPClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderIPClaim `json:"items"`
}

func init() {
	register(&SpiderIPClaim{}, &SpiderIPClaimList{})
}
