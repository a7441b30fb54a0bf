package webhook

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/poolfinalizer"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// FinalizerPoolInUse keeps a SpiderIPPool with live allocations from being
// removed; package poolfinalizer removes it once the last claim is gone. The
// defaulter adds it at creation so no pool is ever without it.
const FinalizerPoolInUse = poolfinalizer.Finalizer

// Admission holds the handlers of every webhook. Reader reads the API
// server directly, never an informer cache: two pools applied one after the
// other must see each other (an overlap admitted because the cache lagged by
// a few milliseconds would stay in the cluster), and admissions are rare
// enough that a list per request costs nothing that matters.
type Admission struct {
	Reader client.Reader
}

// ---- SpiderIPPool

type poolHooks struct{ a *Admission }

// Default implements admission.Defaulter.
func (h poolHooks) Default(ctx context.Context, p *v2beta1.SpiderIPPool) error {
	DefaultIPPool(p)
	// A pool created into an existing subnet is its child at once (the
	// subnet controller adopts pools created before their subnet).
	var subs v2beta1.SpiderSubnetList
	if err := h.a.Reader.List(ctx, &subs); err != nil {
		return fmt.Errorf("failed to list SpiderSubnets: %w", err)
	}
	if s := subnets.Of(p, subs.Items); s != nil && s.DeletionTimestamp == nil {
		subnets.Adopt(p, s)
	}
	if p.DeletionTimestamp == nil && !hasString(p.Finalizers, FinalizerPoolInUse) {
		p.Finalizers = append(p.Finalizers, FinalizerPoolInUse)
	}
	return nil
}

func (h poolHooks) validate(ctx context.Context, p, old *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := h.a.Reader.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	var subs v2beta1.SpiderSubnetList
	if err := h.a.Reader.List(ctx, &subs); err != nil {
		return nil, fmt.Errorf("failed to list SpiderSubnets: %w", err)
	}
	st := PoolState{Old: old, Others: pools.Items, Subnets: subs.Items}
	if old != nil {
		var claims v2beta1.SpiderIPClaimList
		if err := h.a.Reader.List(ctx, &claims, client.MatchingLabels{v2beta1.LabelPool: p.Name}); err != nil {
			return nil, fmt.Errorf("failed to list SpiderIPClaims of pool %q: %w", p.Name, err)
		}
		st.Claims = claims.Items
	}
	return nil, ValidateIPPool(p, st)
}

// ValidateCreate implements admission.Validator.
func (h poolHooks) ValidateCreate(ctx context.Context, p *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	return h.validate(ctx, p, nil)
}

// ValidateUpdate implements admission.Validator.
func (h poolHooks) ValidateUpdate(ctx context.Context, old, p *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	if p.DeletionTimestamp != nil {
		// A pool being deleted only loses finalizers; it hands out nothing.
		return nil, nil
	}
	return h.validate(ctx, p, old)
}

// ValidateDelete implements admission.Validator.
func (h poolHooks) ValidateDelete(context.Context, *v2beta1.SpiderIPPool) (admission.Warnings, error) {
	return nil, nil
}

// ---- SpiderSubnet

type subnetHooks struct{ a *Admission }

func (h subnetHooks) Default(_ context.Context, s *v2beta1.SpiderSubnet) error {
	DefaultSubnet(s)
	return nil
}

func (h subnetHooks) validate(ctx context.Context, s, old *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	var list v2beta1.SpiderSubnetList
	if err := h.a.Reader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("failed to list SpiderSubnets: %w", err)
	}
	var pools v2beta1.SpiderIPPoolList
	if err := h.a.Reader.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	return nil, ValidateSubnet(s, old, list.Items, pools.Items)
}

func (h subnetHooks) ValidateCreate(ctx context.Context, s *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	return h.validate(ctx, s, nil)
}

func (h subnetHooks) ValidateUpdate(ctx context.Context, old, s *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	return h.validate(ctx, s, old)
}

func (h subnetHooks) ValidateDelete(context.Context, *v2beta1.SpiderSubnet) (admission.Warnings, error) {
	return nil, nil
}

// ---- SpiderReservedIP

type reservedHooks struct{}

func (reservedHooks) Default(_ context.Context, r *v2beta1.SpiderReservedIP) error {
	DefaultReservedIP(r)
	return nil
}

func (reservedHooks) ValidateCreate(_ context.Context, r *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, ValidateReservedIP(r)
}

func (reservedHooks) ValidateUpdate(_ context.Context, _, r *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, ValidateReservedIP(r)
}

func (reservedHooks) ValidateDelete(context.Context, *v2beta1.SpiderReservedIP) (admission.Warnings, error) {
	return nil, nil
}

// ---- SpiderMultusConfig

type multusHooks struct{ a *Admission }

func (multusHooks) Default(_ context.Context, m *v2beta1.SpiderMultusConfig) error {
	DefaultMultusConfig(m)
	return nil
}

func (h multusHooks) validate(ctx context.Context, m *v2beta1.SpiderMultusConfig) (admission.Warnings, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := h.a.Reader.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	fams := PoolFamilies{}
	for i := range pools.Items {
		if f, err := ranges.PoolFamily(&pools.Items[i].Spec); err == nil {
			fams[pools.Items[i].Name] = f
		}
	}
	return ValidateMultusConfig(m, fams)
}

func (h multusHooks) ValidateCreate(ctx context.Context, m *v2beta1.SpiderMultusConfig) (admission.Warnings, error) {
	return h.validate(ctx, m)
}

func (h multusHooks) ValidateUpdate(ctx context.Context, _, m *v2beta1.SpiderMultusConfig) (admission.Warnings, error) {
	return h.validate(ctx, m)
}

func (multusHooks) ValidateDelete(context.Context, *v2beta1.SpiderMultusConfig) (admission.Warnings, error) {
	return nil, nil
}

// ---- SpiderCoordinator

type coordinatorHooks struct{}

func (coordinatorHooks) Default(_ context.Context, c *v2beta1.SpiderCoordinator) error {
	DefaultCoordinator(c)
	return nil
}

func (coordinatorHooks) ValidateCreate(_ context.Context, c *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	return nil, ValidateCoordinator(c)
}

func (coordinatorHooks) ValidateUpdate(_ context.Context, _, c *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	return nil, ValidateCoordinator(c)
}

func (coordinatorHooks) ValidateDelete(context.Context, *v2beta1.SpiderCoordinator) (admission.Warnings, error) {
	return nil, nil
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spidersubnets;spiderreservedips;spidermultusconfigs;spidercoordinators,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims,verbs=get;list;watch

// Register adds every webhook to the manager's webhook server, at the paths
// BuildConfigurations points the API server to.
func Register(mgr manager.Manager) {
	a := &Admission{Reader: mgr.GetAPIReader()}
	srv := mgr.GetWebhookServer()
	s := mgr.GetScheme()
	for _, h := range Handlers(s, a) {
		srv.Register(h.Path, h.Webhook)
	}
}

// Handler is one webhook endpoint.
type Handler struct {
	Path    string
	Webhook *admission.Webhook
}

// Handlers returns every webhook endpoint with its path.
func Handlers(s *runtime.Scheme, a *Admission) []Handler {
	pool := poolHooks{a}
	subnet := subnetHooks{a}
	multus := multusHooks{a}
	return []Handler{
		{MutatePath("spiderippool"), admission.WithDefaulter[*v2beta1.SpiderIPPool](s, pool)},
		{ValidatePath("spiderippool"), admission.WithValidator[*v2beta1.SpiderIPPool](s, pool)},
		{MutatePath("spidersubnet"), admission.WithDefaulter[*v2beta1.SpiderSubnet](s, subnet)},
		{ValidatePath("spidersubnet"), admission.WithValidator[*v2beta1.SpiderSubnet](s, subnet)},
		{MutatePath("spiderreservedip"), admission.WithDefaulter[*v2beta1.SpiderReservedIP](s, reservedHooks{})},
		{ValidatePath("spiderreservedip"), admission.WithValidator[*v2beta1.SpiderReservedIP](s, reservedHooks{})},
		{MutatePath("spidermultusconfig"), admission.WithDefaulter[*v2beta1.SpiderMultusConfig](s, multus)},
		{ValidatePath("spidermultusconfig"), admission.WithValidator[*v2beta1.SpiderMultusConfig](s, multus)},
		{MutatePath("spidercoordinator"), admission.WithDefaulter[*v2beta1.SpiderCoordinator](s, coordinatorHooks{})},
		{ValidatePath("spidercoordinator"), admission.WithValidator[*v2beta1.SpiderCoordinator](s, coordinatorHooks{})},
	}
}
