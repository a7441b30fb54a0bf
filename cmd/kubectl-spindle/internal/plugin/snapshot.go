package plugin

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// IPAM is the cluster's IPAM objects.
type IPAM struct {
	Pools    []v2beta1.SpiderIPPool
	Claims   []v2beta1.SpiderIPClaim
	Reserved []v2beta1.SpiderReservedIP
}

func readIPAM(ctx context.Context, c client.Client) (*IPAM, error) {
	s := &IPAM{}
	pools := &v2beta1.SpiderIPPoolList{}
	if err := c.List(ctx, pools); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	claims := &v2beta1.SpiderIPClaimList{}
	if err := c.List(ctx, claims); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPClaims: %w", err)
	}
	reserved := &v2beta1.SpiderReservedIPList{}
	if err := c.List(ctx, reserved); err != nil {
		return nil, fmt.Errorf("failed to list SpiderReservedIPs: %w", err)
	}
	s.Pools, s.Claims, s.Reserved = pools.Items, claims.Items, reserved.Items
	sort.Slice(s.Pools, func(i, j int) bool { return s.Pools[i].Name < s.Pools[j].Name })
	return s, nil
}

// poolUsage is a pool's capacity counted the way the allocator counts it:
// the usable addresses (spec.ips minus excludeIPs, the gateway and the
// reserved addresses) and which of them the pool's claims hold.
type poolUsage struct {
	family ranges.Family
	layout *ranges.Pool
	err    error
	// claims are the pool's claims (spec.pool); held those inside usable.
	claims int
	held   map[netip.Addr]*v2beta1.SpiderIPClaim
}

func (u *poolUsage) total() uint64 {
	if u.layout == nil {
		return 0
	}
	return u.layout.Usable.Count()
}

func (u *poolUsage) free() uint64 {
	t := u.total()
	if h := uint64(len(u.held)); h < t {
		return t - h
	}
	return 0
}

// usage computes every pool's usage.
func (s *IPAM) usage() map[string]*poolUsage {
	res := make([]*v2beta1.SpiderReservedIP, len(s.Reserved))
	for i := range s.Reserved {
		res[i] = &s.Reserved[i]
	}
	reserved := map[ranges.Family]ranges.Set{}
	for _, f := range []ranges.Family{ranges.V4, ranges.V6} {
		// A reserved address that does not parse reserves nothing, as for
		// the allocator (which fails the whole family instead).
		reserved[f], _ = ranges.ParseReserved(res, f)
	}
	out := map[string]*poolUsage{}
	for i := range s.Pools {
		p := &s.Pools[i]
		u := &poolUsage{held: map[netip.Addr]*v2beta1.SpiderIPClaim{}}
		u.family, u.err = ranges.PoolFamily(&p.Spec)
		if u.err == nil {
			u.layout, u.err = ranges.ParsePool(&p.Spec, reserved[u.family])
		}
		out[p.Name] = u
	}
	for i := range s.Claims {
		c := &s.Claims[i]
		u := out[c.Spec.Pool]
		if u == nil {
			continue
		}
		u.claims++
		if a, err := netip.ParseAddr(c.Spec.Address); err == nil && u.layout != nil && u.layout.Usable.Contains(a.Unmap()) {
			u.held[a.Unmap()] = c
		}
	}
	return out
}

// poolContaining returns the names of the pools whose spec.ips contain addr.
func (s *IPAM) poolsContaining(usage map[string]*poolUsage, addr netip.Addr) []string {
	var out []string
	for i := range s.Pools {
		if u := usage[s.Pools[i].Name]; u != nil && u.layout != nil && u.layout.IPs.Contains(addr) {
			out = append(out, s.Pools[i].Name)
		}
	}
	return out
}
