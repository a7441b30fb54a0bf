package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservedIPSpec is the desired state of a SpiderReservedIP.
type ReservedIPSpec struct {
	// ipVersion is the IP family of ips, 4 or 6.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// ips lists addresses and ranges (10.6.0.5, 10.6.0.10-10.6.0.20) that no
	// pool hands out.
	// +optional
	IPs []string `json:"ips,omitempty"`
}

// SpiderReservedIP keeps addresses out of every pool.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spiderreservedips,scope=Cluster,shortName={sr},singular=spiderreservedip
// +kubebuilder:printcolumn:name="VERSION",type=integer,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderReservedIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ReservedIPSpec `json:"spec,omitempty"`
}

// SpiderReservedIPList is a list of SpiderReservedIP.
//
// +kubebuilder:object:root=true
type SpiderReservedIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderReservedIP `json:"items"`
}

func init() {
	register(&SpiderReservedIP{}, &SpiderReservedIPList{})
}
