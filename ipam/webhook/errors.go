// Package webhook admits Spindle's custom resources: defaulting (ipVersion,
// canonical ranges, finalizers, documented defaults) and validation with
// messages that name the field, say what is wrong and how to fix it.
//
// The Validate* functions are pure: they take the object and the cluster
// state the rules depend on (other pools, claims) and never read the API. The
// admission handlers in handlers.go gather that state and call them.
package webhook

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spindle-net/spindle/ipam/ranges"
)

// FieldError is one rule violation: Field is the JSON path of the offending
// field, e.g. spec.ips[2].
type FieldError struct {
	Field  string
	Detail string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Detail }

// Errors is the list of violations of one object. Its message lists them all,
// separated by "; ".
type Errors []FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Err returns es as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es *Errors) add(field, format string, args ...any) {
	*es = append(*es, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
}

func idx(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// parseSubnet parses a CIDR field. It accepts host bits (10.6.1.0/16 means
// 10.6.0.0/16), as the pool code does.
func parseSubnet(es *Errors, field, s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || p.Addr().Zone() != "" {
		es.add(field, "%q is not a CIDR: write an address and a prefix length, e.g. 10.6.0.0/16 or fd00:6::/64", s)
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// checkVersion checks an ipVersion field against the family of what it
// describes.
func checkVersion(es *Errors, field string, v *int64, fam ranges.Family, what string) {
	if v == nil {
		return
	}
	if *v != 4 && *v != 6 {
		es.add(field, "%d is not an IP version: use 4 or 6, or leave it unset", *v)
		return
	}
	if ranges.Family(*v) != fam {
		es.add(field, "%d does not match %s (%s): set it to %d or leave it unset", *v, what, fam, int(fam))
	}
}

// entriesIn checks the ips/excludeIPs syntax: each entry is an address or a
// range of family fam inside subnet (when valid). It returns the canonical set
// of the valid entries.
func entriesIn(es *Errors, field string, entries []string, fam ranges.Family, subnet netip.Prefix) ranges.Set {
	var rs []ranges.Range
	for i, e := range entries {
		f := idx(field, i)
		r, err := ranges.ParseRange(e)
		if err != nil {
			es.add(f, "%q is not an address or range (%v): write an address such as 10.6.0.5 or a range such as 10.6.0.10-10.6.0.20", e, err)
			continue
		}
		if fam != 0 && r.Family() != fam {
			es.add(f, "%s is an %s entry in an %s list: use %s addresses only", r, r.Family(), fam, fam)
			continue
		}
		if subnet.IsValid() && !(subnet.Contains(r.First) && subnet.Contains(r.Last)) {
			es.add(f, "%s is outside spec.subnet %s: move it into the subnet or widen the subnet", r, subnet)
			continue
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return ranges.Set{}
	}
	return ranges.NewSet(rs...)
}

// addrIn checks an address field of family fam inside subnet (when valid).
func addrIn(es *Errors, field, s string, fam ranges.Family, subnet netip.Prefix, fix string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		es.add(field, "%q is not an IP address: write an address such as 10.6.0.1 or fd00:6::1", s)
		return netip.Addr{}, false
	}
	if fam != 0 && ranges.FamilyOf(a) != fam {
		es.add(field, "%s is an %s address in an %s object: use an %s address", a, ranges.FamilyOf(a), fam, fam)
		return netip.Addr{}, false
	}
	if subnet.IsValid() && !subnet.Contains(a) {
		es.add(field, "%s is outside spec.subnet %s: %s", a, subnet, fix)
		return netip.Addr{}, false
	}
	return a, true
}

// intersect returns the addresses in both a and b (same family).
func intersect(a, b ranges.Set) ranges.Set {
	if a.Empty() || b.Empty() || a.Family() != b.Family() {
		return ranges.Set{}
	}
	return a.Subtract(a.Subtract(b))
}

// short renders a set for a message, eliding long lists.
func short(s ranges.Set) string {
	parts := s.Strings()
	if len(parts) > 3 {
		return strings.Join(parts[:3], ",") + fmt.Sprintf(",... (%d ranges)", len(parts))
	}
	return strings.Join(parts, ",")
}
