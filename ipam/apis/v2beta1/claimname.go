package v2beta1

import (
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaimName returns the name of the SpiderIPClaim of addr: an IPv4 address in
// dotted-quad form (10.6.0.5), an IPv6 address fully expanded in lower case
// with ':' replaced by '-' (fd00-0000-0000-0000-0000-0000-0000-0005). Every
// address has exactly one name, and every name is a valid object name. A zone
// is dropped. The invalid zero Addr yields "".
func ClaimName(addr netip.Addr) string {
	switch {
	case addr.Is4():
		return addr.String()
	case addr.Is6():
		return strings.ReplaceAll(addr.WithZone("").StringExpanded(), ":", "-")
	default:
		return ""
	}
}

// ParseClaimName returns the address a SpiderIPClaim name stands for. It
// accepts exactly the names ClaimName produces.
func ParseClaimName(name string) (netip.Addr, error) {
	var addr netip.Addr
	var err error
	if strings.Contains(name, "-") {
		// IPv6: 8 groups of 4 hex digits, 7 separators.
		if len(name) != 39 {
			return netip.Addr{}, fmt.Errorf("failed to parse claim name %q: want 8 dash-separated groups of 4 lower-case hex digits", name)
		}
		addr, err = netip.ParseAddr(strings.ReplaceAll(name, "-", ":"))
	} else {
		addr, err = netip.ParseAddr(name)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("failed to parse claim name %q: %w", name, err)
	}
	if ClaimName(addr) != name {
		return netip.Addr{}, fmt.Errorf("failed to parse claim name %q: not a canonical claim name (want %q)", name, ClaimName(addr))
	}
	return addr, nil
}

// NewClaim builds the SpiderIPClaim for addr; spec must have every field but
// Address and IPVersion filled in.
func NewClaim(addr netip.Addr, spec IPClaimSpec) *SpiderIPClaim {
	spec.Address = addr.String()
	spec.IPVersion = IPv4
	if addr.Is6() {
		spec.IPVersion = IPv6
	}
	c := &SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: ClaimName(addr)}, Spec: spec}
	c.SyncLabels()
	return c
}

// SyncLabels sets the labels that mirror the spec: LabelPool, and LabelMAC
// when the claim records a requested MAC (removed otherwise).
func (c *SpiderIPClaim) SyncLabels() {
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.Labels[LabelPool] = c.Spec.Pool
	if c.Spec.MAC != "" {
		c.Labels[LabelMAC] = MACLabelValue(c.Spec.MAC)
	} else {
		delete(c.Labels, LabelMAC)
	}
}

// MACLabelValue is the LabelMAC value of a MAC address: lower case, ':'
// replaced by '-' (02-42-ac-11-00-02).
func MACLabelValue(mac string) string { return strings.ReplaceAll(strings.ToLower(mac), ":", "-") }
