package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

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
		if cur == nil || cur.Status.Current.Node != a.cfg.NodeName {
			return nil
		}
		res, err := store.DeleteExact(ctx, a.store.W, cur)
		if err != nil {
			return fmt.Errorf("failed to delete SpiderEndpoint %q: %w", key, err)
		}
		if res == store.Changed {
			return fmt.Errorf("SpiderEndpoint %q changed while being deleted; syncing again", key)
		}
		a.seMemo.put(key, nil)
		return nil
	}
	want := store.EndpointFromClaims(ns, name, mine, func(pool string) (store.PoolFacts, bool) {
		f := a.poolFacts(ctx, pool)
		return f, f.PrefixLen >= 0
	})
	if cur != nil && equality.Semantic.DeepEqual(cur.Status, want.Status) {
		return nil
	}
	written, err := a.store.PutEndpoint(ctx, cur, want)
	if apierrors.IsConflict(err) {
		// Stale copy (the cache lags): once more from a fresh read.
		fresh := &v2beta1.SpiderEndpoint{}
		if gerr := a.live.Get(ctx, keyOf(ns, name), fresh); gerr == nil {
			written, err = a.store.PutEndpoint(ctx, fresh, want)
		}
	}
	if err != nil {
		a.seMemo.put(key, nil)
		return err
	}
	a.seMemo.put(key, written)
	return nil
}
