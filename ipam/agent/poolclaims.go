package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/selection"
	"github.com/spindle-net/spindle/ipam/store"
)

// poolClaims watches the claims of the pools this node may allocate from,
// one watch per pool (label ipam.spidernet.io/pool), and keeps of each claim
// only what the allocation engine needs: its name (the address) and, for the
// claims of StatefulSet replicas and virtual machines (whose next incarnation
// may run on this node and inherit them), the holder's pod and owner keys.
// Claims of pools this node cannot use are neither sent to this agent nor
// kept by it; the claims of this node's own pods come from the node-scoped
// claim informer (field selector spec.node) with their full spec.
type poolClaims struct {
	w       client.WithWatch
	metrics *Metrics
	observe func(old, cur *v2beta1.SpiderIPClaim) // told of every change
	dropped func(pool string)                     // a pool's watch stopped

	mu      sync.Mutex
	ctx     context.Context // the agent's lifetime; nil until start
	watches map[string]*poolWatch
}

// poolWatch is the watch of one pool's claims and what it keeps of them.
type poolWatch struct {
	pool   string
	count  prometheus.Gauge // claims known in all watches
	cancel context.CancelFunc
	synced chan struct{} // closed after the first complete list

	mu      sync.RWMutex
	stopped bool                 // the watch ended: changes are ignored
	claims  map[string]*claimRef // by claim name; nil for most claims
	// heldBy indexes the claims with a claimRef by "pod:"+pod key and
	// "owner:"+owner key.
	heldBy map[string]map[string]struct{}
}

// claimRef is what is kept of a claim another incarnation of its pod may
// inherit (a StatefulSet replica's, a virtual machine's): the holder's keys.
type claimRef struct {
	podKey, ownerKey string
}

func (r *claimRef) keys() []string {
	if r == nil {
		return nil
	}
	var out []string
	if r.podKey != "" {
		out = append(out, "pod:"+r.podKey)
	}
	if r.ownerKey != "" {
		out = append(out, "owner:"+r.ownerKey)
	}
	return out
}

// set records (ref non-nil or not) or forgets (gone) the claim name and
// reports whether it was known before. Call with w.mu held.
func (w *poolWatch) set(name string, ref *claimRef, gone bool) (had bool) {
	prev, had := w.claims[name]
	for _, k := range prev.keys() {
		delete(w.heldBy[k], name)
		if len(w.heldBy[k]) == 0 {
			delete(w.heldBy, k)
		}
	}
	if gone {
		if had {
			delete(w.claims, name)
			w.count.Dec()
		}
		return had
	}
	if !had {
		w.count.Inc()
	}
	w.claims[name] = ref
	for _, k := range ref.keys() {
		if w.heldBy[k] == nil {
			w.heldBy[k] = map[string]struct{}{}
		}
		w.heldBy[k][name] = struct{}{}
	}
	return had
}

func newPoolClaims(w client.WithWatch, m *Metrics, observe func(old, cur *v2beta1.SpiderIPClaim), dropped func(string)) *poolClaims {
	return &poolClaims{w: w, metrics: m, observe: observe, dropped: dropped, watches: map[string]*poolWatch{}}
}

// start sets the lifetime of the watches (the agent's).
func (p *poolClaims) start(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
}

// watch returns the watch of pool, starting it when needed.
func (p *poolClaims) watch(pool string) (*poolWatch, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w := p.watches[pool]; w != nil {
		return w, nil
	}
	if p.ctx == nil {
		return nil, fmt.Errorf("failed to watch the SpiderIPClaims of pool %q: the agent is not started", pool)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	w := &poolWatch{pool: pool, count: p.metrics.WatchedClaims, cancel: cancel, synced: make(chan struct{}), claims: map[string]*claimRef{}, heldBy: map[string]map[string]struct{}{}}
	p.watches[pool] = w
	p.metrics.WatchedPools.Set(float64(len(p.watches)))
	sel := client.MatchingLabels{v2beta1.LabelPool: pool}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := &v2beta1.SpiderIPClaimList{}
			opts := &client.ListOptions{Raw: &o, Limit: o.Limit, Continue: o.Continue}
			sel.ApplyToList(opts)
			return list, p.w.List(ctx, list, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts := &client.ListOptions{Raw: &o}
			sel.ApplyToList(opts)
			return p.w.Watch(ctx, &v2beta1.SpiderIPClaimList{}, opts)
		},
	}
	r := toolscache.NewReflectorWithOptions(lw, &v2beta1.SpiderIPClaim{}, &poolStore{w: w, observe: p.observe},
		toolscache.ReflectorOptions{Name: "SpiderIPClaims of pool " + pool})
	go r.RunWithContext(ctx)
	return w, nil
}

// wait returns the synced watch of pool (started when needed).
func (p *poolClaims) wait(ctx context.Context, pool string) (*poolWatch, error) {
	w, err := p.watch(pool)
	if err != nil {
		return nil, err
	}
	select {
	case <-w.synced:
		return w, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to list the SpiderIPClaims of pool %q: %w", pool, ctx.Err())
	}
}

// retain keeps the watches of the pools in want (starting those missing)
// and stops the others.
func (p *poolClaims) retain(want map[string]bool) {
	var stopped []string
	p.mu.Lock()
	for name, w := range p.watches {
		if !want[name] {
			w.cancel()
			w.mu.Lock()
			w.stopped = true
			w.count.Sub(float64(len(w.claims)))
			w.claims, w.heldBy = map[string]*claimRef{}, map[string]map[string]struct{}{}
			w.mu.Unlock()
			delete(p.watches, name)
			stopped = append(stopped, name)
		}
	}
	p.mu.Unlock()
	// The engine's state of a pool no longer watched would go stale:
	// drop it, so a later request (which restarts the watch) rebuilds it.
	for _, name := range stopped {
		p.dropped(name)
	}
	p.mu.Lock()
	p.metrics.WatchedPools.Set(float64(len(p.watches)))
	p.mu.Unlock()
	for name := range want {
		_, _ = p.watch(name)
	}
}

// waitAll waits until every started watch has listed its pool once.
func (p *poolClaims) waitAll(ctx context.Context) error {
	p.mu.Lock()
	ws := make([]*poolWatch, 0, len(p.watches))
	for _, w := range p.watches {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		select {
		case <-w.synced:
		case <-ctx.Done():
			return fmt.Errorf("failed to list the SpiderIPClaims of pool %q: %w", w.pool, ctx.Err())
		}
	}
	return nil
}

// pools returns the names of the watched pools, sorted.
func (p *poolClaims) pools() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.watches))
	for name := range p.watches {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// byPool returns the claims of pool as the engine needs them to know which
// addresses are taken: name, pool and address. It waits for the pool's
// watch to have listed the pool (starting it when needed).
func (p *poolClaims) byPool(ctx context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	w, err := p.wait(ctx, pool)
	if err != nil {
		return nil, err
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]*v2beta1.SpiderIPClaim, 0, len(w.claims))
	for name := range w.claims {
		if c := stub(name, pool); c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// heldBy returns the names of the watched claims whose pod key (byOwner
// false) or owner key (byOwner true) is key: the claims of StatefulSet
// replicas and virtual machines.
func (p *poolClaims) heldBy(key string, byOwner bool) []string {
	p.mu.Lock()
	ws := make([]*poolWatch, 0, len(p.watches))
	for _, w := range p.watches {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	k := "pod:" + key
	if byOwner {
		k = "owner:" + key
	}
	var names []string
	for _, w := range ws {
		w.mu.RLock()
		for name := range w.heldBy[k] {
			names = append(names, name)
		}
		w.mu.RUnlock()
	}
	slices.Sort(names)
	return names
}

// stub is the engine's view of a claim known by name only.
func stub(name, pool string) *v2beta1.SpiderIPClaim {
	addr, err := v2beta1.ParseClaimName(name)
	if err != nil {
		return nil
	}
	return &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPClaimSpec{Pool: pool, Address: addr.String()}}
}

// refOf is what is kept of c beyond its name.
func refOf(c *v2beta1.SpiderIPClaim) *claimRef {
	switch c.Spec.OwnerKind {
	case lifecycle.KindStatefulSet, lifecycle.KindVirtualMachineInstance:
		return &claimRef{podKey: store.ClaimPodKey(c), ownerKey: store.ClaimOwnerKey(c)}
	}
	return nil
}

// poolStore is the reflector's store of one pool watch: it keeps claimRefs
// and tells the engine of every change.
type poolStore struct {
	w       *poolWatch
	observe func(old, cur *v2beta1.SpiderIPClaim)
}

var _ toolscache.TransformingStore = (*poolStore)(nil)

// Transformer shrinks each claim of the initial stream to a key string (see
// compact) before the reflector gathers them: the pool's claims are never
// all held as objects at once.
func (s *poolStore) Transformer() toolscache.TransformFunc {
	return func(obj any) (any, error) {
		if c, ok := obj.(*v2beta1.SpiderIPClaim); ok {
			return compact(c), nil
		}
		return obj, nil
	}
}

// compact is a claim as a store key: its name, and for a claim with a
// claimRef the pod and owner keys after it, separated by newlines (which
// no name or key holds).
func compact(c *v2beta1.SpiderIPClaim) toolscache.ExplicitKey {
	ref := refOf(c)
	if ref == nil {
		return toolscache.ExplicitKey(c.Name)
	}
	return toolscache.ExplicitKey(c.Name + "\n" + ref.podKey + "\n" + ref.ownerKey)
}

// expand reads a claim, whole or compact, as its name and claimRef.
func expand(obj any) (string, *claimRef, bool) {
	switch v := obj.(type) {
	case *v2beta1.SpiderIPClaim:
		return v.Name, refOf(v), true
	case toolscache.ExplicitKey:
		name, keys, found := strings.Cut(string(v), "\n")
		if !found {
			return name, nil, true
		}
		pod, owner, _ := strings.Cut(keys, "\n")
		return name, &claimRef{podKey: pod, ownerKey: owner}, true
	}
	return "", nil, false
}

func (s *poolStore) put(obj any) error {
	name, ref, ok := expand(obj)
	if !ok {
		return fmt.Errorf("unexpected object %T in the SpiderIPClaim watch of pool %q", obj, s.w.pool)
	}
	s.w.mu.Lock()
	had := s.w.stopped || s.w.set(name, ref, false)
	s.w.mu.Unlock()
	if !had {
		s.observe(nil, stub(name, s.w.pool))
	}
	return nil
}

func (s *poolStore) Add(obj any) error    { return s.put(obj) }
func (s *poolStore) Update(obj any) error { return s.put(obj) }

func (s *poolStore) Delete(obj any) error {
	name, _, ok := expand(obj)
	if t, tomb := obj.(toolscache.DeletedFinalStateUnknown); tomb {
		name, ok = t.Key, true
	}
	if !ok {
		return fmt.Errorf("unexpected object %T in the SpiderIPClaim watch of pool %q", obj, s.w.pool)
	}
	s.w.mu.Lock()
	had := !s.w.stopped && s.w.set(name, nil, true)
	s.w.mu.Unlock()
	if had {
		s.observe(stub(name, s.w.pool), nil)
	}
	return nil
}

// Replace takes a complete list (the first one, or after the watch was
// lost): the claims missing from it are gone.
func (s *poolStore) Replace(list []any, _ string) error {
	s.w.mu.Lock()
	if s.w.stopped {
		s.w.mu.Unlock()
		return nil
	}
	prev := s.w.claims
	s.w.count.Sub(float64(len(prev)))
	s.w.claims = make(map[string]*claimRef, len(list))
	s.w.heldBy = map[string]map[string]struct{}{}
	for _, obj := range list {
		if name, ref, ok := expand(obj); ok {
			s.w.set(name, ref, false)
		}
	}
	next := s.w.claims
	s.w.mu.Unlock()
	for name := range prev {
		if _, ok := next[name]; !ok {
			s.observe(stub(name, s.w.pool), nil)
		}
	}
	for name := range next {
		if _, ok := prev[name]; !ok {
			s.observe(nil, stub(name, s.w.pool))
		}
	}
	select {
	case <-s.w.synced:
	default:
		close(s.w.synced)
	}
	return nil
}

func (s *poolStore) Resync() error { return nil }

// watchPools watches the claims of the pools this node may use (their
// nodeName, else nodeAffinity, admits the node) and stops watching the
// others. It runs on every pool and node change.
func (a *Agent) watchPools(ctx context.Context) {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	var labels map[string]string
	node := &corev1.Node{}
	if err := a.cache.Get(ctx, keyOf("", a.cfg.NodeName), node); err == nil {
		labels = node.Labels
	}
	list := &v2beta1.SpiderIPPoolList{}
	if err := a.cache.List(ctx, list); err != nil {
		a.log.Error(err, "failed to list SpiderIPPools from cache; the watched pools are unchanged")
		return
	}
	want := map[string]bool{}
	for i := range list.Items {
		if selection.NodeRefusal(&list.Items[i].Spec, a.cfg.NodeName, labels) == "" {
			want[list.Items[i].Name] = true
		}
	}
	a.pools.retain(want)
}
