// Package manifests embeds the Kubernetes objects the lab installs itself:
// the NetworkAttachmentDefinition CRD, Multus's RBAC and KubeVirt's
// VirtualMachine and VirtualMachineInstance CRDs.
package manifests

import _ "embed"

// NADCRD is the NetworkAttachmentDefinition CustomResourceDefinition.
//
//go:embed nad-crd.yaml
var NADCRD []byte

// MultusRBAC grants the Multus identity what its thin plugin needs.
//
//go:embed multus-rbac.yaml
var MultusRBAC []byte

// KubeVirtCRDs are KubeVirt's VirtualMachine and VirtualMachineInstance
// CRDs, so that the lab can run pods shaped like virt-launcher pods.
//
//go:embed kubevirt-crds.yaml
var KubeVirtCRDs []byte
