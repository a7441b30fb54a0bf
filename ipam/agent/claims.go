package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/store"
)

// engineSource is the allocation engine's view of the pools: the agent's
// informer cache.
type engineSource struct{ a *Agent }

func (s engineSource) Pool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	pool := &v2beta1.SpiderIPPool{}
	if err := s.a.cache.Get(ctx, keyOf("", name), pool); err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get SpiderIPPool %q from cache: %w", name, err)
	}
	return pool, nil
}

func (s engineSource) Reserved(ctx context.Context, fam ranges.Family) (ranges.Set, error) {
	list := &v2beta1.SpiderReservedIPList{}
	if err := s.a.cache.List(ctx, list); err != nil {
		return ranges.Set{}, fmt.Errorf("failed to list SpiderReservedIPs from cache: %w", err)
	}
	objs := make([]*v2beta1.SpiderReservedIP, len(list.Items))
	for i := range list.Items {
		objs[i] = &list.Items[i]
	}
	return ranges.ParseReserved(objs, fam)
}

// engineClaims is the allocation engine's claim store: store.Store on the
// API server and the informer cache, plus the overlay: writes go into it at
// once and reads by pod merge it in, so a request sees this agent's own
// writes before the informer does.
type engineClaims struct {
	*store.Store
	a *Agent
}

func (s engineClaims) Create(ctx context.Context, c *v2beta1.SpiderIPClaim) (bool, error) {
	taken, err := s.Store.Create(ctx, c)
	if err == nil && !taken {
		s.a.overlay.put(c)
	}
	return taken, err
}

func (s engineClaims) Release(ctx context.Context, c *v2beta1.SpiderIPClaim) error {
	if err := s.Store.Release(ctx, c); err != nil {
		return err
	}
	s.a.overlay.deleted(c)
	return nil
}

func (s engineClaims) Rebind(ctx context.Context, c *v2beta1.SpiderIPClaim) error {
	if err := s.Store.Rebind(ctx, c); err != nil {
		return err
	}
	s.a.overlay.put(c)
	return nil
}

// ByPool returns the claims of pool by name and address (poolClaims): what
// the engine needs to know which addresses are taken.
func (s engineClaims) ByPool(ctx context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error) {
	return s.a.pools.byPool(ctx, pool)
}

// ByPod returns the claims held under a pod's name: this node's (cache and
// own writes) and, read from the API server, the claims of a StatefulSet
// replica of that name held on another node in a pool this node may use.
func (s engineClaims) ByPod(ctx context.Context, namespace, name string) ([]*v2beta1.SpiderIPClaim, error) {
	key := store.PodKey(namespace, name)
	held, err := s.a.podClaims(key)
	if err != nil {
		return nil, err
	}
	return s.withElsewhere(ctx, held, s.a.pools.heldBy(key, false))
}

// ByOwner returns the claims made for the pods of a controller: this
// node's and, read from the API server, those held on other nodes in pools
// this node may use.
func (s engineClaims) ByOwner(ctx context.Context, namespace, kind, name string) ([]*v2beta1.SpiderIPClaim, error) {
	held, err := s.Store.ByOwner(ctx, namespace, kind, name)
	if err != nil {
		return nil, err
	}
	return s.withElsewhere(ctx, held, s.a.pools.heldBy(store.OwnerKey(namespace, kind, name), true))
}

// Get reads a claim from the API server; nil when it does not exist.
func (s engineClaims) Get(ctx context.Context, name string) (*v2beta1.SpiderIPClaim, error) {
	c := &v2beta1.SpiderIPClaim{}
	if err := s.a.live.Get(ctx, keyOf("", name), c); err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get SpiderIPClaim %q: %w", name, err)
	}
	return c, nil
}

// withElsewhere adds to held the claims named in names that it lacks, read
// from the API server (the pool watches keep no more than their names).
func (s engineClaims) withElsewhere(ctx context.Context, held []*v2beta1.SpiderIPClaim, names []string) ([]*v2beta1.SpiderIPClaim, error) {
	for _, name := range names {
		if slices.ContainsFunc(held, func(c *v2beta1.SpiderIPClaim) bool { return c.Name == name }) {
			continue
		}
		c, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if c != nil {
			held = append(held, c)
		}
	}
	return held, nil
}
