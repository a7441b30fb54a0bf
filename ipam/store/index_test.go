package store

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// recordingIndexer fails like an informer cache does when a field is
// registered twice.
type recordingIndexer struct{ fields map[string]int }

func (r *recordingIndexer) IndexField(_ context.Context, _ client.Object, field string, _ client.IndexerFunc) error {
	r.fields[field]++
	if r.fields[field] > 1 {
		return fmt.Errorf("indexer conflict: field %q already registered", field)
	}
	return nil
}

// Every reconciler registers the claim indexes it reads; two readers of the
// same index on one cache must not collide.
func TestIndexClaimsRegistersEachFieldOncePerCache(t *testing.T) {
	ctx := context.Background()
	a, b := &recordingIndexer{fields: map[string]int{}}, &recordingIndexer{fields: map[string]int{}}
	if err := IndexClaims(ctx, a, IndexClaimByPool); err != nil {
		t.Fatal(err)
	}
	if err := IndexClaims(ctx, a, IndexClaimByPod, IndexClaimByPool); err != nil {
		t.Fatalf("second reader of the pool index: %v", err)
	}
	if err := IndexClaims(ctx, a); err != nil {
		t.Fatalf("all indexes after some: %v", err)
	}
	for _, f := range []string{IndexClaimByPod, IndexClaimByNode, IndexClaimByPool} {
		if a.fields[f] != 1 {
			t.Errorf("cache a: field %q registered %d times, want 1", f, a.fields[f])
		}
	}
	if err := IndexClaims(ctx, b, IndexClaimByPod); err != nil || b.fields[IndexClaimByPod] != 1 || len(b.fields) != 1 {
		t.Errorf("another cache gets its own registration: %v %v", b.fields, err)
	}
	if err := IndexClaims(ctx, b, "spec.color"); err == nil {
		t.Error("an unknown index must be refused")
	}
}
