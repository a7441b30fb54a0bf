// Package store writes Spindle's allocation records to the API server: one
// SpiderIPClaim per allocated address (named after the address, so the API
// server's name uniqueness rules out duplicates) and one SpiderEndpoint per
// pod, derived from the pod's claims.
//
// Every write is a single request without read-modify-write loops: Create for
// a claim, Delete with a UID precondition for a release, Update guarded by the
// resourceVersion for a re-bind.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Index names registered on the claim informer by IndexClaims.
const (
	IndexClaimByPod   = "spec.podKey" // "<namespace>/<name>"
	IndexClaimByNode  = "spec.node"
	IndexClaimByPool  = "spec.pool"
	IndexClaimByOwner = "spec.ownerKey" // OwnerKey of the pod's controller
)

// FieldClaimNode is the selectable field of a claim's node (spec.node): a
// node agent watches the claims of its node with it.
const FieldClaimNode = "spec.node"

// OwnerKey is the IndexClaimByOwner value of a pod controller:
// "<namespace>/<kind>/<name>". A StatefulSet finds its replicas' claims
// with it, and a virtual machine's next launcher pod its predecessor's.
func OwnerKey(namespace, kind, name string) string { return namespace + "/" + kind + "/" + name }

// ClaimOwnerKey returns the owner key of a claim ("" when its pod had no
// controller).
func ClaimOwnerKey(c *v2beta1.SpiderIPClaim) string {
	if c.Spec.OwnerKind == "" || c.Spec.OwnerName == "" {
		return ""
	}
	return OwnerKey(c.Spec.PodNamespace, c.Spec.OwnerKind, c.Spec.OwnerName)
}

// PodKey is the index value of a pod: "<namespace>/<name>".
func PodKey(namespace, name string) string { return namespace + "/" + name }

// ClaimPodKey returns the pod key of a claim ("" when it has no pod).
func ClaimPodKey(c *v2beta1.SpiderIPClaim) string {
	if c.Spec.PodName == "" {
		return ""
	}
	return PodKey(c.Spec.PodNamespace, c.Spec.PodName)
}

// Indexer is the subset of a controller-runtime cache used to register indexes.
type Indexer interface {
	IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error
}

// claimIndexes are the fields IndexClaims knows, and how each is extracted.
var claimIndexes = map[string]func(*v2beta1.SpiderIPClaim) string{
	IndexClaimByPod:   ClaimPodKey,
	IndexClaimByNode:  func(c *v2beta1.SpiderIPClaim) string { return c.Spec.Node },
	IndexClaimByPool:  func(c *v2beta1.SpiderIPClaim) string { return c.Spec.Pool },
	IndexClaimByOwner: ClaimOwnerKey,
}

// indexed remembers which claim indexes each informer cache already has, so
// that every reader registers the indexes it reads without tripping over
// another reader that registered them first.
var indexed = struct {
	sync.Mutex
	fields map[Indexer]map[string]bool
}{fields: map[Indexer]map[string]bool{}}

// IndexClaims registers claim indexes on idx: the given fields (IndexClaimBy*),
// or all of them when none is given. A field idx already has is skipped, so
// each reconciler registers exactly the indexes it reads.
func IndexClaims(ctx context.Context, idx Indexer, fields ...string) error {
	if len(fields) == 0 {
		fields = []string{IndexClaimByPod, IndexClaimByNode, IndexClaimByPool, IndexClaimByOwner}
	}
	indexed.Lock()
	defer indexed.Unlock()
	have := indexed.fields[idx]
	if have == nil {
		have = map[string]bool{}
		indexed.fields[idx] = have
	}
	for _, field := range fields {
		f, ok := claimIndexes[field]
		if !ok {
			return fmt.Errorf("unknown claim index %q", field)
		}
		if have[field] {
			continue
		}
		err := idx.IndexField(ctx, &v2beta1.SpiderIPClaim{}, field, func(o client.Object) []string {
			c, ok := o.(*v2beta1.SpiderIPClaim)
			if !ok {
				return nil
			}
			if v := f(c); v != "" {
				return []string{v}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("failed to index claims by %q: %w", field, err)
		}
		have[field] = true
	}
	return nil
}

// Store performs the writes. W must not be a cached client's reader path:
// every call goes to the API server. With R, an informer cache with the claim
// indexes (IndexClaims), Store is the allocation engine's ClaimStore on the
// API server.
type Store struct {
	W client.Client
	R client.Reader
}

var _ allocator.ClaimStore = (*Store)(nil)

// Release implements allocator.ClaimStore with DeleteExact.
func (s *Store) Release(ctx context.Context, c *v2beta1.SpiderIPClaim) error {
	res, err := DeleteExact(ctx, s.W, c)
	switch {
	case err != nil:
		return fmt.Errorf("failed to delete SpiderIPClaim %q: %w", c.Name, err)
	case res == Changed:
		return allocator.ErrChanged
	}
	return nil
}

// ByPod implements allocator.ClaimStore from R.
func (s *Store) ByPod(ctx context.Context, namespace, name string) ([]*v2beta1.SpiderIPClaim, error) {
	return s.list(ctx, IndexClaimByPod, PodKey(namespace, name))
}

// ByOwner implements allocator.ClaimStore from R.
func (s *Store) ByOwner(ctx context.Context, namespace, kind, name string) ([]*v2beta1.SpiderIPClaim, error) {
	return s.list(ctx, IndexClaimByOwner, OwnerKey(namespace, kind, name))
}

// ByPool implements allocator.ClaimStore from R.
func (s *Store) ByPool(ctx context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error) {
	return s.list(ctx, IndexClaimByPool, pool)
}

func (s *Store) list(ctx context.Context, index, value string) ([]*v2beta1.SpiderIPClaim, error) {
	if s.R == nil {
		return nil, fmt.Errorf("failed to list SpiderIPClaims by %s: the store has no indexed reader", index)
	}
	list := &v2beta1.SpiderIPClaimList{}
	if err := s.R.List(ctx, list, client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(index, value)}); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPClaims with %s=%q: %w", index, value, err)
	}
	out := make([]*v2beta1.SpiderIPClaim, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// ByMAC lists, from the API server (not a cache), the claims that record
// the MAC address mac.
func (s *Store) ByMAC(ctx context.Context, mac string) ([]*v2beta1.SpiderIPClaim, error) {
	list := &v2beta1.SpiderIPClaimList{}
	if err := s.W.List(ctx, list, client.MatchingLabels{v2beta1.LabelMAC: v2beta1.MACLabelValue(mac)}); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPClaims with MAC %s: %w", mac, err)
	}
	out := make([]*v2beta1.SpiderIPClaim, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Create creates the claim. taken is true (and err nil) when the address is
// already claimed by someone else (AlreadyExists).
func (s *Store) Create(ctx context.Context, c *v2beta1.SpiderIPClaim) (taken bool, err error) {
	err = s.W.Create(ctx, c)
	if apierrors.IsAlreadyExists(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to create SpiderIPClaim %q: %w", c.Name, err)
	}
	return false, nil
}

// DeleteOutcome is what DeleteExact did.
type DeleteOutcome int

const (
	// Deleted: this call deleted the object.
	Deleted DeleteOutcome = iota
	// AlreadyGone: the object did not exist any more.
	AlreadyGone
	// Changed: the object was replaced (another UID) or updated since it was
	// read; nothing was deleted and the caller decides again on fresh data.
	Changed
)

// DeleteExact deletes obj only if it is still the object that was read: the
// same UID at the same resourceVersion. This is the one way Spindle deletes
// claims and SpiderEndpoints, so that a release decided on an old view never
// frees an address that was claimed or re-bound in the meantime.
func DeleteExact(ctx context.Context, w client.Writer, obj client.Object) (DeleteOutcome, error) {
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	var pre client.Preconditions
	if uid != "" {
		pre.UID = &uid
	}
	if rv != "" {
		pre.ResourceVersion = &rv
	}
	err := w.Delete(ctx, obj, pre)
	switch {
	case err == nil:
		return Deleted, nil
	case apierrors.IsNotFound(err):
		return AlreadyGone, nil
	case apierrors.IsConflict(err):
		// A delete with preconditions answers 409 only when one failed.
		return Changed, nil
	}
	return AlreadyGone, err
}

// Rebind updates a claim to a new holder (StatefulSet pod re-created or
// sandbox re-created). The update is guarded by the claim's resourceVersion;
// a conflict is returned as is so the caller retries with fresh data.
func (s *Store) Rebind(ctx context.Context, c *v2beta1.SpiderIPClaim) error {
	if err := s.W.Update(ctx, c); err != nil {
		return fmt.Errorf("failed to update SpiderIPClaim %q: %w", c.Name, err)
	}
	return nil
}

// ErrEndpointMoved is PutEndpoint's answer when the SpiderEndpoint is
// labelled for another node and the caller's stillHere check says the pod's
// claims left the caller's node: the other node's agent owns it now.
var ErrEndpointMoved = errors.New("the SpiderEndpoint belongs to another node's pod")

// PutEndpoint makes the SpiderEndpoint of a pod match want.Status: it creates
// the object with its status, or updates it, in one request. cur is the
// existing object (nil when absent). Before taking over an object labelled
// for another node it asks stillHere, when given, whether the claims want
// was built from are still the caller's (a cache can lag behind a pod that
// moved on). It returns the written object.
//
// A SpiderEndpoint CRD older than this version has a status subresource,
// and the API server drops the status of a create or an update: then the
// status is written through the subresource as well.
func (s *Store) PutEndpoint(ctx context.Context, cur, want *v2beta1.SpiderEndpoint, stillHere func(context.Context) (bool, error)) (*v2beta1.SpiderEndpoint, error) {
	key := want.Namespace + "/" + want.Name
	if cur == nil {
		obj := want.DeepCopy()
		err := s.W.Create(ctx, obj)
		if err == nil {
			return s.endpointStatus(ctx, obj, want)
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("failed to create SpiderEndpoint %q: %w", key, err)
		}
		if err := s.W.Get(ctx, client.ObjectKeyFromObject(want), obj); err != nil {
			return nil, fmt.Errorf("failed to get SpiderEndpoint %q: %w", key, err)
		}
		cur = obj
	}
	upd := cur.DeepCopy()
	if node := want.Labels[LabelEndpointNode]; cur.Labels[LabelEndpointNode] != node {
		// The pod moved (StatefulSet replica on another node): relabel so
		// the new node's agent sees the object.
		if stillHere != nil {
			here, err := stillHere(ctx)
			if err != nil {
				return nil, err
			}
			if !here {
				return nil, ErrEndpointMoved
			}
		}
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[LabelEndpointNode] = node
	}
	upd.Status = want.Status
	if err := s.W.Update(ctx, upd); err != nil {
		return nil, fmt.Errorf("failed to update SpiderEndpoint %q: %w", key, err)
	}
	return s.endpointStatus(ctx, upd, want)
}

// endpointStatus checks that written, as the API server returned it, has
// want's status, and writes it through the status subresource when the
// server dropped it (an older CRD).
func (s *Store) endpointStatus(ctx context.Context, written, want *v2beta1.SpiderEndpoint) (*v2beta1.SpiderEndpoint, error) {
	if equality.Semantic.DeepEqual(written.Status, want.Status) {
		return written, nil
	}
	written.Status = want.Status
	if err := s.W.Status().Update(ctx, written); err != nil {
		return nil, fmt.Errorf("failed to update SpiderEndpoint status %q: %w", want.Namespace+"/"+want.Name, err)
	}
	return written, nil
}
