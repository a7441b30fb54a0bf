package webhook

import (
	"net/netip"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// ValidateReservedIP checks a SpiderReservedIP: every entry is an address or
// a range, all of one family matching spec.ipVersion.
func ValidateReservedIP(r *v2beta1.SpiderReservedIP) error {
	var es Errors
	fam := ranges.Family(0)
	if v := r.Spec.IPVersion; v != nil {
		if *v != 4 && *v != 6 {
			es.add("spec.ipVersion", "%d is not an IP version: use 4 or 6, or leave it unset", *v)
			return es.Err()
		}
		fam = ranges.Family(*v)
	} else if f, ok := firstFamily(r.Spec.IPs); ok {
		fam = f
	}
	entriesIn(&es, "spec.ips", r.Spec.IPs, fam, netip.Prefix{})
	return es.Err()
}

func firstFamily(entries []string) (ranges.Family, bool) {
	for _, e := range entries {
		if r, err := ranges.ParseRange(e); err == nil {
			return r.Family(), true
		}
	}
	return 0, false
}

// DefaultReservedIP fills spec.ipVersion from the first entry and
// canonicalises spec.ips.
func DefaultReservedIP(r *v2beta1.SpiderReservedIP) {
	fam, ok := firstFamily(r.Spec.IPs)
	if r.Spec.IPVersion != nil {
		fam, ok = ranges.Family(*r.Spec.IPVersion), true
	}
	if !ok {
		return
	}
	if r.Spec.IPVersion == nil {
		v := int64(fam)
		r.Spec.IPVersion = &v
	}
	r.Spec.IPs = canonical(r.Spec.IPs, fam, netip.Prefix{})
}
