// Package subnets makes a SpiderSubnet the parent of the SpiderIPPools that
// have its spec.subnet, whichever is created first: the pools get an owner
// reference to the subnet and the LabelSubnetCIDR label, inherit the
// gateway and routes they do not set, and must keep their addresses inside
// the subnet's usable addresses (its ips minus excludeIPs and gateway). The
// subnet's status counts what its pools use.
//
// The functions here are pure; package subnetcontroller applies them to the
// cluster and the webhooks check them at admission.
package subnets

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// LabelSubnetCIDR is set on every pool of a subnet to CIDRLabel of the
// subnet ("10-244-0-0-16"), so `kubectl get sp -l` finds a subnet's pools.
const LabelSubnetCIDR = "ipam.spidernet.io/subnet-cidr"

// CIDRLabel is the LabelSubnetCIDR value of a subnet: its CIDR with '.',
// ':' and '/' written as '-'.
func CIDRLabel(p netip.Prefix) string {
	return strings.NewReplacer(".", "-", ":", "-", "/", "-").Replace(p.Masked().String())
}

// Layout is a subnet's prefix and usable addresses.
type Layout struct {
	Subnet netip.Prefix
	Usable ranges.Set
}

// Parse returns the layout of s. Without spec.ips the whole prefix is
// given to pools.
func Parse(s *v2beta1.SpiderSubnet) (*Layout, error) {
	spec := &v2beta1.IPPoolSpec{Subnet: s.Spec.Subnet, IPVersion: s.Spec.IPVersion, IPs: s.Spec.IPs,
		ExcludeIPs: s.Spec.ExcludeIPs, Gateway: s.Spec.Gateway}
	if len(spec.IPs) == 0 {
		if p, err := netip.ParsePrefix(strings.TrimSpace(s.Spec.Subnet)); err == nil {
			spec.IPs = []string{ranges.Range{First: p.Masked().Addr(), Last: lastAddr(p.Masked())}.String()}
		}
	}
	p, err := ranges.ParsePool(spec, ranges.Set{})
	if err != nil {
		return nil, fmt.Errorf("SpiderSubnet %q: %w", s.Name, err)
	}
	return &Layout{Subnet: p.Subnet, Usable: p.Usable}, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		hostBits := max(0, min(8, (i+1)*8-p.Bits()))
		b[i] |= byte(1<<hostBits - 1)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Of returns the subnet among subnets whose prefix is the pool's; nil when
// there is none. Should two subnets of that prefix exist (created at the
// same moment, both before the webhook saw the other), the first created
// is the pool's (see Shadowing).
func Of(pool *v2beta1.SpiderIPPool, subnets []v2beta1.SpiderSubnet) *v2beta1.SpiderSubnet {
	p, err := netip.ParsePrefix(strings.TrimSpace(pool.Spec.Subnet))
	if err != nil {
		return nil
	}
	var out *v2beta1.SpiderSubnet
	for i := range subnets {
		s, err := netip.ParsePrefix(strings.TrimSpace(subnets[i].Spec.Subnet))
		if err == nil && s.Masked() == p.Masked() && (out == nil || before(&subnets[i], out)) {
			out = &subnets[i]
		}
	}
	return out
}

// Shadowing returns the subnet that s yields to: one of all whose prefix
// overlaps s's and that was created before it (by creation time, then
// name), or nil. The webhook refuses overlapping subnets, but two created
// at the same moment can both pass it; only the first then adopts pools
// and gives addresses, so no address has two parents.
func Shadowing(s *v2beta1.SpiderSubnet, all []v2beta1.SpiderSubnet) *v2beta1.SpiderSubnet {
	var out *v2beta1.SpiderSubnet
	for i := range all {
		o := &all[i]
		if o.Name != s.Name && o.DeletionTimestamp == nil && before(o, s) && Overlap(o, s) && (out == nil || before(o, out)) {
			out = o
		}
	}
	return out
}

// Overlap reports whether the prefixes of a and b overlap.
func Overlap(a, b *v2beta1.SpiderSubnet) bool {
	ap, err := netip.ParsePrefix(strings.TrimSpace(a.Spec.Subnet))
	if err != nil {
		return false
	}
	bp, err := netip.ParsePrefix(strings.TrimSpace(b.Spec.Subnet))
	return err == nil && ap.Masked().Overlaps(bp.Masked())
}

// before orders subnets by creation time, then name.
func before(a, b *v2beta1.SpiderSubnet) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// PoolUsable is what pool takes from its subnet: its ips minus its
// excludeIPs and gateway.
func PoolUsable(pool *v2beta1.SpiderIPPool) (ranges.Set, error) {
	p, err := ranges.ParsePool(&pool.Spec, ranges.Set{})
	if err != nil {
		return ranges.Set{}, err
	}
	return p.Usable, nil
}

// Outside returns the addresses of pool that are not usable in the subnet
// with layout l.
func Outside(l *Layout, pool *v2beta1.SpiderIPPool) (ranges.Set, error) {
	u, err := PoolUsable(pool)
	if err != nil {
		return ranges.Set{}, err
	}
	return u.Subtract(l.Usable), nil
}

// Adopt makes pool a child of subnet: it sets the owner reference (as the
// controller unless the pool has another one) and the label, and copies the
// subnet's gateway and routes into a pool that sets none. It reports
// whether pool changed.
func Adopt(pool *v2beta1.SpiderIPPool, subnet *v2beta1.SpiderSubnet) bool {
	changed := false
	want := CIDRLabel(mustPrefix(subnet.Spec.Subnet))
	if pool.Labels[LabelSubnetCIDR] != want {
		if pool.Labels == nil {
			pool.Labels = map[string]string{}
		}
		pool.Labels[LabelSubnetCIDR] = want
		changed = true
	}
	if subnet.UID != "" && !slices.ContainsFunc(pool.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == subnet.UID }) {
		ref := metav1.OwnerReference{APIVersion: v2beta1.GroupVersion.String(), Kind: "SpiderSubnet", Name: subnet.Name, UID: subnet.UID}
		if metav1.GetControllerOfNoCopy(pool) == nil {
			ref.Controller = ptrTrue()
		}
		// A reference to an earlier subnet of that name is replaced.
		pool.OwnerReferences = slices.DeleteFunc(pool.OwnerReferences, func(r metav1.OwnerReference) bool {
			return r.Kind == "SpiderSubnet" && r.APIVersion == ref.APIVersion
		})
		pool.OwnerReferences = append(pool.OwnerReferences, ref)
		changed = true
	}
	return Inherit(pool, subnet) || changed
}

// Inherit copies the subnet's gateway and routes into a pool that sets
// none, and reports whether it did.
func Inherit(pool *v2beta1.SpiderIPPool, subnet *v2beta1.SpiderSubnet) bool {
	changed := false
	if pool.Spec.Gateway == nil && subnet.Spec.Gateway != nil && *subnet.Spec.Gateway != "" {
		gw := *subnet.Spec.Gateway
		pool.Spec.Gateway = &gw
		changed = true
	}
	if len(pool.Spec.Routes) == 0 && len(subnet.Spec.Routes) > 0 {
		pool.Spec.Routes = slices.Clone(subnet.Spec.Routes)
		changed = true
	}
	return changed
}

// poolRecord is one entry of status.controlledIPPools.
type poolRecord struct {
	IPs []string `json:"ips"`
}

// Status is the status of the subnet with layout l whose pools are pools:
// totalIPCount is its usable addresses, allocatedIPCount the addresses its
// pools take, controlledIPPools the pools and their addresses (JSON).
func Status(l *Layout, pools []*v2beta1.SpiderIPPool) v2beta1.SubnetStatus {
	total := int64(l.Usable.Count())
	var given ranges.Set
	records := map[string]poolRecord{}
	for _, p := range pools {
		u, err := PoolUsable(p)
		if err != nil {
			continue
		}
		in := u.Subtract(u.Subtract(l.Usable))
		given = given.Union(in)
		records[p.Name] = poolRecord{IPs: in.Strings()}
	}
	allocated := int64(given.Count())
	var controlled *string
	if len(records) > 0 {
		b, _ := json.Marshal(records) // map keys are sorted
		s := string(b)
		controlled = &s
	}
	return v2beta1.SubnetStatus{TotalIPCount: &total, AllocatedIPCount: &allocated, ControlledIPPools: controlled}
}

func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(strings.TrimSpace(s))
	return p
}

func ptrTrue() *bool { t := true; return &t }
