// Package annotations parses the pod and namespace annotations that steer
// address allocation: Spiderpool's ipam.spidernet.io/* annotations and Multus'
// network selection annotations. Parsers are pure; errors name the annotation,
// carry the underlying error and say what a valid value looks like.
package annotations

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// Annotation keys.
const (
	// PodIPPool names the pools of the interface being set up:
	// {"ipv4":["a"],"ipv6":["b"]}.
	PodIPPool = "ipam.spidernet.io/ippool"
	// PodIPPools names pools per interface:
	// [{"interface":"net1","ipv4":["a"],"ipv6":["b"],"cleangateway":true}].
	PodIPPools = "ipam.spidernet.io/ippools"
	// PodRoutes adds routes: [{"dst":"10.0.0.0/16","gw":"172.18.40.1"}].
	PodRoutes = "ipam.spidernet.io/routes"
	// PodDefaultRouteNIC names the interface that carries the default route.
	PodDefaultRouteNIC = "ipam.spidernet.io/default-route-nic"
	// NamespaceDefaultIPv4Pool lists a namespace's default IPv4 pools: ["a","b"].
	NamespaceDefaultIPv4Pool = "ipam.spidernet.io/default-ipv4-ippool"
	// NamespaceDefaultIPv6Pool lists a namespace's default IPv6 pools.
	NamespaceDefaultIPv6Pool = "ipam.spidernet.io/default-ipv6-ippool"
	// MultusNetworks lists a pod's additional networks (Multus).
	MultusNetworks = "k8s.v1.cni.cncf.io/networks"
	// MultusDefaultNetwork replaces the cluster default network of a pod
	// (Multus).
	MultusDefaultNetwork = "v1.multus-cni.io/default-network"
)

// MaxInterfaceNameLen is the longest Linux interface name (IFNAMSIZ - 1).
const MaxInterfaceNameLen = 15

// PoolSelection is the value of PodIPPool and of the pool lists of one
// PodIPPools entry. Names may be shell patterns (path.Match syntax).
type PoolSelection struct {
	IPv4 []string `json:"ipv4,omitempty"`
	IPv6 []string `json:"ipv6,omitempty"`
}

// InterfacePools is one entry of PodIPPools.
type InterfacePools struct {
	// Interface is the pod interface, e.g. net1. Either every entry names
	// its interface or none does; then the entries map by position to the
	// pod's interfaces (see selection).
	Interface string   `json:"interface,omitempty"`
	IPv4      []string `json:"ipv4,omitempty"`
	IPv6      []string `json:"ipv6,omitempty"`
	// CleanGateway asks for no default route via the pool's gateway.
	CleanGateway bool `json:"cleangateway,omitempty"`
}

// Route is one entry of PodRoutes.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

type routeJSON struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw"`
}

// MarshalJSON writes the annotation form {"dst":"...","gw":"..."}.
func (r Route) MarshalJSON() ([]byte, error) {
	return json.Marshal(routeJSON{Dst: r.Dst.String(), Gw: r.Gw.String()})
}

func annotationError(key, want string, err error) error {
	return fmt.Errorf("invalid annotation %q: %w; want %s", key, err, want)
}

// decode unmarshals value into v; json.Unmarshal already rejects trailing
// data.
func decode(value string, v any) error {
	if strings.TrimSpace(value) == "" {
		return errors.New("empty value")
	}
	return json.Unmarshal([]byte(value), v)
}

// validPoolName checks one pool name or pattern of a pool list.
func validPoolName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("empty pool name")
	}
	if _, err := path.Match(name, ""); err != nil {
		return fmt.Errorf("pool name %q is not a valid pattern: %w", name, err)
	}
	return nil
}

func validPoolNames(field string, names []string) error {
	for i, n := range names {
		if err := validPoolName(n); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
	}
	return nil
}

// ValidInterfaceName checks an interface name: 1 to 15 characters from
// [A-Za-z0-9_.-] (the characters Multus accepts), not "." or "..".
func ValidInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > MaxInterfaceNameLen:
		return fmt.Errorf("interface name %q is longer than %d characters", name, MaxInterfaceNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("interface name %q contains %q; use letters, digits, '_', '.' and '-'", name, c)
		}
	}
	return nil
}

// ParseIPPool parses the PodIPPool annotation.
func ParseIPPool(value string) (PoolSelection, error) {
	const want = `a JSON object such as {"ipv4":["pool-v4"],"ipv6":["pool-v6"]}`
	var sel PoolSelection
	if err := decode(value, &sel); err != nil {
		return PoolSelection{}, annotationError(PodIPPool, want, err)
	}
	if err := validPoolNames("ipv4", sel.IPv4); err != nil {
		return PoolSelection{}, annotationError(PodIPPool, want, err)
	}
	if err := validPoolNames("ipv6", sel.IPv6); err != nil {
		return PoolSelection{}, annotationError(PodIPPool, want, err)
	}
	return sel, nil
}

// ParseIPPools parses the PodIPPools annotation. The list must not be empty;
// either every entry names its interface or none does; no interface appears
// twice.
func ParseIPPools(value string) ([]InterfacePools, error) {
	const want = `a JSON list such as [{"interface":"eth0","ipv4":["pool-a"]},{"interface":"net1","ipv4":["pool-b"],"cleangateway":true}]`
	var list []InterfacePools
	if err := decode(value, &list); err != nil {
		return nil, annotationError(PodIPPools, want, err)
	}
	if len(list) == 0 {
		return nil, annotationError(PodIPPools, want, errors.New("empty list"))
	}
	named := list[0].Interface != ""
	seen := make(map[string]int, len(list))
	for i, e := range list {
		if (e.Interface != "") != named {
			return nil, annotationError(PodIPPools, want,
				fmt.Errorf("entry %d: either every entry names its interface or none does", i))
		}
		if named {
			if err := ValidInterfaceName(e.Interface); err != nil {
				return nil, annotationError(PodIPPools, want, fmt.Errorf("entry %d: %w", i, err))
			}
			if j, dup := seen[e.Interface]; dup {
				return nil, annotationError(PodIPPools, want,
					fmt.Errorf("entries %d and %d both name interface %q", j, i, e.Interface))
			}
			seen[e.Interface] = i
		}
		if err := validPoolNames(fmt.Sprintf("entry %d ipv4", i), e.IPv4); err != nil {
			return nil, annotationError(PodIPPools, want, err)
		}
		if err := validPoolNames(fmt.Sprintf("entry %d ipv6", i), e.IPv6); err != nil {
			return nil, annotationError(PodIPPools, want, err)
		}
	}
	return list, nil
}

// ParseRoutes parses the PodRoutes annotation. dst must be a CIDR and gw an
// address of the same family.
func ParseRoutes(value string) ([]Route, error) {
	const want = `a JSON list such as [{"dst":"10.0.0.0/16","gw":"172.18.40.1"}]`
	var raw []routeJSON
	if err := decode(value, &raw); err != nil {
		return nil, annotationError(PodRoutes, want, err)
	}
	out := make([]Route, 0, len(raw))
	for i, r := range raw {
		dst, err := netip.ParsePrefix(strings.TrimSpace(r.Dst))
		if err != nil {
			return nil, annotationError(PodRoutes, want, fmt.Errorf("entry %d: invalid dst %q: %w", i, r.Dst, err))
		}
		gw, err := netip.ParseAddr(strings.TrimSpace(r.Gw))
		if err != nil {
			return nil, annotationError(PodRoutes, want, fmt.Errorf("entry %d: invalid gw %q: %w", i, r.Gw, err))
		}
		if gw.Zone() != "" || dst.Addr().Zone() != "" {
			return nil, annotationError(PodRoutes, want, fmt.Errorf("entry %d: zones are not allowed", i))
		}
		if dst.Addr().Is4() != gw.Is4() {
			return nil, annotationError(PodRoutes, want, fmt.Errorf("entry %d: dst %q and gw %q are of different IP families", i, r.Dst, r.Gw))
		}
		out = append(out, Route{Dst: dst.Masked(), Gw: gw})
	}
	return out, nil
}

// ParseDefaultRouteNIC parses the PodDefaultRouteNIC annotation: one
// interface name.
func ParseDefaultRouteNIC(value string) (string, error) {
	v := strings.TrimSpace(value)
	if err := ValidInterfaceName(v); err != nil {
		return "", annotationError(PodDefaultRouteNIC, "an interface name such as net1", err)
	}
	return v, nil
}

// ParsePoolList parses a JSON list of pool names, the value of
// NamespaceDefaultIPv4Pool and NamespaceDefaultIPv6Pool; key names the
// annotation in errors.
func ParsePoolList(key, value string) ([]string, error) {
	const want = `a JSON list of pool names such as ["pool-a","pool-b"]`
	var names []string
	if err := decode(value, &names); err != nil {
		return nil, annotationError(key, want, err)
	}
	if err := validPoolNames("entry", names); err != nil {
		return nil, annotationError(key, want, err)
	}
	return names, nil
}
