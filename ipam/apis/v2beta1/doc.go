// Package v2beta1 holds the API types of the spiderpool.spidernet.io/v2beta1
// group: the Spiderpool-compatible kinds (SpiderIPPool, SpiderEndpoint,
// SpiderReservedIP, SpiderSubnet, SpiderMultusConfig, SpiderCoordinator) and
// Spindle's own per-address allocation record, SpiderIPClaim.
//
// Field names and JSON tags follow Spiderpool's published v2beta1 reference so
// existing manifests apply unchanged. Fields that Spindle adds are marked as
// Spindle extensions in their comments; fields kept only for compatibility are
// documented as unused.
//
// +kubebuilder:object:generate=true
// +groupName=spiderpool.spidernet.io
package v2beta1
