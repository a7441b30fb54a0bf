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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kselection "k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/selection"
	"github.com/spindle-net/spindle/ipam/store"
)

// poolClaims knows the claims of the pools this node may use, and keeps of
// each only what the allocation engine needs: its name (the address) and,
// for the claims of StatefulSet replicas and virtual machines (whose next
// incarnation may run on this node and inherit them), the holder's pod and
// owner keys. The claims of this node's own pods come in full from the
// node-scoped claim informer (field selector spec.node).
//
// The claims arrive through two kinds of watches (label
// ipam.spidernet.io/pool):
//
//   - one per pool that restricts its nodes (nodeName or nodeAffinity) and
//     admits this node, for the pools restricted when the agent started:
//     claims of restricted pools the node cannot use are never sent to it;
//   - one for every other pool (selector: pool notin the pools restricted at
//     start). Pools open to every node, such as the pools carved from a
//     SpiderSubnet for each application, cost no watch of their own. Its
//     claims of a pool the node cannot use (restricted after the agent
//     started) are dropped on arrival.
//
// A pool whose claims were dropped and that the node may use again gets a
// watch of its own, which lists it once.
type poolClaims struct {
	w       client.WithWatch
	metrics *Metrics
	observe func(old, cur *v2beta1.SpiderIPClaim) // told of every change
	dropped func(pool string)                     // a pool's claims are no longer followed

	mu         sync.Mutex
	ctx        context.Context // the agent's lifetime; nil until begin
	restricted map[string]bool // excluded from the shared watch (fixed at begin)
	shared     *claimSource
	own        map[string]*claimSource
	tables     map[string]*poolTable
	ignored    map[string]bool // pools of the shared watch whose claims are dropped
}

// claimSource is one watch.
type claimSource struct {
	pool    string // "" for the shared watch
	cancel  context.CancelFunc
	synced  chan struct{} // closed after the first complete list
	stopped bool          // guarded by poolClaims.mu: what it still delivers is ignored
}

// poolTable is what is kept of one pool's claims, fed by one source.
type poolTable struct {
	src    *claimSource
	claims map[string]*claimRef // by claim name; nil for most claims
	// heldBy indexes the claims with a claimRef by "pod:"+pod key and
	// "owner:"+owner key.
	heldBy map[string]map[string]struct{}
}

func newPoolTable(src *claimSource) *poolTable {
	return &poolTable{src: src, claims: map[string]*claimRef{}, heldBy: map[string]map[string]struct{}{}}
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

// set records (gone false) or forgets (gone true) the claim name and
// reports whether it was known before.
func (t *poolTable) set(name string, ref *claimRef, gone bool) (had bool) {
	prev, had := t.claims[name]
	for _, k := range prev.keys() {
		delete(t.heldBy[k], name)
		if len(t.heldBy[k]) == 0 {
			delete(t.heldBy, k)
		}
	}
	if gone {
		delete(t.claims, name)
		return had
	}
	t.claims[name] = ref
	for _, k := range ref.keys() {
		if t.heldBy[k] == nil {
			t.heldBy[k] = map[string]struct{}{}
		}
		t.heldBy[k][name] = struct{}{}
	}
	return had
}

func newPoolClaims(w client.WithWatch, m *Metrics, observe func(old, cur *v2beta1.SpiderIPClaim), dropped func(string)) *poolClaims {
	return &poolClaims{w: w, metrics: m, observe: observe, dropped: dropped,
		own: map[string]*claimSource{}, tables: map[string]*poolTable{}, ignored: map[string]bool{}}
}

// restrictedPools are the pools that restrict their nodes, by name (those
// whose name can be a label value: no other pool can have claims).
func restrictedPools(pools []v2beta1.SpiderIPPool) map[string]bool {
	out := map[string]bool{}
	for i := range pools {
		p := &pools[i]
		if (len(p.Spec.NodeName) > 0 || p.Spec.NodeAffinity != nil) && len(validation.IsValidLabelValue(p.Name)) == 0 {
			out[p.Name] = true
		}
	}
	return out
}

// sharedSelector selects the claims of every pool but the restricted ones.
func sharedSelector(restricted map[string]bool) (labels.Selector, error) {
	op, values := kselection.Exists, []string(nil)
	if len(restricted) > 0 {
		op = kselection.NotIn
		for name := range restricted {
			values = append(values, name)
		}
		slices.Sort(values)
	}
	req, err := labels.NewRequirement(v2beta1.LabelPool, op, values)
	if err != nil {
		return nil, fmt.Errorf("failed to select the SpiderIPClaims of the pools open to every node: %w", err)
	}
	return labels.NewSelector().Add(*req), nil
}

// begin starts the shared watch; restricted are the pools it leaves to
// watches of their own. The watches end with ctx.
func (p *poolClaims) begin(ctx context.Context, restricted map[string]bool) error {
	sel, err := sharedSelector(restricted)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx, p.restricted = ctx, restricted
	p.shared = p.run(ctx, "", sel)
	return nil
}

// run starts a watch of the claims sel selects. Call with p.mu held.
func (p *poolClaims) run(ctx context.Context, pool string, sel labels.Selector) *claimSource {
	ctx, cancel := context.WithCancel(ctx)
	src := &claimSource{pool: pool, cancel: cancel, synced: make(chan struct{})}
	opt := client.MatchingLabelsSelector{Selector: sel}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			list := &v2beta1.SpiderIPClaimList{}
			opts := &client.ListOptions{Raw: &o, Limit: o.Limit, Continue: o.Continue}
			opt.ApplyToList(opts)
			return list, p.w.List(ctx, list, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			opts := &client.ListOptions{Raw: &o}
			opt.ApplyToList(opts)
			return p.w.Watch(ctx, &v2beta1.SpiderIPClaimList{}, opts)
		},
	}
	name := "SpiderIPClaims of the pools open to every node"
	if pool != "" {
		name = "SpiderIPClaims of pool " + pool
	}
	r := toolscache.NewReflectorWithOptions(lw, &v2beta1.SpiderIPClaim{}, &claimStore{p: p, src: src}, toolscache.ReflectorOptions{Name: name})
	go r.RunWithContext(ctx)
	return src
}

// follow makes sure the claims of pool are followed and returns the source
// that feeds them. Call with p.mu held, after begin.
func (p *poolClaims) follow(pool string) *claimSource {
	if t := p.tables[pool]; t != nil {
		return t.src
	}
	src := p.shared
	if p.restricted[pool] || p.ignored[pool] {
		// Left out of the shared watch, or its claims were dropped: a
		// watch of its own lists them.
		src = p.run(p.ctx, pool, labels.SelectorFromSet(labels.Set{v2beta1.LabelPool: pool}))
		p.own[pool] = src
	}
	delete(p.ignored, pool)
	p.tables[pool] = newPoolTable(src)
	return src
}

// unfollow drops what is kept of pool and stops its own watch. Call with
// p.mu held; returns the number of claims forgotten.
func (p *poolClaims) unfollow(pool string) int {
	if src := p.own[pool]; src != nil {
		src.cancel()
		src.stopped = true
		delete(p.own, pool)
	}
	n := 0
	if t := p.tables[pool]; t != nil {
		n = len(t.claims)
		delete(p.tables, pool)
	}
	if !p.restricted[pool] {
		p.ignored[pool] = true
	}
	return n
}

// retain follows the pools in want and stops following the known pools
// that are not in it.
func (p *poolClaims) retain(want, known map[string]bool) {
	var stopped []string
	p.mu.Lock()
	if p.shared == nil {
		p.mu.Unlock()
		return
	}
	for pool := range known {
		_, followed := p.tables[pool]
		if want[pool] || (!followed && (p.restricted[pool] || p.ignored[pool])) {
			continue
		}
		p.metrics.WatchedClaims.Sub(float64(p.unfollow(pool)))
		stopped = append(stopped, pool)
	}
	for pool := range want {
		p.follow(pool)
	}
	p.metrics.WatchedPools.Set(float64(len(p.tables)))
	p.mu.Unlock()
	// The engine's state of a pool no longer followed would go stale:
	// drop it, so a later request (which follows the pool again)
	// rebuilds it.
	for _, pool := range stopped {
		p.dropped(pool)
	}
}

// waitAll waits until every watch has listed its claims once.
func (p *poolClaims) waitAll(ctx context.Context) error {
	p.mu.Lock()
	srcs := []*claimSource{p.shared}
	for _, s := range p.own {
		srcs = append(srcs, s)
	}
	p.mu.Unlock()
	for _, s := range srcs {
		if s == nil {
			return fmt.Errorf("failed to list SpiderIPClaims: the agent is not started")
		}
		select {
		case <-s.synced:
		case <-ctx.Done():
			return fmt.Errorf("failed to list SpiderIPClaims: %w", ctx.Err())
		}
	}
	return nil
}

// byPool returns the claims of pool as the engine needs them to know which
// addresses are taken: name, pool and address. It follows the pool if it
// did not, and waits until its watch has listed it.
func (p *poolClaims) byPool(ctx context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error) {
	p.mu.Lock()
	if p.shared == nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("failed to list the SpiderIPClaims of pool %q: the agent is not started", pool)
	}
	src := p.follow(pool)
	p.metrics.WatchedPools.Set(float64(len(p.tables)))
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case <-src.synced:
	case <-ctx.Done():
		return nil, fmt.Errorf("failed to list the SpiderIPClaims of pool %q: %w", pool, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.tables[pool]
	if t == nil {
		return nil, nil
	}
	out := make([]*v2beta1.SpiderIPClaim, 0, len(t.claims))
	for name := range t.claims {
		if c := stub(name, pool); c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// heldBy returns the names of the followed claims whose pod key (byOwner
// false) or owner key (byOwner true) is key: the claims of StatefulSet
// replicas and virtual machines.
func (p *poolClaims) heldBy(key string, byOwner bool) []string {
	k := "pod:" + key
	if byOwner {
		k = "owner:" + key
	}
	p.mu.Lock()
	var names []string
	for _, t := range p.tables {
		for name := range t.heldBy[k] {
			names = append(names, name)
		}
	}
	p.mu.Unlock()
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

// compactClaim is a claim reduced to what is kept of it.
type compactClaim struct {
	name, pool string
	ref        *claimRef
}

// compact is a claim as a store key: name, pool, pod key and owner key
// separated by newlines (which none of them holds). The reflector gathers
// the initial stream of claims in this form, so a watch's claims are never
// all held as objects at once.
func compact(c *v2beta1.SpiderIPClaim) toolscache.ExplicitKey {
	key := c.Name + "\n" + c.Labels[v2beta1.LabelPool]
	if ref := refOf(c); ref != nil {
		key += "\n" + ref.podKey + "\n" + ref.ownerKey
	}
	return toolscache.ExplicitKey(key)
}

// expand reads a claim, whole or compact.
func expand(obj any) (compactClaim, bool) {
	switch v := obj.(type) {
	case *v2beta1.SpiderIPClaim:
		return compactClaim{name: v.Name, pool: v.Labels[v2beta1.LabelPool], ref: refOf(v)}, true
	case toolscache.ExplicitKey:
		f := strings.Split(string(v), "\n")
		c := compactClaim{name: f[0]}
		if len(f) > 1 {
			c.pool = f[1]
		}
		if len(f) == 4 {
			c.ref = &claimRef{podKey: f[2], ownerKey: f[3]}
		}
		return c, true
	case toolscache.DeletedFinalStateUnknown:
		if c, ok := expand(v.Obj); ok {
			return c, true
		}
		name, _, _ := strings.Cut(v.Key, "\n")
		return compactClaim{name: name}, true
	}
	return compactClaim{}, false
}

// claimStore is the reflector's store of one watch: it keeps claimRefs in
// the tables of the pools this source feeds and tells the engine of every
// change.
type claimStore struct {
	p   *poolClaims
	src *claimSource
}

var _ toolscache.TransformingStore = (*claimStore)(nil)

// Transformer shrinks each claim of the initial stream (see compact).
func (s *claimStore) Transformer() toolscache.TransformFunc {
	return func(obj any) (any, error) {
		if c, ok := obj.(*v2beta1.SpiderIPClaim); ok {
			return compact(c), nil
		}
		return obj, nil
	}
}

// table returns the table c goes into (creating it for a pool of the
// shared watch seen for the first time), or nil when its claims are not
// kept. Call with p.mu held.
func (s *claimStore) table(c compactClaim) *poolTable {
	p := s.p
	if s.src.pool != "" {
		c.pool = s.src.pool
	}
	t := p.tables[c.pool]
	if t == nil && s.src == p.shared && c.pool != "" && !p.ignored[c.pool] && !p.restricted[c.pool] {
		t = newPoolTable(s.src)
		p.tables[c.pool] = t
		p.metrics.WatchedPools.Set(float64(len(p.tables)))
	}
	if t == nil || t.src != s.src {
		return nil
	}
	return t
}

func (s *claimStore) apply(obj any, gone bool) error {
	c, ok := expand(obj)
	if !ok {
		return fmt.Errorf("unexpected object %T in a SpiderIPClaim watch", obj)
	}
	s.p.mu.Lock()
	t := s.table(c)
	if t == nil || s.src.stopped {
		s.p.mu.Unlock()
		return nil
	}
	had := t.set(c.name, c.ref, gone)
	pool := c.pool
	if s.src.pool != "" {
		pool = s.src.pool
	}
	switch {
	case gone && had:
		s.p.metrics.WatchedClaims.Dec()
	case !gone && !had:
		s.p.metrics.WatchedClaims.Inc()
	}
	s.p.mu.Unlock()
	switch {
	case gone && had:
		s.p.observe(stub(c.name, pool), nil)
	case !gone && !had:
		s.p.observe(nil, stub(c.name, pool))
	}
	return nil
}

func (s *claimStore) Add(obj any) error    { return s.apply(obj, false) }
func (s *claimStore) Update(obj any) error { return s.apply(obj, false) }
func (s *claimStore) Delete(obj any) error { return s.apply(obj, true) }
func (s *claimStore) Resync() error        { return nil }

// Replace takes a complete list (the first one, or after the watch was
// lost): in the tables this source feeds, the claims missing from it are
// gone.
func (s *claimStore) Replace(list []any, _ string) error {
	type change struct {
		name, pool string
		gone       bool
	}
	var changes []change
	p := s.p
	p.mu.Lock()
	if !s.src.stopped {
		seen := map[*poolTable]map[string]bool{}
		for _, obj := range list {
			c, ok := expand(obj)
			if !ok {
				continue
			}
			t := s.table(c)
			if t == nil {
				continue
			}
			if seen[t] == nil {
				seen[t] = map[string]bool{}
			}
			seen[t][c.name] = true
			pool := c.pool
			if s.src.pool != "" {
				pool = s.src.pool
			}
			if !t.set(c.name, c.ref, false) {
				p.metrics.WatchedClaims.Inc()
				changes = append(changes, change{name: c.name, pool: pool})
			}
		}
		for pool, t := range p.tables {
			if t.src != s.src {
				continue
			}
			for name := range t.claims {
				if !seen[t][name] {
					t.set(name, nil, true)
					p.metrics.WatchedClaims.Dec()
					changes = append(changes, change{name: name, pool: pool, gone: true})
				}
			}
		}
	}
	p.mu.Unlock()
	for _, c := range changes {
		if c.gone {
			p.observe(stub(c.name, c.pool), nil)
		} else {
			p.observe(nil, stub(c.name, c.pool))
		}
	}
	select {
	case <-s.src.synced:
	default:
		close(s.src.synced)
	}
	return nil
}

// watchPools follows the claims of the pools this node may use (their
// nodeName, else nodeAffinity, admits the node) and stops following the
// others. It runs on every pool and node change; the first call after the
// caches synced starts the shared watch.
func (a *Agent) watchPools(ctx context.Context) error {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	var nodeLabels map[string]string
	node := &corev1.Node{}
	if err := a.cache.Get(ctx, keyOf("", a.cfg.NodeName), node); err == nil {
		nodeLabels = node.Labels
	}
	list := &v2beta1.SpiderIPPoolList{}
	if err := a.cache.List(ctx, list); err != nil {
		return fmt.Errorf("failed to list SpiderIPPools from cache: %w", err)
	}
	want, known := map[string]bool{}, map[string]bool{}
	for i := range list.Items {
		known[list.Items[i].Name] = true
		if selection.NodeRefusal(&list.Items[i].Spec, a.cfg.NodeName, nodeLabels) == "" {
			want[list.Items[i].Name] = true
		}
	}
	a.pools.retain(want, known)
	return nil
}
