package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// poolTable holds the in-memory allocation state of every pool the engine
// has allocated from. A state is built lazily from the Source and the
// ClaimStore and kept current by Observe; a pool or reserved-address change
// drops it so the next request rebuilds it.
type poolTable struct {
	e      *Engine
	mu     sync.RWMutex
	states map[string]*poolState
}

// poolState is one pool's view: which usable addresses are claimed (from the
// informer) and which are being claimed by requests of this agent.
type poolState struct {
	name string
	gen  int64 // metadata.generation of the pool the state was built from

	pool *v2beta1.SpiderIPPool
	// layout is the parsed pool; nil with err set when the pool is invalid.
	layout *ranges.Pool
	err    error

	mu       sync.Mutex
	claimed  *ranges.Allocator // addresses with a claim in the informer
	busy     *ranges.Allocator // claimed or in flight: what NextFree skips
	inflight map[netip.Addr]struct{}
	cursor   uint64
}

func (t *poolTable) invalidate(name string) {
	t.mu.Lock()
	delete(t.states, name)
	t.mu.Unlock()
}

func (t *poolTable) invalidateAll() {
	t.mu.Lock()
	t.states = map[string]*poolState{}
	t.mu.Unlock()
}

// markAddress records a claim for addr appearing (used) or disappearing in
// every pool state that contains it (pools may overlap).
func (t *poolTable) markAddress(address string, used bool) {
	addr, err := parseAddr(address)
	if err != nil {
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, s := range t.states {
		if s.claimed == nil || !s.claimed.Contains(addr) {
			continue
		}
		s.mu.Lock()
		s.mark(addr, used)
		s.mu.Unlock()
	}
}

func (s *poolState) mark(addr netip.Addr, used bool) {
	if used {
		_ = s.claimed.Allocate(addr)
		_ = s.busy.Allocate(addr)
		return
	}
	s.claimed.Release(addr)
	if _, ok := s.inflight[addr]; !ok {
		s.busy.Release(addr)
	}
}

// get returns the current state of pool name, building it when needed. It
// returns (nil, nil) when the pool does not exist.
func (t *poolTable) get(ctx context.Context, name string) (*poolState, error) {
	pool, err := t.e.src.Pool(ctx, name)
	if err != nil || pool == nil {
		return nil, err
	}
	t.mu.RLock()
	s := t.states[name]
	t.mu.RUnlock()
	// Status writes (the counters) do not bump the generation, so they do
	// not cost a rebuild.
	if s != nil && s.gen == pool.Generation {
		return s, nil
	}
	return t.build(ctx, pool)
}

func (t *poolTable) build(ctx context.Context, pool *v2beta1.SpiderIPPool) (*poolState, error) {
	s := &poolState{name: pool.Name, gen: pool.Generation, pool: pool, inflight: map[netip.Addr]struct{}{}}
	fam, err := ranges.PoolFamily(&pool.Spec)
	if err != nil {
		s.err = err
		return s, nil
	}
	reserved, err := t.e.src.Reserved(ctx, fam)
	if err != nil {
		return nil, err
	}
	if s.layout, s.err = ranges.ParsePool(&pool.Spec, reserved); s.err != nil {
		return s, nil
	}
	if s.claimed, s.err = ranges.NewAllocator(s.layout.Usable); s.err != nil {
		return s, nil
	}
	s.busy = s.claimed.Clone()
	if size := s.claimed.Size(); size > 0 {
		s.cursor = t.e.cfg.CursorSeed % size
	}
	// Register before listing so no claim event is missed: an event that
	// arrives in between is applied twice, which is idempotent. Lock order
	// is t.mu before s.mu (as in markAddress), and s.mu is held until the
	// bitmaps are complete so no request reserves from a partial state.
	t.mu.Lock()
	if cur := t.states[pool.Name]; cur != nil && cur.gen == pool.Generation {
		t.mu.Unlock()
		return cur, nil
	}
	s.mu.Lock()
	t.states[pool.Name] = s
	t.mu.Unlock()
	// Any claim can lie inside this pool (pools may overlap), but in
	// practice claims carry their pool; listing by the pool index keeps the
	// build proportional to the pool, and overlapping claims are found by
	// AlreadyExists on the first attempt.
	claims, err := t.e.claims.ByPool(ctx, pool.Name)
	if err == nil {
		for _, c := range claims {
			if addr, err := parseAddr(c.Spec.Address); err == nil {
				s.mark(addr, true)
			}
		}
	}
	s.mu.Unlock()
	if err != nil {
		t.invalidate(pool.Name)
		return nil, fmt.Errorf("failed to list the SpiderIPClaims of pool %q: %w", pool.Name, err)
	}
	return s, nil
}

// errPoolFull is returned by reserve when no address is free.
var errPoolFull = errors.New("pool is full")

// reserve picks a free address that skip does not refuse (quarantined
// addresses) and marks it in flight. The caller must call done with the
// outcome of its Create.
func (s *poolState) reserve(skip func(netip.Addr) bool) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cursor := s.cursor
	var first netip.Addr
	var addr netip.Addr
	var off uint64
	for {
		var ok bool
		addr, off, ok = s.busy.NextFree(cursor)
		if !ok || addr == first {
			// Full, or every free address is refused.
			return netip.Addr{}, errPoolFull
		}
		if skip == nil || !skip(addr) {
			break
		}
		if !first.IsValid() {
			first = addr
		}
		cursor = off + 1
	}
	_ = s.busy.Allocate(addr)
	s.inflight[addr] = struct{}{}
	s.cursor = off + 1
	return addr, nil
}

// errHeld is returned by reserveAddr for an address that is claimed or being
// claimed.
var errHeld = errors.New("address is held")

// reserveAddr marks addr in flight, like reserve, for a request that asks for
// that address. It fails with errHeld when the address is claimed or being
// claimed; addr must be one of the pool's usable addresses.
func (s *poolState) reserveAddr(addr netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy.Has(addr) {
		return errHeld
	}
	_ = s.busy.Allocate(addr)
	s.inflight[addr] = struct{}{}
	return nil
}

// done ends an in-flight reservation: claimed says whether a claim for addr
// now exists (ours, or someone else's on AlreadyExists). conflict says the
// address was taken by another agent whose claim this cache has not seen
// yet: the search then jumps to a random offset, away from the other
// agent's trail, instead of walking into its fresh claims one by one.
func (s *poolState) done(addr netip.Addr, claimed, conflict bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, addr)
	if conflict {
		s.cursor = rand.Uint64()
	}
	if claimed {
		_ = s.claimed.Allocate(addr)
		return
	}
	if !s.claimed.Has(addr) {
		s.busy.Release(addr)
	}
}

// refused returns how many of the pool's unclaimed addresses q holds back.
func (s *poolState) refused(q *Quarantine) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return q.Count(s.pool.UID, func(a netip.Addr) bool { return s.claimed.Contains(a) && !s.claimed.Has(a) })
}

// parseAddr parses a claim's address (unmapped, so an IPv4-mapped IPv6
// spelling finds the IPv4 address).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}

// usage returns "allocated/total" for error messages.
func (s *poolState) usage() (uint64, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed.Used(), s.claimed.Size()
}
