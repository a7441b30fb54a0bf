package agent

import (
	"context"
	"fmt"

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

func (s engineClaims) ByPod(_ context.Context, namespace, name string) ([]*v2beta1.SpiderIPClaim, error) {
	return s.a.podClaims(store.PodKey(namespace, name))
}
