package v2beta1

// Route is a static route handed to the pod.
type Route struct {
	// dst is the destination CIDR of the route, e.g. 10.0.0.0/16.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	Dst string `json:"dst"`

	// gw is the next-hop IP address of the route.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	Gw string `json:"gw"`
}

// IP versions as used by spec.ipVersion.
const (
	IPv4 int64 = 4
	IPv6 int64 = 6
)

// LabelPool is set by the writer of every SpiderIPClaim to the name of the
// SpiderIPPool the address belongs to, so the claims of one pool can be listed
// with a label selector.
const LabelPool = "ipam.spidernet.io/pool"

// LabelMAC is set on the SpiderIPClaims of an interface that asked for a
// fixed MAC address, to the MAC (MACLabelValue), so every holder of a MAC can
// be listed from the API server.
const LabelMAC = "spindle.spidernet.io/mac"

// LabelAppNamespace is the podAffinity matchLabels key Spiderpool puts on the
// pools it creates automatically for an application; the APP-NAMESPACE printer
// column of SpiderIPPool reads it.
const LabelAppNamespace = "ipam.spidernet.io/app-namespace"

// LabelInline is set to "true" on the pools spindle-controller creates for a
// NetworkAttachmentDefinition whose spiderpool ipam object carries its own
// ranges (inline ranges); AnnoInlineNetwork names that network.
const LabelInline = "spindle.spidernet.io/inline"

// AnnoInlineNetwork is the "namespace/name" of the NetworkAttachmentDefinition
// an inline pool belongs to.
const AnnoInlineNetwork = "spindle.spidernet.io/inline-network"

// LabelSharedNetwork is the inline configuration's sharedNetwork on the
// pools of a network: pools with the same value may share addresses.
const LabelSharedNetwork = "spindle.spidernet.io/shared-network"
