package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CNI types of spec.cniType.
const (
	CNITypeMacvlan = "macvlan"
	CNITypeIPvlan  = "ipvlan"
	CNITypeSriov   = "sriov"
	CNITypeOvs     = "ovs"
	CNITypeCustom  = "custom"
)

// Annotations of a SpiderMultusConfig that shape the generated
// NetworkAttachmentDefinition.
const (
	// AnnoMultusCRName overrides the name of the generated
	// NetworkAttachmentDefinition (default: the SpiderMultusConfig's name).
	AnnoMultusCRName = "multus.spidernet.io/cr-name"
	// AnnoMultusCNIVersion sets the cniVersion of the generated configuration.
	AnnoMultusCNIVersion = "multus.spidernet.io/cni-version"
)

// MultusCNIConfigSpec is the desired state of a SpiderMultusConfig.
type MultusCNIConfigSpec struct {
	// cniType is the main CNI plugin: macvlan, ipvlan, sriov, ovs or custom.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:Enum=macvlan;ipvlan;sriov;ovs;custom
	CniType string `json:"cniType"`

	// macvlan configures cniType macvlan.
	// +optional
	MacvlanConfig *SpiderMacvlanCniConfig `json:"macvlan,omitempty"`

	// ipvlan configures cniType ipvlan.
	// +optional
	IPVlanConfig *SpiderIPvlanCniConfig `json:"ipvlan,omitempty"`

	// sriov configures cniType sriov.
	// +optional
	SriovConfig *SpiderSRIOVCniConfig `json:"sriov,omitempty"`

	// ovs configures cniType ovs.
	// +optional
	OvsConfig *SpiderOvsCniConfig `json:"ovs,omitempty"`

	// enableCoordinator chains the coordinator plugin after the main plugin.
	// Default true.
	// +kubebuilder:default=true
	// +optional
	EnableCoordinator *bool `json:"enableCoordinator,omitempty"`

	// disableIPAM leaves the IPAM section out of the generated configuration.
	// Default false.
	// +kubebuilder:default=false
	// +optional
	DisableIPAM *bool `json:"disableIPAM,omitempty"`

	// coordinator overrides the cluster-wide SpiderCoordinator settings for
	// this network.
	// +optional
	CoordinatorConfig *CoordinatorSpec `json:"coordinator,omitempty"`

	// chainCNIJsonData lists extra plugin configurations (each a JSON object)
	// appended to the generated plugin chain.
	// +optional
	ChainCNIJsonData []string `json:"chainCNIJsonData,omitempty"`

	// customCNI is the complete CNI configuration (JSON) used when cniType is
	// custom.
	// +optional
	CustomCNIConfig *string `json:"customCNI,omitempty"`
}

// SpiderpoolPools names the default pools written into the generated IPAM
// configuration (default_ipv4_ippool / default_ipv6_ippool).
type SpiderpoolPools struct {
	// ipv4 lists the default IPv4 pools.
	// +optional
	IPv4IPPool []string `json:"ipv4,omitempty"`

	// ipv6 lists the default IPv6 pools.
	// +optional
	IPv6IPPool []string `json:"ipv6,omitempty"`
}

// BondConfig describes a bond built from several master interfaces.
type BondConfig struct {
	// name is the bond interface name.
	// +kubebuilder:validation:Required
	Name string `json:"name"`

	// mode is the bonding mode, 0 to 6.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=6
	Mode int32 `json:"mode"`

	// options are extra bonding options, e.g. "primary=ens5;miimon=100".
	// +optional
	Options *string `json:"options,omitempty"`
}

// SpiderMacvlanCniConfig configures the macvlan plugin.
type SpiderMacvlanCniConfig struct {
	// master lists the host interfaces; more than one needs bond.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinItems=1
	Master []string `json:"master"`

	// mtu sets the MTU of the pod interface; 0 keeps the kernel's choice.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// vlanID puts the interface on this VLAN of master; 0 means untagged.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// bond builds a bond from master.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// ippools are the default pools of this network.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderIPvlanCniConfig configures the ipvlan plugin.
type SpiderIPvlanCniConfig struct {
	// master lists the host interfaces; more than one needs bond.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinItems=1
	Master []string `json:"master"`

	// mtu sets the MTU of the pod interface; 0 keeps the kernel's choice.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// vlanID puts the interface on this VLAN of master; 0 means untagged.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// bond builds a bond from master.
	// +optional
	Bond *BondConfig `json:"bond,omitempty"`

	// ippools are the default pools of this network.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderSRIOVCniConfig configures the sriov plugin.
type SpiderSRIOVCniConfig struct {
	// resourceName is the device-plugin resource of the VFs; it becomes the
	// k8s.v1.cni.cncf.io/resourceName annotation of the generated object.
	// +kubebuilder:validation:Required
	ResourceName string `json:"resourceName"`

	// vlanID puts the VF on this VLAN; 0 means untagged.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VlanID *int32 `json:"vlanID,omitempty"`

	// minTxRateMbps is the VF's minimum transmit rate; 0 disables the limit.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinTxRateMbps *int `json:"minTxRateMbps,omitempty"`

	// maxTxRateMbps is the VF's maximum transmit rate; 0 disables the limit.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTxRateMbps *int `json:"maxTxRateMbps,omitempty"`

	// mtu sets the MTU of the VF; 0 keeps the current one.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MTU *int32 `json:"mtu,omitempty"`

	// enableRdma chains the rdma plugin to isolate the RDMA device.
	// +optional
	EnableRdma bool `json:"enableRdma,omitempty"`

	// ippools are the default pools of this network.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// Trunk is a VLAN ID or a range of VLAN IDs accepted on an OVS trunk port.
type Trunk struct {
	// minID is the first VLAN ID of a range.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MinID *uint `json:"minID,omitempty"`

	// maxID is the last VLAN ID of a range.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	MaxID *uint `json:"maxID,omitempty"`

	// id is a single VLAN ID.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	ID *uint `json:"id,omitempty"`
}

// SpiderOvsCniConfig configures the ovs plugin.
type SpiderOvsCniConfig struct {
	// bridge is the OVS bridge to attach to.
	// +kubebuilder:validation:Required
	BrName string `json:"bridge"`

	// vlan is the VLAN ID of the port; unset makes it a trunk port.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VLAN *int32 `json:"vlan,omitempty"`

	// trunk lists the VLANs accepted on a trunk port.
	// +optional
	Trunk []*Trunk `json:"trunk,omitempty"`

	// deviceID is the PCI address of a VF in sysfs format, for hardware
	// offload.
	// +optional
	DeviceID string `json:"deviceID,omitempty"`

	// ippools are the default pools of this network.
	// +optional
	SpiderpoolConfigPools *SpiderpoolPools `json:"ippools,omitempty"`
}

// SpiderMultusConfig generates a Multus NetworkAttachmentDefinition of the
// same namespace and name.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:categories={spiderpool},path=spidermultusconfigs,scope=Namespaced,shortName={smc},singular=spidermultusconfig
// +kubebuilder:printcolumn:name="CNITYPE",type=string,JSONPath=`.spec.cniType`,description="main CNI plugin"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderMultusConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec MultusCNIConfigSpec `json:"spec,omitempty"`
}

// SpiderMultusConfigList is a list of SpiderMultusConfig.
//
// +kubebuilder:object:root=true
type SpiderMultusConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderMultusConfig `json:"items"`
}

func init() {
	register(&SpiderMultusConfig{}, &SpiderMultusConfigList{})
}
