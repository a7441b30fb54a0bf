// Package agent is the node agent of Spindle's IPAM: it serves the spiderpool
// CNI plugin over a unix socket and allocates addresses for the pods of its
// node by creating one SpiderIPClaim per address.
//
// Reads come from informer caches (pools, reserved addresses, this node's
// pods and claims, namespaces, this node) and from per-pool watches that keep
// only the names of the claims of the pools this node may use (poolclaims.go);
// every allocation is a single Create
// whose name is the address, so agents never coordinate with each other and
// the API server's name uniqueness rules out duplicates.
package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi/nodeserver"
	"github.com/spindle-net/spindle/ipam/store"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// Endpoint write modes.
const (
	// EndpointAsync writes SpiderEndpoints in the background from the claims
	// (the default; claims are the source of truth).
	EndpointAsync = "async"
	// EndpointSync writes the SpiderEndpoint before ADD returns.
	EndpointSync = "sync"
)

// Config is the agent's configuration (flags of spindle-agent).
type Config struct {
	// NodeName is the node this agent serves (env NODE_NAME).
	NodeName string
	// Version is the build's version, the version label of
	// spindle_build_info (default "dev").
	Version string
	// EnableIPv4 / EnableIPv6 select the families allocated to every interface.
	EnableIPv4, EnableIPv6 bool
	// EnableStatefulSet keeps StatefulSet pods' addresses across re-creation.
	EnableStatefulSet bool
	// ClusterDefaultNetwork is the NetworkAttachmentDefinition
	// ("namespace/name") Multus uses for eth0; used to match pools'
	// multusName. A bare name refers to SystemNamespace.
	ClusterDefaultNetwork string
	// SystemNamespace is where Spindle runs; multusName entries without a
	// namespace refer to it (default kube-system).
	SystemNamespace string
	// DefaultSubnet names the cluster default SpiderSubnets (one per
	// family, empty: none). When set, the pods of an application that names
	// no pools, subnets or addresses get eth0's addresses from the pools
	// spindle-controller carves for it from them (it must run with the same
	// setting).
	DefaultSubnet annotations.SubnetRequest
	// EndpointWrites is EndpointAsync or EndpointSync.
	EndpointWrites string
	// EndpointWorkers is the number of background SpiderEndpoint writers.
	EndpointWorkers int
	// GCInterval is the period of the background garbage collection (0: 10m).
	GCInterval time.Duration
	// GCGracePeriod protects claims younger than this from garbage collection
	// (0: 2m), so an ADD in progress is never collected.
	GCGracePeriod time.Duration
	// ConflictQuarantine is how long an address released after a conflict
	// report is not offered again by this agent (0: 10m).
	ConflictQuarantine time.Duration
	// Logger receives the agent's logs (default: discard).
	Logger logr.Logger
}

// Agent allocates addresses for the pods of one node.
type Agent struct {
	cfg     Config
	cache   cache.Cache
	live    client.Client // direct API access (writes, cache misses)
	store   *store.Store
	metrics *Metrics
	log     logr.Logger

	overlay  *overlay
	pools    *poolClaims
	watchMu  sync.Mutex // serialises watchPools
	engine   *allocator.Engine
	selIndex selectionIndex
	podLocks keyedLocks
	seMemo   seMemo
	seQueue  workqueue.TypedRateLimitingInterface[string]
	restCfg  *rest.Config
	// recorder records Events (events.go); nil until Start.
	recorder events.EventRecorder

	ready    atomic.Bool
	readyErr atomic.Value // string
}

// Scheme returns the scheme with the core, apps and Spindle kinds.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v2beta1.AddToScheme(s)
	return s
}

// What the agent reads and writes; the Helm chart's agent ClusterRole is
// checked against these markers.
// +kubebuilder:rbac:groups="",resources=pods;namespaces;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spiderreservedips;spidercoordinators,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims;spiderendpoints,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints/status,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
//
// Secure metrics (ServeMetrics) ask the API server who a scraper is and
// whether it may get /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// New builds an agent talking to the API server of cfg. Call Start before use.
func New(restCfg *rest.Config, cfg Config) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("failed to start agent: node name is empty (set NODE_NAME)")
	}
	if !cfg.EnableIPv4 && !cfg.EnableIPv6 {
		return nil, errors.New("failed to start agent: neither IPv4 nor IPv6 is enabled")
	}
	if cfg.EndpointWrites == "" {
		cfg.EndpointWrites = EndpointAsync
	}
	if cfg.EndpointWrites != EndpointAsync && cfg.EndpointWrites != EndpointSync {
		return nil, fmt.Errorf("failed to start agent: endpoint write mode %q is neither %q nor %q", cfg.EndpointWrites, EndpointAsync, EndpointSync)
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "kube-system"
	}
	if cfg.ClusterDefaultNetwork != "" && !strings.Contains(cfg.ClusterDefaultNetwork, "/") {
		cfg.ClusterDefaultNetwork = cfg.SystemNamespace + "/" + cfg.ClusterDefaultNetwork
	}
	if cfg.EndpointWorkers <= 0 {
		cfg.EndpointWorkers = 1
	}
	if cfg.GCInterval == 0 {
		cfg.GCInterval = 10 * time.Minute
	}
	if cfg.GCGracePeriod == 0 {
		cfg.GCGracePeriod = 2 * time.Minute
	}
	if cfg.ConflictQuarantine <= 0 {
		cfg.ConflictQuarantine = DefaultConflictQuarantine
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger.GetSink() == nil {
		cfg.Logger = logr.Discard()
	}
	scheme := Scheme()
	noCopy := true
	c, err := cache.New(restCfg, cache.Options{
		Scheme:           scheme,
		DefaultTransform: reduceWorkloadMeta(cache.TransformStripManagedFields()),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Field: fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName)},
			&corev1.Node{}: {Field: fields.OneTermEqualSelector("metadata.name", cfg.NodeName)},
			// Only the claims of this node's pods, in full; the claims of
			// the pools this node may use are watched per pool, by name
			// (poolClaims). Read-only here: skip the copy on reads.
			&v2beta1.SpiderIPClaim{}: {Field: fields.OneTermEqualSelector(store.FieldClaimNode, cfg.NodeName), UnsafeDisableDeepCopy: &noCopy},
			// Only the SpiderEndpoints this agent maintains.
			&v2beta1.SpiderEndpoint{}: {Label: labels.SelectorFromSet(labels.Set{store.LabelEndpointNode: cfg.NodeName})},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create informer cache: %w", err)
	}
	live, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to create API client: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.NodeName))
	a := &Agent{
		cfg:     cfg,
		cache:   c,
		live:    live,
		store:   &store.Store{W: live, R: c},
		metrics: NewMetrics(cfg.Version),
		log:     cfg.Logger,
		overlay: newOverlay(),
		restCfg: restCfg,
		seQueue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "spiderendpoint"}),
	}
	a.pools = newPoolClaims(live, a.metrics, func(old, cur *v2beta1.SpiderIPClaim) { a.engine.Observe(old, cur) },
		func(pool string) { a.engine.PoolChanged(pool) })
	a.engine = allocator.New(allocator.Config{
		Node:              cfg.NodeName,
		EnableStatefulSet: cfg.EnableStatefulSet,
		Quarantine:        cfg.ConflictQuarantine,
		CursorSeed:        h.Sum64() ^ rand.Uint64()>>32,
		Hooks: allocator.Hooks{
			Allocated: func(c *v2beta1.SpiderIPClaim) {
				a.metrics.Allocations.WithLabelValues(fmt.Sprint(c.Spec.IPVersion)).Inc()
			},
			Rebound: func(old, cur *v2beta1.SpiderIPClaim) {
				a.event(podRef(cur.Spec.PodNamespace, cur.Spec.PodName, cur.Spec.PodUID), corev1.EventTypeNormal, EventAddressRebound,
					"interface %s keeps %s (pool %s) of %s %s, held before by pod %s/%s (uid %s)", cur.Spec.Interface, cur.Spec.Address, cur.Spec.Pool,
					cur.Spec.OwnerKind, cur.Spec.OwnerName, old.Spec.PodNamespace, old.Spec.PodName, old.Spec.PodUID)
			},
			Released: func(c *v2beta1.SpiderIPClaim) { a.metrics.Releases.WithLabelValues(fmt.Sprint(c.Spec.IPVersion)).Inc() },
			Taken:    a.metrics.Conflicts.Inc,
			RollbackFailed: func(c *v2beta1.SpiderIPClaim, err error) {
				a.log.Error(err, "failed to roll back claim; retrying in background", "claim", c.Name)
			},
			RollbackAbandoned: func(c *v2beta1.SpiderIPClaim) {
				a.log.Info("rollback of claim left to the garbage collection", "claim", c.Name, "address", c.Spec.Address,
					"pod", c.Spec.PodNamespace+"/"+c.Spec.PodName)
			},
		},
		LockHolder: func(namespace, name string) func() { return a.podLocks.lock(store.PodKey(namespace, name)) },
	}, engineSource{a}, engineClaims{Store: a.store, a: a})
	a.readyErr.Store("informer caches are not synced yet")
	return a, nil
}

// Metrics returns the agent's metrics.
func (a *Agent) Metrics() *Metrics { return a.metrics }

// NodeName returns the node the agent serves.
func (a *Agent) NodeName() string { return a.cfg.NodeName }

// Start registers indexes and event handlers, starts the informers and waits
// for them to sync. Background work stops when ctx is done.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.checkClaimAPI(ctx); err != nil {
		return err
	}
	if err := store.IndexClaims(ctx, a.cache); err != nil {
		return err
	}
	if err := a.startEvents(ctx, a.restCfg); err != nil {
		return err
	}
	claimInf, err := a.cache.GetInformer(ctx, &v2beta1.SpiderIPClaim{})
	if err != nil {
		return fmt.Errorf("failed to get SpiderIPClaim informer: %w", err)
	}
	if _, err := claimInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { a.onClaim(nil, asClaim(o)) },
		UpdateFunc: func(old, o any) { a.onClaim(asClaim(old), asClaim(o)) },
		DeleteFunc: func(o any) { a.onClaim(asClaim(o), nil) },
	}); err != nil {
		return fmt.Errorf("failed to watch SpiderIPClaims: %w", err)
	}
	poolInf, err := a.cache.GetInformer(ctx, &v2beta1.SpiderIPPool{})
	if err != nil {
		return fmt.Errorf("failed to get SpiderIPPool informer: %w", err)
	}
	if _, err := poolInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) {
			a.selIndex.invalidate()
			a.followPools(ctx)
		},
		UpdateFunc: func(old, o any) {
			p, ok1 := o.(*v2beta1.SpiderIPPool)
			q, ok2 := old.(*v2beta1.SpiderIPPool)
			// Status-only updates (the counters) change nothing here.
			if ok1 && ok2 && p.Generation == q.Generation && p.DeletionTimestamp.Equal(q.DeletionTimestamp) &&
				equality.Semantic.DeepEqual(p.Labels, q.Labels) {
				return
			}
			a.selIndex.invalidate()
			if ok1 {
				a.engine.PoolChanged(p.Name)
			}
			a.followPools(ctx)
		},
		DeleteFunc: func(o any) {
			a.selIndex.invalidate()
			a.followPools(ctx)
			if p, ok := o.(*v2beta1.SpiderIPPool); ok {
				a.engine.PoolChanged(p.Name)
			} else if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				a.engine.PoolChanged(t.Key)
			}
		},
	}); err != nil {
		return fmt.Errorf("failed to watch SpiderIPPools: %w", err)
	}
	resInf, err := a.cache.GetInformer(ctx, &v2beta1.SpiderReservedIP{})
	if err != nil {
		return fmt.Errorf("failed to get SpiderReservedIP informer: %w", err)
	}
	if _, err := resInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.engine.ReservedChanged() },
		UpdateFunc: func(any, any) { a.engine.ReservedChanged() },
		DeleteFunc: func(any) { a.engine.ReservedChanged() },
	}); err != nil {
		return fmt.Errorf("failed to watch SpiderReservedIPs: %w", err)
	}
	nodeInf, err := a.cache.GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return fmt.Errorf("failed to get Node informer: %w", err)
	}
	// The node's labels decide which pools' claims are watched.
	if _, err := nodeInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { a.followPools(ctx) },
		UpdateFunc: func(old, o any) {
			p, ok1 := o.(*corev1.Node)
			q, ok2 := old.(*corev1.Node)
			if !ok1 || !ok2 || !equality.Semantic.DeepEqual(p.Labels, q.Labels) {
				a.followPools(ctx)
			}
		},
	}); err != nil {
		return fmt.Errorf("failed to watch the Node: %w", err)
	}
	seInf, err := a.cache.GetInformer(ctx, &v2beta1.SpiderEndpoint{})
	if err != nil {
		return fmt.Errorf("failed to get SpiderEndpoint informer: %w", err)
	}
	if _, err := seInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: a.onEndpointGone}); err != nil {
		return fmt.Errorf("failed to watch SpiderEndpoints: %w", err)
	}
	objs := []client.Object{&corev1.Pod{}, &corev1.Namespace{}, &v2beta1.SpiderCoordinator{}}
	for _, gvk := range subnets.AppKinds {
		objs = append(objs, workloadMeta(gvk))
	}
	for _, obj := range objs {
		if _, err := a.cache.GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("failed to get %T informer: %w", obj, err)
		}
	}
	go func() {
		if err := a.cache.Start(ctx); err != nil {
			a.log.Error(err, "informer cache stopped")
		}
	}()
	if !a.cache.WaitForCacheSync(ctx) {
		return errors.New("failed to sync informer caches")
	}
	pools := &v2beta1.SpiderIPPoolList{}
	if err := a.cache.List(ctx, pools); err != nil {
		return fmt.Errorf("failed to list SpiderIPPools from cache: %w", err)
	}
	if err := a.pools.begin(ctx, restrictedPools(pools.Items)); err != nil {
		return err
	}
	if err := a.watchPools(ctx); err != nil {
		return err
	}
	if err := a.pools.waitAll(ctx); err != nil {
		return err
	}
	a.engine.Start(ctx)
	a.ready.Store(true)
	for i := 0; i < a.cfg.EndpointWorkers; i++ {
		go a.endpointWorker(ctx)
	}
	go func() {
		<-ctx.Done()
		a.seQueue.ShutDown()
	}()
	go a.gcLoop(ctx)
	return nil
}

// Ready reports whether the informers are synced.
func (a *Agent) Ready() error {
	if a.ready.Load() {
		return nil
	}
	return errors.New(a.readyErr.Load().(string))
}

// Serve serves the plugin socket until ctx is done.
func (a *Agent) Serve(ctx context.Context, socket string) error {
	l, err := nodeserver.ListenUnix(socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: nodeserver.Handler(a), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve %q: %w", socket, err)
	}
	return nil
}

// ServeHealth serves /healthz (liveness) and /readyz (informers synced).
func (a *Agent) ServeHealth(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return serveHTTP(ctx, addr, mux)
}

func serveHTTP(ctx context.Context, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve %q: %w", addr, err)
	}
	return nil
}

func asClaim(o any) *v2beta1.SpiderIPClaim {
	switch v := o.(type) {
	case *v2beta1.SpiderIPClaim:
		return v
	case toolscache.DeletedFinalStateUnknown:
		c, _ := v.Obj.(*v2beta1.SpiderIPClaim)
		return c
	}
	return nil
}

// followPools is watchPools for event handlers: a failure is logged and
// the next pool or node event tries again.
func (a *Agent) followPools(ctx context.Context) {
	if err := a.watchPools(ctx); err != nil {
		a.log.Error(err, "failed to update the pools whose claims are followed")
	}
}

// onClaim keeps the overlay and the SpiderEndpoint queue in step with the
// informer of this node's claims (the pools' used-address bitmaps follow
// the pool watches).
func (a *Agent) onClaim(old, cur *v2beta1.SpiderIPClaim) {
	if cur != nil {
		a.overlay.observed(cur.Name, cur)
	} else if old != nil {
		a.overlay.gone(old)
	}
	for _, c := range []*v2beta1.SpiderIPClaim{old, cur} {
		if c != nil && c.Spec.Node == a.cfg.NodeName && c.Spec.PodName != "" {
			a.seQueue.Add(store.ClaimPodKey(c))
		}
	}
}

// keyedLocks serialises requests for the same pod.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

func (k *keyedLocks) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// checkClaimAPI fails the start when the cluster's SpiderIPClaim CRD
// predates the spec.node selectable field the claim informer selects by
// (helm upgrade never upgrades CRDs): the informer would otherwise wait
// forever with the node unable to start pods, and say nothing useful. Other
// errors are left to the informer's retries.
func (a *Agent) checkClaimAPI(ctx context.Context) error {
	err := a.live.List(ctx, &v2beta1.SpiderIPClaimList{},
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector(store.FieldClaimNode, a.cfg.NodeName)}, client.Limit(1))
	if apierrors.IsBadRequest(err) {
		return fmt.Errorf("the cluster's SpiderIPClaim CRD does not let the agent select claims by %s; it is older than this agent: "+
			"apply this version's CRDs (kubectl apply --server-side -f charts/spindle/crds/), then restart the agent: %w", store.FieldClaimNode, err)
	}
	return nil
}
