package gc

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// IndexClaimByOwner indexes claims by the controller of the pod they were
// made for: OwnerKey(namespace, kind, name). A StatefulSet event finds its
// replicas' claims with it instead of walking every claim.
const IndexClaimByOwner = "spec.ownerKey"

// OwnerKey is the IndexClaimByOwner value of a pod controller:
// "<namespace>/<kind>/<name>".
func OwnerKey(namespace, kind, name string) string { return namespace + "/" + kind + "/" + name }

// ClaimOwnerKey extracts the IndexClaimByOwner value of a claim (nil when
// the pod had no controller).
func ClaimOwnerKey(o client.Object) []string {
	c, ok := o.(*v2beta1.SpiderIPClaim)
	if !ok || c.Spec.OwnerKind == "" || c.Spec.OwnerName == "" {
		return nil
	}
	return []string{OwnerKey(c.Spec.PodNamespace, c.Spec.OwnerKind, c.Spec.OwnerName)}
}

// indexClaimsByOwner registers IndexClaimByOwner.
func indexClaimsByOwner(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &v2beta1.SpiderIPClaim{}, IndexClaimByOwner, ClaimOwnerKey); err != nil {
		return fmt.Errorf("failed to index claims by %q: %w", IndexClaimByOwner, err)
	}
	return nil
}
