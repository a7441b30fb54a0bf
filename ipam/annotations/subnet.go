package annotations

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Annotations of a workload's pod template that ask for pools carved from
// SpiderSubnets for the application.
const (
	// SubnetOne names one subnet per family for the pod's first
	// interface: {"ipv4":["subnet-v4"],"ipv6":["subnet-v6"]}.
	SubnetOne = "ipam.spidernet.io/subnet"
	// SubnetMany names subnets per interface:
	// [{"interface":"eth0","ipv4":["s4"]},{"interface":"net1","ipv4":["t4"]}].
	SubnetMany = "ipam.spidernet.io/subnets"
	// PoolIPNumber sizes the application's pools: "3" (fixed) or "+1"
	// (the application's replicas plus one spare).
	PoolIPNumber = "ipam.spidernet.io/ippool-ip-number"
	// PoolReclaim "false" keeps the application's pools after it is
	// deleted, for an application of the same kind, namespace and name.
	PoolReclaim = "ipam.spidernet.io/ippool-reclaim"
)

// SubnetRequest is one interface's subnets, at most one per family.
type SubnetRequest struct {
	Interface  string
	IPv4, IPv6 string
}

// IPNumber is PoolIPNumber: Fixed addresses, or replicas plus Spare.
type IPNumber struct {
	Flexible bool
	N        int
}

// Size is the number of addresses a pool of an application with replicas
// replicas needs.
func (n IPNumber) Size(replicas int) int {
	if n.Flexible {
		return replicas + n.N
	}
	return n.N
}

// AppSubnets is what a pod template asks of subnets.
type AppSubnets struct {
	// Interfaces are the pod's interfaces with their subnets; the first
	// is eth0 for SubnetOne.
	Interfaces []SubnetRequest
	IPNumber   IPNumber
	Reclaim    bool
	// Source is the annotation the subnets were read from.
	Source string
}

// ParseAppSubnets reads the subnet annotations of a pod template. ok is
// false when neither SubnetOne nor SubnetMany is present. defaultSpare is
// the spare count when PoolIPNumber is absent ("+defaultSpare").
func ParseAppSubnets(ann map[string]string, defaultSpare int) (a AppSubnets, ok bool, err error) {
	one, hasOne := ann[SubnetOne]
	many, hasMany := ann[SubnetMany]
	switch {
	case !hasOne && !hasMany:
		return AppSubnets{}, false, nil
	case hasMany:
		// Like ippools before ippool, the per-interface form wins.
		list, err := ParseIPPools(many)
		if err != nil {
			return AppSubnets{}, false, renameAnnotation(err, PodIPPools, SubnetMany)
		}
		for i, e := range list {
			iface := e.Interface
			if iface == "" {
				if i == 0 {
					iface = "eth0"
				} else {
					iface = DefaultInterfaceName(i - 1)
				}
			}
			r, err := oneSubnetEach(SubnetMany, fmt.Sprintf("entry %d", i), iface, e.IPv4, e.IPv6)
			if err != nil {
				return AppSubnets{}, false, err
			}
			a.Interfaces = append(a.Interfaces, r)
		}
		a.Source = SubnetMany
	default:
		sel, err := ParseIPPool(one)
		if err != nil {
			return AppSubnets{}, false, renameAnnotation(err, PodIPPool, SubnetOne)
		}
		r, err := oneSubnetEach(SubnetOne, "", "eth0", sel.IPv4, sel.IPv6)
		if err != nil {
			return AppSubnets{}, false, err
		}
		a.Interfaces = []SubnetRequest{r}
		a.Source = SubnetOne
	}
	if err := a.parseSizing(ann, defaultSpare); err != nil {
		return AppSubnets{}, false, err
	}
	return a, true, nil
}

// parseSizing reads PoolIPNumber and PoolReclaim into a.
func (a *AppSubnets) parseSizing(ann map[string]string, defaultSpare int) error {
	a.IPNumber = IPNumber{Flexible: true, N: defaultSpare}
	if v, ok := ann[PoolIPNumber]; ok {
		n, err := ParseIPNumber(v)
		if err != nil {
			return err
		}
		a.IPNumber = n
	}
	a.Reclaim = true
	if v, ok := ann[PoolReclaim]; ok {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return annotationError(PoolReclaim, `"true" or "false"`, fmt.Errorf("%q is not a boolean", v))
		}
		a.Reclaim = b
	}
	return nil
}

func oneSubnetEach(key, where, iface string, v4, v6 []string) (SubnetRequest, error) {
	const want = "one subnet per family"
	r := SubnetRequest{Interface: iface}
	for _, f := range []struct {
		fam   string
		names []string
		into  *string
	}{{"ipv4", v4, &r.IPv4}, {"ipv6", v6, &r.IPv6}} {
		switch len(f.names) {
		case 0:
		case 1:
			if strings.ContainsAny(f.names[0], `*?[\`) {
				return r, annotationError(key, want, fmt.Errorf("%s%s: %q is a pattern; name the subnet", at(where), f.fam, f.names[0]))
			}
			*f.into = f.names[0]
		default:
			return r, annotationError(key, want, fmt.Errorf("%s%s names %d subnets; an application's pool is carved from one", at(where), f.fam, len(f.names)))
		}
	}
	if r.IPv4 == "" && r.IPv6 == "" {
		return r, annotationError(key, want, fmt.Errorf("%snames no subnet", at(where)))
	}
	return r, nil
}

func at(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

// ParseIPNumber parses PoolIPNumber: "N" (N ≥ 1) or "+N" (N ≥ 0).
func ParseIPNumber(v string) (IPNumber, error) {
	const want = `a number of addresses such as "3", or "+1" for the replicas plus one`
	s := strings.TrimSpace(v)
	flexible := strings.HasPrefix(s, "+")
	n, err := strconv.Atoi(strings.TrimPrefix(s, "+"))
	switch {
	case err != nil:
		return IPNumber{}, annotationError(PoolIPNumber, want, fmt.Errorf("%q is not a number", v))
	case n < 0, !flexible && n == 0:
		return IPNumber{}, annotationError(PoolIPNumber, want, fmt.Errorf("%q is too small", v))
	case n > 65536:
		return IPNumber{}, annotationError(PoolIPNumber, want, errors.New("more than 65536 addresses"))
	}
	return IPNumber{Flexible: flexible, N: n}, nil
}

// renameAnnotation rewrites the annotation name of an error of a parser
// shared with another annotation.
func renameAnnotation(err error, from, to string) error {
	msg := strings.Replace(err.Error(), fmt.Sprintf("%q", from), fmt.Sprintf("%q", to), 1)
	return errors.New(strings.ReplaceAll(msg, `"pool-`, `"subnet-`))
}

// DefaultSubnetSource is the AppSubnets.Source of an application served
// by the cluster default subnets.
const DefaultSubnetSource = "the cluster default subnet"

// AppSubnetsOrDefault is ParseAppSubnets, except that an application whose
// pod template names no pools, subnets or addresses at all takes its first
// interface's pools from the cluster default subnets def (nil: none), as if
// SubnetOne named them. Its PoolIPNumber and PoolReclaim still apply.
func AppSubnetsOrDefault(ann map[string]string, defaultSpare int, def *SubnetRequest) (AppSubnets, bool, error) {
	a, ok, err := ParseAppSubnets(ann, defaultSpare)
	if err != nil || ok || def == nil || (def.IPv4 == "" && def.IPv6 == "") {
		return a, ok, err
	}
	for k := range ann {
		if IsRequest(k) && k != PoolIPNumber && k != PoolReclaim {
			return AppSubnets{}, false, nil
		}
	}
	d := *def
	d.Interface = "eth0"
	a = AppSubnets{Interfaces: []SubnetRequest{d}, Source: DefaultSubnetSource}
	if err := a.parseSizing(ann, defaultSpare); err != nil {
		return AppSubnets{}, false, err
	}
	return a, true, nil
}
