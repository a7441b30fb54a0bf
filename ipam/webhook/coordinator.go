package webhook

import (
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// CoordinatorName is the name of the only SpiderCoordinator.
const CoordinatorName = "default"

// ValidateCoordinator checks a SpiderCoordinator: the singleton name and the
// spec.
func ValidateCoordinator(c *v2beta1.SpiderCoordinator) error {
	var es Errors
	if c.Name != CoordinatorName {
		es.add("metadata.name", "%q: there is one cluster-wide SpiderCoordinator and it must be named %q; put these settings into the existing %q object (or into a SpiderMultusConfig's spec.coordinator to override them per network)", c.Name, CoordinatorName, CoordinatorName)
	}
	validateCoordinatorSpec(&es, "spec", &c.Spec)
	return es.Err()
}

var macPrefixRE = regexp.MustCompile(`^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}$`)

var (
	coordinatorModes = []string{v2beta1.CoordinatorModeAuto, v2beta1.CoordinatorModeUnderlay, v2beta1.CoordinatorModeOverlay, v2beta1.CoordinatorModeDisabled}
	podCIDRTypes     = []string{"auto", "cluster", "calico", "cilium", "none"}
)

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// validateCoordinatorSpec checks a coordinator spec (the SpiderCoordinator's
// or a SpiderMultusConfig's override) under the given field prefix.
func validateCoordinatorSpec(es *Errors, field string, s *v2beta1.CoordinatorSpec) {
	if s.Mode != nil && !oneOf(*s.Mode, coordinatorModes) {
		es.add(field+".mode", "%q is not a mode: use one of %s", *s.Mode, strings.Join(coordinatorModes, ", "))
	}
	if s.PodCIDRType != nil && !oneOf(*s.PodCIDRType, podCIDRTypes) {
		es.add(field+".podCIDRType", "%q is not a pod CIDR type: use one of %s", *s.PodCIDRType, strings.Join(podCIDRTypes, ", "))
	}
	for i, c := range s.HijackCIDR {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			es.add(idx(field+".hijackCIDR", i), "%q is not a CIDR: write it as e.g. 169.254.0.0/16 or fd00:10::/64", c)
		}
	}
	if m := s.PodMACPrefix; m != nil && *m != "" {
		if !macPrefixRE.MatchString(*m) {
			es.add(field+".podMACPrefix", "%q is not a MAC prefix: write two hex bytes such as 0a:1b", *m)
		} else if b, _ := net.ParseMAC(*m + ":00:00:00:00"); len(b) > 0 && b[0]&1 == 1 {
			es.add(field+".podMACPrefix", "%q is a multicast prefix (lowest bit of the first byte set): use an even first byte such as 0a", *m)
		}
	}
	if n := s.PodDefaultRouteNIC; n != nil && *n != "" {
		checkIfName(es, field+".podDefaultRouteNIC", *n)
	}
	if t := s.HostRuleTable; t != nil && (*t <= 0 || *t == 253 || *t == 254 || *t == 255) {
		es.add(field+".hostRuleTable", "%d cannot hold pod routes: use a positive table number other than 253, 254 and 255 (the kernel's default, main and local tables), e.g. 500", *t)
	}
	if v := s.PodRPFilter; v != nil && *v > 2 {
		es.add(field+".podRPFilter", "%d is not an rp_filter value: use 0 (off), 1 (strict), 2 (loose) or a negative value to leave it alone", *v)
	}
	if v := s.TxQueueLen; v != nil && *v < 0 {
		es.add(field+".txQueueLen", "%d is negative: use 0 to leave the queue length alone or a positive length", *v)
	}
	if a := s.VethLinkAddress; a != nil && *a != "" {
		ip, err := netip.ParseAddr(*a)
		if err != nil || !ip.Is4() || !ip.IsLinkLocalUnicast() {
			es.add(field+".vethLinkAddress", "%q is not an IPv4 link-local address: use an address of 169.254.0.0/16 such as 169.254.100.1, or leave it empty", *a)
		}
	}
}

func checkIfName(es *Errors, field, name string) {
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") || name == "" {
		es.add(field, "%q is not a network interface name: use at most 15 characters without '/', ':' or spaces", name)
	}
}

// DefaultCoordinator fills the SpiderCoordinator's unset fields with their
// documented defaults so that what is in effect is visible.
func DefaultCoordinator(c *v2beta1.SpiderCoordinator) {
	s := &c.Spec
	setDefault(&s.Mode, v2beta1.CoordinatorModeAuto)
	setDefault(&s.PodCIDRType, "auto")
	setDefault(&s.TunePodRoutes, true)
	setDefault(&s.HostRuleTable, 500)
	setDefault(&s.PodRPFilter, 0)
	setDefault(&s.TxQueueLen, 0)
	setDefault(&s.DetectIPConflict, false)
	setDefault(&s.DetectGateway, false)
}

func setDefault[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}
