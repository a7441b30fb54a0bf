// Package manifests embeds the Kubernetes objects the lab installs itself:
// the NetworkAttachmentDefinition CRD and Multus's RBAC.
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
