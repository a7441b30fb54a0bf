// Package allocator is Spindle's allocation engine: per-pool state (which
// addresses are claimed or being claimed), reservation with a cursor that
// spreads concurrent agents apart, quarantine of addresses found in use on
// the network, and the decision, for one pod interface, of which existing
// claims it keeps, which are stale (an earlier pod of the same name), which it
// re-binds (a new sandbox, a StatefulSet replica's next incarnation) and which
// family still needs a new address.
//
// The engine does no I/O of its own: it reads pools through a Source and
// records claims through a ClaimStore. The node agent backs them with its
// informer caches and the API server; Memory backs them with maps for tests.
package allocator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/selection"
)

// Source is what the engine reads about pools.
type Source interface {
	// Pool returns the pool named name; nil (and no error) when it does not
	// exist.
	Pool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error)
	// Reserved returns the addresses of family fam that SpiderReservedIPs
	// hold back from every pool.
	Reserved(ctx context.Context, fam ranges.Family) (ranges.Set, error)
}

// ClaimStore records claims: one SpiderIPClaim per allocated address.
type ClaimStore interface {
	// Create records c. taken is true (and err nil) when the address
	// already has a claim.
	Create(ctx context.Context, c *v2beta1.SpiderIPClaim) (taken bool, err error)
	// Release deletes c if it is still the claim that was read (same UID
	// and resourceVersion); otherwise it returns ErrChanged. A claim that
	// is already gone counts as released.
	Release(ctx context.Context, c *v2beta1.SpiderIPClaim) error
	// Rebind updates c to a new holder, guarded by its resourceVersion.
	Rebind(ctx context.Context, c *v2beta1.SpiderIPClaim) error
	// ByPod returns the claims held under a pod's name, whatever its UID.
	ByPod(ctx context.Context, namespace, name string) ([]*v2beta1.SpiderIPClaim, error)
	// ByOwner returns the claims made for the pods of a controller.
	ByOwner(ctx context.Context, namespace, kind, name string) ([]*v2beta1.SpiderIPClaim, error)
	// ByPool returns the claims of a pool.
	ByPool(ctx context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error)
	// ByMAC returns the claims that record the MAC address mac, read from
	// the source of truth after every write that preceded the call.
	ByMAC(ctx context.Context, mac string) ([]*v2beta1.SpiderIPClaim, error)
}

// ErrChanged is returned by ClaimStore.Release for a claim that was
// re-created or re-bound since it was read: nothing was deleted.
var ErrChanged = errors.New("the claim changed since it was read")

// MaxConflictsPerPool bounds how many taken addresses one request skips in a
// pool before it gives up with try-again-later.
const MaxConflictsPerPool = 256

// Config tunes the engine.
type Config struct {
	// Node is the node the engine allocates for; it is recorded in claims.
	Node string
	// EnableStatefulSet keeps a StatefulSet replica's addresses for its next
	// incarnation.
	EnableStatefulSet bool
	// Quarantine is how long an address found in use on the network is not
	// offered again by this engine.
	Quarantine time.Duration
	// CursorSeed places this engine's first search in every pool, so agents
	// start apart; zero starts at the beginning.
	CursorSeed uint64
	// Hooks are told what happened (metrics); every field may be nil.
	Hooks Hooks
	// RollbackBackoff is the first delay between background attempts at
	// deleting a failed request's claim (DefaultRollbackBackoff when zero);
	// it doubles up to 30 s.
	RollbackBackoff time.Duration
	// RollbackAttempts bounds the background attempts per claim
	// (DefaultRollbackAttempts when zero).
	RollbackAttempts int
	// LockHolder, when set, serialises a background rollback with the
	// requests of the claim's pod: it locks the pod name and returns the
	// unlock function (the same lock the caller holds around Allocate).
	LockHolder func(namespace, name string) (unlock func())
}

// Hooks observe the engine.
type Hooks struct {
	// Allocated: an address was given to a holder (claim created, or
	// re-bound to a new pod).
	Allocated func(c *v2beta1.SpiderIPClaim)
	// Rebound: the claim old was re-bound to another pod (a StatefulSet
	// replica's or a virtual machine's next incarnation) as cur.
	Rebound func(old, cur *v2beta1.SpiderIPClaim)
	// Released: a claim was deleted.
	Released func(c *v2beta1.SpiderIPClaim)
	// Taken: an address this engine chose was claimed by someone else first.
	Taken func()
	// RollbackFailed: a claim of a failed request could not be deleted yet;
	// it is retried in the background.
	RollbackFailed func(c *v2beta1.SpiderIPClaim, err error)
	// RollbackAbandoned: the background retries of a claim's rollback gave
	// up (attempts exhausted or the engine's lifetime ended); the claim is
	// left to RetryRollbacks and to the garbage collection.
	RollbackAbandoned func(c *v2beta1.SpiderIPClaim)
}

// Rollback retry defaults: 200ms doubling up to maxRollbackDelay, 8
// attempts (about 50 s) before a claim is left to the garbage collection.
const (
	DefaultRollbackBackoff  = 200 * time.Millisecond
	DefaultRollbackAttempts = 8
	maxRollbackDelay        = 30 * time.Second
)

// Engine allocates addresses. It is safe for concurrent use; requests for the
// same pod must be serialised by the caller.
type Engine struct {
	cfg        Config
	src        Source
	claims     ClaimStore
	pools      *poolTable
	quarantine *Quarantine
	rollback   sync.WaitGroup

	rbMu    sync.Mutex
	life    context.Context
	pending map[string]*v2beta1.SpiderIPClaim // claim name -> unfinished rollback
}

// New returns an engine over src and claims.
func New(cfg Config, src Source, claims ClaimStore) *Engine {
	e := &Engine{cfg: cfg, src: src, claims: claims, quarantine: NewQuarantine(cfg.Quarantine), pending: map[string]*v2beta1.SpiderIPClaim{}}
	e.pools = &poolTable{e: e, states: map[string]*poolState{}}
	return e
}

// Holder is the pod an allocation is for.
type Holder struct {
	Namespace, Name string
	UID             string
	// OwnerKind and OwnerName are the pod's controller ("StatefulSet", ...).
	OwnerKind, OwnerName string
}

func (h Holder) String() string { return h.Namespace + "/" + h.Name }

func (h Holder) statefulSet() bool {
	return h.OwnerKind == lifecycle.KindStatefulSet && h.OwnerName != ""
}

// virtualMachine: a KubeVirt launcher pod, whose allocation belongs to its
// virtual machine rather than to the pod's name.
func (h Holder) virtualMachine() bool {
	return h.OwnerKind == lifecycle.KindVirtualMachineInstance && h.OwnerName != ""
}

// Family is the ordered list of candidate pools for one IP family, and the
// candidates selection refused (for the error when none has an address).
type Family struct {
	Family   ranges.Family
	Rule     selection.Rule
	Pools    []string
	Rejected []selection.RejectedPool
	// Addresses, when set, are the only addresses this family may get, in
	// order of preference (a fixed address, or a workload's list): the
	// first one that no one else holds is claimed from the first candidate
	// pool that contains it.
	Addresses []netip.Addr
}

// Request is one pod interface to allocate for.
type Request struct {
	Holder      Holder
	ContainerID string
	Interface   string
	// CleanGateway is recorded in the claims (the pod's default route does
	// not use this interface).
	CleanGateway bool
	// Families are allocated in order; a family without pools is skipped.
	Families []Family
	// MAC is the MAC address the pod asks for on the interface; nil for
	// none. It is recorded in the claims, and no two holders get one MAC.
	MAC net.HardwareAddr
}

// Allocate gives the request's interface one address per family: the
// holder's own claims are kept (re-bound to a new sandbox when needed), a
// StatefulSet replica inherits its predecessor's claims while their pools are
// still candidates, claims of an earlier pod of the same name are released,
// and missing families are claimed from the first candidate pool with a free
// address. On failure nothing created by this call survives.
func (e *Engine) Allocate(ctx context.Context, req *Request) ([]*v2beta1.SpiderIPClaim, error) {
	held, err := e.claims.ByPod(ctx, req.Holder.Namespace, req.Holder.Name)
	if err != nil {
		return nil, APIError(err, "failed to list the claims of pod %q", req.Holder)
	}
	if h := req.Holder; h.virtualMachine() {
		// A new launcher pod (a restart, a replacement, the target of a
		// live migration) takes over the virtual machine's claims.
		vm, err := e.claims.ByOwner(ctx, h.Namespace, h.OwnerKind, h.OwnerName)
		if err != nil {
			return nil, APIError(err, "failed to list the claims of virtual machine %q", h.Namespace+"/"+h.OwnerName)
		}
		for _, c := range vm {
			if !slices.ContainsFunc(held, func(x *v2beta1.SpiderIPClaim) bool { return x.Name == c.Name }) {
				held = append(held, c)
			}
		}
	}
	keep, stale := e.Sort(req, held)
	if err := e.Release(ctx, stale); err != nil {
		return nil, err
	}
	// standing: the claims that recorded the requested MAC before another
	// holder could have seen this request (created now, or bound and
	// carrying it already).
	var got, created, standing []*v2beta1.SpiderIPClaim
	for _, fam := range req.Families {
		if have := find(keep, req.Interface, fam.Family); have != nil {
			hadMAC := req.MAC != nil && have.Spec.MAC == req.MAC.String()
			c, err := e.bind(ctx, have, req)
			if err != nil {
				e.rollbackClaims(created)
				return nil, err
			}
			got = append(got, c)
			if hadMAC {
				standing = append(standing, c)
			}
			continue
		}
		claim := e.claim
		if len(fam.Addresses) > 0 {
			claim = e.claimFixed
		}
		c, err := claim(ctx, req, fam)
		if err != nil {
			e.rollbackClaims(created)
			return nil, err
		}
		created = append(created, c)
		standing = append(standing, c)
		got = append(got, c)
	}
	if err := e.checkMAC(ctx, req, standing); err != nil {
		e.rollbackClaims(created)
		e.dropMAC(ctx, got, standing, created)
		return nil, err
	}
	for _, c := range created {
		e.hook(e.cfg.Hooks.Allocated, c)
	}
	for _, c := range got {
		// Handed out again: an earlier failed request's rollback must
		// not delete it any more.
		e.forget(c.Name, nil)
	}
	return got, nil
}

// checkMAC makes sure no other holder has the MAC the request asks for.
// The claims that record it are listed from the API server after this
// request's claims were written, so of two requests racing for one MAC at
// least one sees the other: the holder whose claim recorded it first
// (creation time, then name) keeps it and the other is refused. A claim that
// only now recorded the MAC (re-bound with a new one) has no standing: it
// yields to any other holder.
func (e *Engine) checkMAC(ctx context.Context, req *Request, standing []*v2beta1.SpiderIPClaim) error {
	if req.MAC == nil {
		return nil
	}
	mac := req.MAC.String()
	var since *v2beta1.SpiderIPClaim // our earliest claim with standing
	for _, c := range standing {
		if since == nil || earlier(c, since) {
			since = c
		}
	}
	holders, err := e.claims.ByMAC(ctx, mac)
	if err != nil {
		return APIError(err, "failed to check that MAC address %s is free for pod %q", mac, req.Holder)
	}
	for _, o := range holders {
		if o.Spec.PodNamespace == req.Holder.Namespace && o.Spec.PodName == req.Holder.Name && o.Spec.Interface == req.Interface {
			continue // this interface's own claims, of this or an inherited incarnation
		}
		if since != nil && earlier(since, o) {
			continue // it yields to us
		}
		return &nodeapi.ErrorResponse{
			Code:   nodeapi.CodeTryAgainLater,
			Reason: nodeapi.ReasonFixedUnavailable,
			Msg:    fmt.Sprintf("failed to give interface %q of pod %q the MAC address %s", req.Interface, req.Holder, mac),
			Details: fmt.Sprintf("%s is held by pod %s/%s on interface %q (SpiderIPClaim %q)",
				mac, o.Spec.PodNamespace, o.Spec.PodName, o.Spec.Interface, o.Name),
		}
	}
	return nil
}

// dropMAC takes the refused MAC off the claims that were re-bound with it,
// so that they do not stand in the way of its holder. A failure is left to
// the next ADD of the pod, which writes the claims again.
func (e *Engine) dropMAC(ctx context.Context, got, standing, created []*v2beta1.SpiderIPClaim) {
	for _, c := range got {
		if slices.Contains(standing, c) || slices.Contains(created, c) {
			continue
		}
		clear := c.DeepCopy()
		clear.Spec.MAC = ""
		clear.SyncLabels()
		if err := e.claims.Rebind(ctx, clear); err != nil && e.cfg.Hooks.RollbackFailed != nil {
			e.cfg.Hooks.RollbackFailed(c, err)
		}
	}
}

// earlier orders claims by creation time, then name.
func earlier(a, b *v2beta1.SpiderIPClaim) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// Sort splits the claims held under the request's pod name into those the
// request keeps and stale ones of an earlier pod that it releases.
func (e *Engine) Sort(req *Request, held []*v2beta1.SpiderIPClaim) (keep, stale []*v2beta1.SpiderIPClaim) {
	for _, c := range held {
		if c.Spec.PodUID == req.Holder.UID || e.inherits(req, c) {
			keep = append(keep, c)
		} else {
			stale = append(stale, c)
		}
	}
	return keep, stale
}

// inherits says whether the holder takes over claim c of an earlier pod: a
// StatefulSet replica keeps the addresses of the earlier pod of its name,
// and a virtual machine's launcher pod those of the machine's earlier
// launcher pods, as long as the claim was made for the same owner and its
// pool is still a candidate.
func (e *Engine) inherits(req *Request, c *v2beta1.SpiderIPClaim) bool {
	h := req.Holder
	switch {
	case c.Spec.OwnerKind != h.OwnerKind || c.Spec.OwnerName != h.OwnerName:
		return false
	case h.statefulSet() && e.cfg.EnableStatefulSet:
	case h.virtualMachine():
	default:
		return false
	}
	if c.Spec.Interface != req.Interface {
		return true // another interface: decided by that interface's ADD
	}
	for _, fam := range req.Families {
		if int64(fam.Family) == c.Spec.IPVersion {
			if len(fam.Addresses) > 0 {
				if a, err := parseAddr(c.Spec.Address); err != nil || !slices.Contains(fam.Addresses, a) {
					return false // the replica now asks for another address
				}
			}
			return slices.Contains(fam.Pools, c.Spec.Pool)
		}
	}
	return false
}

func find(claims []*v2beta1.SpiderIPClaim, ifName string, fam ranges.Family) *v2beta1.SpiderIPClaim {
	for _, c := range claims {
		if c.Spec.Interface == ifName && c.Spec.IPVersion == int64(fam) {
			return c
		}
	}
	return nil
}

// bind makes an existing claim point at the request's pod and sandbox.
func (e *Engine) bind(ctx context.Context, c *v2beta1.SpiderIPClaim, req *Request) (*v2beta1.SpiderIPClaim, error) {
	want := c.DeepCopy()
	e.holderSpec(&want.Spec, req)
	want.SyncLabels()
	if equality.Semantic.DeepEqual(want.Spec, c.Spec) && equality.Semantic.DeepEqual(want.Labels, c.Labels) {
		return c, nil
	}
	if err := e.claims.Rebind(ctx, want); err != nil {
		return nil, APIError(err, "failed to re-bind address %s to pod %q", c.Spec.Address, req.Holder)
	}
	if c.Spec.PodUID != want.Spec.PodUID {
		e.hook(e.cfg.Hooks.Allocated, want)
		if c.Spec.PodUID != "" && e.cfg.Hooks.Rebound != nil {
			e.cfg.Hooks.Rebound(c, want)
		}
	}
	return want, nil
}

// holderSpec fills in everything of a claim's spec that names its holder.
func (e *Engine) holderSpec(spec *v2beta1.IPClaimSpec, req *Request) {
	h := req.Holder
	spec.PodNamespace, spec.PodName, spec.PodUID = h.Namespace, h.Name, h.UID
	spec.OwnerKind, spec.OwnerName = h.OwnerKind, h.OwnerName
	spec.Interface, spec.ContainerID, spec.Node = req.Interface, req.ContainerID, e.cfg.Node
	spec.CleanGateway = req.CleanGateway
	spec.MAC = ""
	if req.MAC != nil {
		spec.MAC = req.MAC.String()
	}
}

// claim creates a claim for a new address of one family from the first
// candidate pool that has one.
func (e *Engine) claim(ctx context.Context, req *Request, fam Family) (*v2beta1.SpiderIPClaim, error) {
	var spec v2beta1.IPClaimSpec
	e.holderSpec(&spec, req)
	rejected := slices.Clone(fam.Rejected)
	reject := func(name, reason string, args ...any) {
		rejected = append(rejected, selection.RejectedPool{Name: name, Reason: fmt.Sprintf(reason, args...)})
	}
	var full []string
	for _, name := range fam.Pools {
		s, err := e.candidate(ctx, name, fam.Family, reject)
		if err != nil {
			return nil, err
		}
		if s == nil {
			continue
		}
		spec.Pool = name
		for conflicts := 0; ; {
			addr, err := s.reserve(func(a netip.Addr) bool { return e.quarantine.Has(s.pool.UID, a) })
			if errors.Is(err, errPoolFull) {
				full = append(full, name)
				used, total := s.usage()
				if q := s.refused(e.quarantine); q > 0 {
					reject(name, "%d/%d allocated, %d more refused for %v after an address conflict", used, total, q, e.cfg.Quarantine)
					break
				}
				reject(name, "%d/%d allocated", used, total)
				break
			}
			c, err := e.create(ctx, s, addr, spec, req)
			if err != nil || c != nil {
				return c, err
			}
			if conflicts++; conflicts >= MaxConflictsPerPool {
				return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonAPI,
					Msg: fmt.Sprintf("failed to allocate %s address for pod %q: pool %q: %d addresses in a row were taken concurrently", fam.Family, req.Holder, name, conflicts)}
			}
		}
	}
	npe := &selection.NoPoolError{Interface: req.Interface, Family: fam.Family, Rule: fam.Rule, Rejected: rejected}
	return nil, &nodeapi.ErrorResponse{
		Code:    nodeapi.CodeTryAgainLater,
		Reason:  nodeapi.ReasonExhausted,
		Pools:   full,
		Msg:     fmt.Sprintf("failed to allocate %s address for interface %q of pod %q: no candidate pool has a free address", fam.Family, req.Interface, req.Holder),
		Details: nodeapi.TrimDetails(npe.Error()),
	}
}

// candidate returns the state of pool name when it can serve family fam;
// otherwise it tells reject why not and returns nil.
func (e *Engine) candidate(ctx context.Context, name string, fam ranges.Family, reject func(name, reason string, args ...any)) (*poolState, error) {
	s, err := e.pools.get(ctx, name)
	if err != nil {
		return nil, APIError(err, "failed to read SpiderIPPool %q", name)
	}
	switch {
	case s == nil:
		reject(name, "not found")
	case s.err != nil:
		reject(name, "invalid: %v", s.err)
	case s.layout.Family != fam:
		reject(name, "is an %s pool", s.layout.Family)
	case s.pool.Spec.Disable != nil && *s.pool.Spec.Disable:
		reject(name, "disabled")
	default:
		return s, nil
	}
	return nil, nil
}

// claimFixed claims the first of fam.Addresses that no one else holds, from
// the first candidate pool that contains it. An address is never taken from
// a pool the pod may not use: fam.Pools are the candidates selection allowed.
func (e *Engine) claimFixed(ctx context.Context, req *Request, fam Family) (*v2beta1.SpiderIPClaim, error) {
	var spec v2beta1.IPClaimSpec
	e.holderSpec(&spec, req)
	var why []string
	for _, want := range fam.Addresses {
		var rejected []string
		reject := func(name, reason string, args ...any) {
			rejected = append(rejected, fmt.Sprintf("pool %q: %s", name, fmt.Sprintf(reason, args...)))
		}
		held := ""
		for _, name := range fam.Pools {
			s, err := e.candidate(ctx, name, fam.Family, reject)
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			if !s.claimed.Contains(want) {
				if s.layout.IPs.Contains(want) {
					reject(name, "holds %s back (excludeIPs, its gateway or a SpiderReservedIP)", want)
				} else {
					reject(name, "does not contain %s", want)
				}
				continue
			}
			if e.quarantine.Has(s.pool.UID, want) {
				reject(name, "%s was found in use on the network and is held back until its quarantine ends", want)
				continue
			}
			if err := s.reserveAddr(want); err != nil {
				held = e.holderOf(ctx, name, want)
				break
			}
			spec.Pool = name
			c, err := e.create(ctx, s, want, spec, req)
			if err != nil || c != nil {
				return c, err
			}
			held = e.holderOf(ctx, name, want)
			break
		}
		switch {
		case held != "":
			why = append(why, fmt.Sprintf("%s is held by %s", want, held))
		case len(rejected) == 0:
			why = append(why, fmt.Sprintf("%s: no candidate pool", want))
		default:
			why = append(why, fmt.Sprintf("%s: %s", want, strings.Join(rejected, "; ")))
		}
	}
	what := fmt.Sprintf("fixed %s address %s", fam.Family, fam.Addresses[0])
	if len(fam.Addresses) > 1 {
		what = fmt.Sprintf("an %s address of its list (%d addresses, all unavailable: the list is used up)", fam.Family, len(fam.Addresses))
	}
	return nil, &nodeapi.ErrorResponse{
		Code:    nodeapi.CodeTryAgainLater,
		Reason:  nodeapi.ReasonFixedUnavailable,
		Msg:     fmt.Sprintf("failed to allocate %s for interface %q of pod %q", what, req.Interface, req.Holder),
		Details: nodeapi.TrimDetails(strings.Join(why, "; ")),
	}
}

// create records the claim of addr, reserved in pool state s, and ends the
// reservation. It returns nil and no error when someone else claimed the
// address first (the Taken hook is told).
func (e *Engine) create(ctx context.Context, s *poolState, addr netip.Addr, spec v2beta1.IPClaimSpec, req *Request) (*v2beta1.SpiderIPClaim, error) {
	c := v2beta1.NewClaim(addr, spec)
	taken, err := e.claims.Create(ctx, c)
	s.done(addr, err == nil, taken)
	switch {
	case err != nil:
		return nil, APIError(err, "failed to claim address %s of pool %q for pod %q", addr, spec.Pool, req.Holder)
	case taken:
		e.hookTaken()
		return nil, nil
	}
	return c, nil
}

// ClaimGetter is implemented by a ClaimStore whose ByPool answers claims by
// name and address only: the engine reads the one claim it names in a
// message with it.
type ClaimGetter interface {
	// Get returns the claim named name; nil (and no error) when it does
	// not exist.
	Get(ctx context.Context, name string) (*v2beta1.SpiderIPClaim, error)
}

// holderOf names who holds addr in pool: "pod ns/name" from its claim.
func (e *Engine) holderOf(ctx context.Context, pool string, addr netip.Addr) string {
	claims, err := e.claims.ByPool(ctx, pool)
	if err == nil {
		for _, c := range claims {
			if c.Spec.Address == addr.String() {
				if g, ok := e.claims.(ClaimGetter); ok {
					if full, err := g.Get(ctx, c.Name); err == nil && full != nil {
						c = full
					}
				}
				if c.Spec.PodName == "" {
					return fmt.Sprintf("SpiderIPClaim %q", c.Name)
				}
				return fmt.Sprintf("pod %s/%s (SpiderIPClaim %q)", c.Spec.PodNamespace, c.Spec.PodName, c.Name)
			}
		}
	}
	return "another allocation in progress"
}

// Release deletes claims (see ClaimStore.Release) and frees their addresses.
// A claim that changed since it was read is left alone and the release fails
// with try-again, so the caller decides again on fresh data.
func (e *Engine) Release(ctx context.Context, claims []*v2beta1.SpiderIPClaim) error {
	for _, c := range claims {
		err := e.claims.Release(ctx, c)
		if errors.Is(err, ErrChanged) {
			return &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonAPI,
				Msg: fmt.Sprintf("failed to release address %s of pod %q: its SpiderIPClaim changed while being released; deciding again", c.Spec.Address, c.Spec.PodNamespace+"/"+c.Spec.PodName)}
		}
		if err != nil {
			return APIError(err, "failed to release address %s of pod %q", c.Spec.Address, c.Spec.PodNamespace+"/"+c.Spec.PodName)
		}
		e.pools.markAddress(c.Spec.Address, false)
		e.hook(e.cfg.Hooks.Released, c)
	}
	return nil
}

// rollbackClaims deletes the claims a failed request created. A claim whose
// deletion fails is retried in the background with a bounded exponential
// back-off (Config.RollbackAttempts) that stops when the engine's lifetime
// ends (Start); what is still not deleted then stays pending and is handed to
// the garbage collection (RetryRollbacks, and the holder's lifecycle rules
// once the pod is gone). Every retry runs under Config.LockHolder and only
// while the claim is still pending, so a claim that a later request of the
// same pod handed out again is never deleted under it.
func (e *Engine) rollbackClaims(created []*v2beta1.SpiderIPClaim) {
	for _, c := range created {
		if e.undo(c) {
			continue
		}
		e.rbMu.Lock()
		e.pending[c.Name] = c
		e.rbMu.Unlock()
		e.rollback.Add(1)
		go func() {
			defer e.rollback.Done()
			e.retryRollback(c)
		}()
	}
}

// undo deletes c, a claim of a failed request; it reports whether c is
// gone (deleted, or changed since: someone else holds it now).
func (e *Engine) undo(c *v2beta1.SpiderIPClaim) bool {
	ctx, cancel := context.WithTimeout(e.lifetime(), 10*time.Second)
	defer cancel()
	err := e.claims.Release(ctx, c)
	if err == nil || errors.Is(err, ErrChanged) {
		e.pools.markAddress(c.Spec.Address, false)
		return true
	}
	if e.cfg.Hooks.RollbackFailed != nil {
		e.cfg.Hooks.RollbackFailed(c, err)
	}
	return false
}

// retryRollback retries the deletion of the pending claim c until it
// succeeds, the attempts run out or the engine's lifetime ends.
func (e *Engine) retryRollback(c *v2beta1.SpiderIPClaim) {
	life := e.lifetime()
	delay := e.cfg.RollbackBackoff
	if delay <= 0 {
		delay = DefaultRollbackBackoff
	}
	attempts := e.cfg.RollbackAttempts
	if attempts <= 0 {
		attempts = DefaultRollbackAttempts
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for i := 0; i < attempts; i++ {
		select {
		case <-life.Done():
			e.abandon(c)
			return
		case <-t.C:
		}
		if e.retryPending(c) {
			return
		}
		delay = min(2*delay, maxRollbackDelay)
		t.Reset(delay)
	}
	e.abandon(c)
}

// retryPending makes one attempt at deleting the pending claim c under its
// holder's lock; it reports whether c is no longer pending.
func (e *Engine) retryPending(c *v2beta1.SpiderIPClaim) bool {
	unlock := e.lockHolder(c)
	defer unlock()
	e.rbMu.Lock()
	still := e.pending[c.Name] == c
	e.rbMu.Unlock()
	if !still {
		return true // handed out again, or released by someone else
	}
	if !e.undo(c) {
		return false
	}
	e.forget(c.Name, c)
	return true
}

func (e *Engine) abandon(c *v2beta1.SpiderIPClaim) {
	if e.cfg.Hooks.RollbackAbandoned != nil && e.isPending(c) {
		e.cfg.Hooks.RollbackAbandoned(c)
	}
}

func (e *Engine) isPending(c *v2beta1.SpiderIPClaim) bool {
	e.rbMu.Lock()
	defer e.rbMu.Unlock()
	return e.pending[c.Name] == c
}

// forget drops the claim name from the pending rollbacks; with c set, only
// if it is still that object.
func (e *Engine) forget(name string, c *v2beta1.SpiderIPClaim) {
	e.rbMu.Lock()
	defer e.rbMu.Unlock()
	if cur, ok := e.pending[name]; ok && (c == nil || cur == c) {
		delete(e.pending, name)
	}
}

func (e *Engine) lockHolder(c *v2beta1.SpiderIPClaim) func() {
	if e.cfg.LockHolder == nil {
		return func() {}
	}
	return e.cfg.LockHolder(c.Spec.PodNamespace, c.Spec.PodName)
}

// PendingRollbacks returns the claims of failed requests that could not be
// deleted yet.
func (e *Engine) PendingRollbacks() []*v2beta1.SpiderIPClaim {
	e.rbMu.Lock()
	defer e.rbMu.Unlock()
	out := make([]*v2beta1.SpiderIPClaim, 0, len(e.pending))
	for _, c := range e.pending {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *v2beta1.SpiderIPClaim) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RetryRollbacks makes one attempt at deleting every pending claim (the
// garbage collection's share of a rollback the background retries gave up
// on); it returns how many are still pending.
func (e *Engine) RetryRollbacks() int {
	left := 0
	for _, c := range e.PendingRollbacks() {
		if !e.retryPending(c) {
			left++
		}
	}
	return left
}

// Start sets the engine's lifetime: background rollbacks stop when ctx is
// done (their claims stay pending for RetryRollbacks).
func (e *Engine) Start(ctx context.Context) {
	e.rbMu.Lock()
	defer e.rbMu.Unlock()
	e.life = ctx
}

func (e *Engine) lifetime() context.Context {
	e.rbMu.Lock()
	defer e.rbMu.Unlock()
	if e.life == nil {
		return context.Background()
	}
	return e.life
}

// Wait waits for background rollbacks to finish or give up.
func (e *Engine) Wait() { e.rollback.Wait() }

// Observe keeps the pools' claimed addresses in step with a claim that
// appeared (cur), changed or disappeared (old, cur nil), as the claim
// informer reports it.
func (e *Engine) Observe(old, cur *v2beta1.SpiderIPClaim) {
	if old != nil && (cur == nil || old.Spec.Address != cur.Spec.Address) {
		e.pools.markAddress(old.Spec.Address, false)
	}
	if cur != nil {
		e.pools.markAddress(cur.Spec.Address, true)
	}
}

// PoolChanged drops the state of pool name; the next request rebuilds it.
func (e *Engine) PoolChanged(name string) { e.pools.invalidate(name) }

// ReservedChanged drops every pool's state (a SpiderReservedIP changed).
func (e *Engine) ReservedChanged() { e.pools.invalidateAll() }

// Layout returns the parsed layout of pool name (subnet, gateway, usable
// addresses) and the pool; nil when the pool does not exist or is invalid.
func (e *Engine) Layout(ctx context.Context, name string) (*ranges.Pool, *v2beta1.SpiderIPPool, error) {
	s, err := e.pools.get(ctx, name)
	if err != nil || s == nil || s.err != nil {
		return nil, nil, err
	}
	return s.layout, s.pool, nil
}

// QuarantineClaim keeps the address of c (in its pool, by UID) from being
// offered again for the quarantine period and returns its end.
func (e *Engine) QuarantineClaim(ctx context.Context, c *v2beta1.SpiderIPClaim) (time.Time, error) {
	addr, err := parseAddr(c.Spec.Address)
	if err != nil {
		return time.Time{}, fmt.Errorf("claim %q: %w", c.Name, err)
	}
	pool, err := e.src.Pool(ctx, c.Spec.Pool)
	if err != nil {
		return time.Time{}, APIError(err, "failed to get SpiderIPPool %q", c.Spec.Pool)
	}
	uid := types.UID("") // the pool is gone; a pool created again has another UID
	if pool != nil {
		uid = pool.UID
	}
	return e.quarantine.Add(uid, addr), nil
}

func (e *Engine) hook(f func(*v2beta1.SpiderIPClaim), c *v2beta1.SpiderIPClaim) {
	if f != nil {
		f(c)
	}
}

func (e *Engine) hookTaken() {
	if e.cfg.Hooks.Taken != nil {
		e.cfg.Hooks.Taken()
	}
}
