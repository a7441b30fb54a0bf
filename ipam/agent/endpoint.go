package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/store"
)

// SpiderEndpoints are derived from claims: the claim event handler queues the
// pod, and a worker writes the SpiderEndpoint the claims describe (or deletes
// it when none are left). After a restart the informer's initial list queues
// every pod with claims on this node, so missed writes are repaired.

func (a *Agent) endpointWorker(ctx context.Context) {
	for {
		key, shutdown := a.seQueue.Get()
		if shutdown {
			return
		}
		unlock := a.podLocks.lock(key) // never interleave with ADD/DEL of the pod
		err := a.syncEndpoint(ctx, key)
		unlock()
		if err != nil {
			a.log.V(1).Info("SpiderEndpoint write failed; will retry", "pod", key, "error", err.Error())
			a.seQueue.AddRateLimited(key)
		} else {
			a.seQueue.Forget(key)
		}
		a.seQueue.Done(key)
	}
}

// seWritten remembers the last SpiderEndpoint this agent wrote per pod, so a
// lagging cache does not cause needless conflicts.
type seMemo struct {
	mu sync.Mutex
	m  map[string]*v2beta1.SpiderEndpoint
}

func (m *seMemo) get(key string, cached *v2beta1.SpiderEndpoint) *v2beta1.SpiderEndpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.m[key]
	if w == nil {
		return cached
	}
	if cached != nil && parseRV(cached.ResourceVersion) >= parseRV(w.ResourceVersion) {
		delete(m.m, key)
		return cached
	}
	return w
}

// forget drops the write remembered for key when the object went away at
// or after it (rv is the resourceVersion it was deleted at).
func (m *seMemo) forget(key, rv string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.m[key]; w != nil && parseRV(w.ResourceVersion) <= parseRV(rv) {
		delete(m.m, key)
	}
}

// onEndpointGone is the SpiderEndpoint informer's delete handler. The
// informer follows the objects labelled with this node, so "gone" is either
// deleted or relabelled for another node (a moved pod); the event carries
// the last state we saw in both cases. Either way our remembered write is
// stale, and the pod is synced again: a SpiderEndpoint deleted while its
// claims are still here is written again, whoever deleted it, while one
// that moved is left to its new node (PutEndpoint asks claimsStillHere
// before taking it back).
func (a *Agent) onEndpointGone(o any) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	se, ok := o.(*v2beta1.SpiderEndpoint)
	if !ok {
		return
	}
	key := store.PodKey(se.Namespace, se.Name)
	a.seMemo.forget(key, se.ResourceVersion)
	a.seQueue.Add(key)
}

func (m *seMemo) put(key string, se *v2beta1.SpiderEndpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]*v2beta1.SpiderEndpoint{}
	}
	if se == nil {
		delete(m.m, key)
		return
	}
	m.m[key] = se
}

// syncEndpoint makes the SpiderEndpoint of pod key match its claims.
func (a *Agent) syncEndpoint(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	claims, err := a.podClaims(key)
	if err != nil {
		return err
	}
	// The SpiderEndpoint describes the newest holder; write it only while
	// that holder is on this node (after a StatefulSet pod moves, the agent
	// of its new node owns it).
	var uid string
	for _, c := range claims {
		if c.Spec.Node == a.cfg.NodeName {
			uid = c.Spec.PodUID
		}
	}
	var mine []*v2beta1.SpiderIPClaim
	for _, c := range claims {
		if c.Spec.PodUID == uid && c.Spec.Node == a.cfg.NodeName {
			mine = append(mine, c)
		}
	}
	if len(claims) > 0 && len(mine) == 0 {
		return nil
	}
	var cached *v2beta1.SpiderEndpoint
	obj := &v2beta1.SpiderEndpoint{}
	if err := a.cache.Get(ctx, keyOf(ns, name), obj); err == nil {
		cached = obj
	} else if !isNotFound(err) {
		return err
	}
	cur := a.seMemo.get(key, cached)
	if len(mine) == 0 {
		return a.dropEndpoint(ctx, key, cur)
	}
	want := store.EndpointFromClaims(ns, name, mine, func(pool string) (store.PoolFacts, bool) {
		f := a.poolFacts(ctx, pool)
		return f, f.PrefixLen >= 0
	})
	if cur != nil && equality.Semantic.DeepEqual(cur.Status, want.Status) {
		return nil
	}
	stillHere := func(ctx context.Context) (bool, error) { return a.claimsStillHere(ctx, mine) }
	written, err := a.store.PutEndpoint(ctx, cur, want, stillHere)
	if apierrors.IsConflict(err) {
		// Stale copy (the cache lags): once more from a fresh read.
		fresh := &v2beta1.SpiderEndpoint{}
		if gerr := a.live.Get(ctx, keyOf(ns, name), fresh); gerr == nil {
			written, err = a.store.PutEndpoint(ctx, fresh, want, stillHere)
		}
	}
	if errors.Is(err, store.ErrEndpointMoved) {
		a.seMemo.put(key, nil)
		return nil
	}
	if err != nil {
		a.seMemo.put(key, nil)
		return err
	}
	a.seMemo.put(key, written)
	return nil
}

// dropEndpoint deletes the SpiderEndpoint cur of pod key once no claim of
// the pod is left on this node, unless it is no longer ours to delete: it
// names another node, or the pod's claims were re-bound to another node
// (a StatefulSet replica or VM that moved; that node's agent rewrites it).
// This node's claim informer cannot tell a claim re-bound elsewhere from a
// deleted one, so the pool watches' holder index and the API server decide.
func (a *Agent) dropEndpoint(ctx context.Context, key string, cur *v2beta1.SpiderEndpoint) error {
	if cur == nil || cur.Status.Current.Node != a.cfg.NodeName {
		a.seMemo.put(key, nil)
		return nil
	}
	elsewhere, err := a.heldElsewhere(ctx, key)
	if err != nil {
		return err
	}
	if elsewhere {
		a.seMemo.put(key, nil)
		return nil
	}
	res, err := store.DeleteExact(ctx, a.store.W, cur)
	if err != nil {
		return fmt.Errorf("failed to delete SpiderEndpoint %q: %w", key, err)
	}
	if res == store.Changed {
		// Our copy is stale: forget it and decide again from the
		// object as it is now.
		a.seMemo.put(key, nil)
		ns, name, _ := strings.Cut(key, "/")
		fresh := &v2beta1.SpiderEndpoint{}
		if err := a.live.Get(ctx, keyOf(ns, name), fresh); err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("failed to read SpiderEndpoint %q: %w", key, err)
		}
		if fresh.Status.Current.Node != a.cfg.NodeName {
			return nil
		}
		return fmt.Errorf("SpiderEndpoint %q changed while being deleted; syncing again", key)
	}
	a.seMemo.put(key, nil)
	return nil
}

// heldElsewhere reports whether a claim held under pod key's name is bound
// to another node. Only StatefulSet and VM claims move between nodes, and
// the pool watches index exactly those by holder; the claims themselves are
// read from the API server, since a watch may lag behind a release.
func (a *Agent) heldElsewhere(ctx context.Context, key string) (bool, error) {
	for _, name := range a.pools.heldBy(key, false) {
		c := &v2beta1.SpiderIPClaim{}
		if err := a.live.Get(ctx, keyOf("", name), c); err != nil {
			if isNotFound(err) {
				continue
			}
			return false, fmt.Errorf("failed to read SpiderIPClaim %q: %w", name, err)
		}
		if store.ClaimPodKey(c) == key && c.Spec.Node != a.cfg.NodeName {
			return true, nil
		}
	}
	return false, nil
}

// claimsStillHere reports whether every claim in mine is still bound, on the
// API server, to the same pod on this node.
func (a *Agent) claimsStillHere(ctx context.Context, mine []*v2beta1.SpiderIPClaim) (bool, error) {
	for _, c := range mine {
		now := &v2beta1.SpiderIPClaim{}
		if err := a.live.Get(ctx, keyOf("", c.Name), now); err != nil {
			if isNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("failed to read SpiderIPClaim %q: %w", c.Name, err)
		}
		if now.Spec.Node != a.cfg.NodeName || now.Spec.PodUID != c.Spec.PodUID {
			return false, nil
		}
	}
	return true, nil
}
