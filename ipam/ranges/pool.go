package ranges

import (
	"fmt"
	"net/netip"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Pool is the parsed address layout of a SpiderIPPool.
type Pool struct {
	// Family is the pool's IP family.
	Family Family
	// Subnet is spec.subnet, masked (10.6.1.0/16 becomes 10.6.0.0/16).
	Subnet netip.Prefix
	// Gateway is spec.gateway; the zero Addr when unset.
	Gateway netip.Addr
	// IPs is spec.ips as a canonical set.
	IPs Set
	// Usable is what the pool may hand out: IPs minus spec.excludeIPs, minus
	// the gateway, minus the reserved addresses given to ParsePool.
	Usable Set
}

// PoolFamily returns the family of a pool: spec.ipVersion when set, else the
// family of spec.subnet. It returns an error when neither tells.
func PoolFamily(spec *v2beta1.IPPoolSpec) (Family, error) {
	if spec.IPVersion != nil {
		switch Family(*spec.IPVersion) {
		case V4, V6:
			return Family(*spec.IPVersion), nil
		}
		return 0, fmt.Errorf("invalid spec.ipVersion %d: must be 4 or 6", *spec.IPVersion)
	}
	p, err := netip.ParsePrefix(spec.Subnet)
	if err != nil {
		return 0, fmt.Errorf("invalid spec.subnet %q: %w", spec.Subnet, err)
	}
	return FamilyOf(p.Addr()), nil
}

// ParsePool validates spec and computes its usable addresses. reserved holds
// addresses no pool may hand out (see ParseReserved); addresses of the other
// family are ignored. Errors name the field and entry at fault.
//
// Only addresses listed in spec.ips are usable: a pool that lists the network
// or broadcast address of its subnet hands it out, as Spiderpool does.
func ParsePool(spec *v2beta1.IPPoolSpec, reserved Set) (*Pool, error) {
	subnet, err := netip.ParsePrefix(spec.Subnet)
	if err != nil {
		return nil, fmt.Errorf("invalid spec.subnet %q: %w; write a CIDR such as 10.6.0.0/16", spec.Subnet, err)
	}
	if subnet.Addr().Zone() != "" {
		return nil, fmt.Errorf("invalid spec.subnet %q: zones are not allowed", spec.Subnet)
	}
	subnet = subnet.Masked()
	fam := FamilyOf(subnet.Addr())
	if spec.IPVersion != nil && Family(*spec.IPVersion) != fam {
		return nil, fmt.Errorf("invalid spec.ipVersion %d: spec.subnet %q is %s", *spec.IPVersion, spec.Subnet, fam)
	}
	p := &Pool{Family: fam, Subnet: subnet}
	if spec.Gateway != nil && *spec.Gateway != "" {
		gw, err := parseAddr(*spec.Gateway)
		if err != nil {
			return nil, fmt.Errorf("invalid spec.gateway %q: %w", *spec.Gateway, err)
		}
		if FamilyOf(gw) != fam {
			return nil, fmt.Errorf("invalid spec.gateway %q: %s gateway in an %s pool", *spec.Gateway, FamilyOf(gw), fam)
		}
		p.Gateway = gw
	}
	if p.IPs, err = ParseSet("spec.ips", spec.IPs, fam, subnet); err != nil {
		return nil, err
	}
	// excludeIPs outside the subnet exclude nothing; they are allowed.
	exclude, err := ParseSet("spec.excludeIPs", spec.ExcludeIPs, fam, netip.Prefix{})
	if err != nil {
		return nil, err
	}
	usable := p.IPs.Subtract(exclude)
	if p.Gateway.IsValid() {
		usable = usable.Subtract(NewSet(Range{First: p.Gateway, Last: p.Gateway}))
	}
	p.Usable = usable.Subtract(reserved)
	return p, nil
}

// NewPoolAllocator parses spec like ParsePool and returns an Allocator over
// its usable addresses with nothing allocated.
func NewPoolAllocator(spec *v2beta1.IPPoolSpec, reserved Set) (*Pool, *Allocator, error) {
	p, err := ParsePool(spec, reserved)
	if err != nil {
		return nil, nil, err
	}
	a, err := NewAllocator(p.Usable)
	if err != nil {
		return nil, nil, err
	}
	return p, a, nil
}

// ParseReserved returns the addresses of fam reserved by the given
// SpiderReservedIP objects. Entries of the other family are skipped; a
// malformed entry is an error naming the object, since ignoring it could hand
// out a reserved address.
func ParseReserved(reserved []*v2beta1.SpiderReservedIP, fam Family) (Set, error) {
	var rs []Range
	for _, obj := range reserved {
		if obj == nil {
			continue
		}
		if v := obj.Spec.IPVersion; v != nil && Family(*v) != fam {
			continue
		}
		for i, e := range obj.Spec.IPs {
			r, err := ParseRange(e)
			if err != nil {
				return Set{}, fmt.Errorf("invalid SpiderReservedIP %q spec.ips[%d] %q: %w", obj.Name, i, e, err)
			}
			if r.Family() == fam {
				rs = append(rs, r)
			}
		}
	}
	return NewSet(rs...), nil
}
