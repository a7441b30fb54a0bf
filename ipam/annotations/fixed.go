package annotations

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
)

// Annotations of other IPAMs that ask for fixed addresses, accepted so that
// their users' manifests work unchanged (docs/fixed-addresses.md).
const (
	// CalicoIPAddrs asks for explicit addresses, one per family:
	// "[\"192.168.0.1\"]".
	CalicoIPAddrs = "cni.projectcalico.org/ipAddrs"
	// CalicoIPAddrsNoIPAM asks Calico to skip IPAM; Spindle refuses it.
	CalicoIPAddrsNoIPAM = "cni.projectcalico.org/ipAddrsNoIpam"
	// CalicoIPv4Pools and CalicoIPv6Pools name candidate pools:
	// '["pool-1","pool-2"]'.
	CalicoIPv4Pools = "cni.projectcalico.org/ipv4pools"
	CalicoIPv6Pools = "cni.projectcalico.org/ipv6pools"
	// OVNIPAddress asks for explicit addresses: "10.16.0.15" or
	// "10.16.0.15,fd00:10:16::15". For a secondary network the key is
	// prefixed with "<nad-name>.<nad-namespace>.".
	OVNIPAddress = "ovn.kubernetes.io/ip_address"
	// OVNMACAddress asks for a MAC address: "00:00:00:53:6B:B6".
	OVNMACAddress = "ovn.kubernetes.io/mac_address"
	// OVNIPPool lists a workload's addresses, one entry per pod:
	// "10.16.0.15,10.16.0.16" or, dual stack,
	// "10.16.0.15,fd00:10:16::e;10.16.0.16,fd00:10:16::f".
	OVNIPPool = "ovn.kubernetes.io/ip_pool"
	// KubeIPAMIP, KubeIPAMNetmask and KubeIPAMGateway ask for an explicit
	// IPv4 address, and say which netmask and gateway the pod expects.
	KubeIPAMIP      = "kube-ipam.ip"
	KubeIPAMNetmask = "kube-ipam.netmask"
	KubeIPAMGateway = "kube-ipam.gateway"
)

// AddressSet is at most one address per family.
type AddressSet struct {
	IPv4, IPv6 netip.Addr
}

// Empty reports whether the set holds no address.
func (s AddressSet) Empty() bool { return !s.IPv4.IsValid() && !s.IPv6.IsValid() }

func (s AddressSet) String() string {
	var parts []string
	for _, a := range []netip.Addr{s.IPv4, s.IPv6} {
		if a.IsValid() {
			parts = append(parts, a.String())
		}
	}
	return strings.Join(parts, ",")
}

// add puts a into the set; a second address of one family is an error.
func (s *AddressSet) add(a netip.Addr) error {
	slot := &s.IPv4
	if a.Is6() {
		slot = &s.IPv6
	}
	if slot.IsValid() {
		return fmt.Errorf("two %s addresses (%s and %s); give at most one address per family", family(a), *slot, a)
	}
	*slot = a
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseAddr parses one address as written in an annotation: no zone, no
// prefix length, an IPv4-mapped IPv6 address counts as IPv4.
func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q has a zone; give the address without %%zone", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return netip.Addr{}, fmt.Errorf("%q cannot be a pod address", s)
	}
	return a.Unmap(), nil
}

// parseAddrList parses addresses separated by commas into one set.
func parseAddrList(list string) (AddressSet, error) {
	var set AddressSet
	for _, item := range strings.Split(list, ",") {
		a, err := parseAddr(item)
		if err != nil {
			return AddressSet{}, err
		}
		if err := set.add(a); err != nil {
			return AddressSet{}, err
		}
	}
	return set, nil
}

// ParseCalicoIPAddrs parses CalicoIPAddrs: a JSON list of at most one
// address per family.
func ParseCalicoIPAddrs(value string) (AddressSet, error) {
	const want = `a JSON list of at most one address per family such as ["192.168.0.1"] or ["192.168.0.1","fd00::1"]`
	var items []string
	if err := decode(value, &items); err != nil {
		return AddressSet{}, annotationError(CalicoIPAddrs, want, err)
	}
	if len(items) == 0 {
		return AddressSet{}, annotationError(CalicoIPAddrs, want, errors.New("empty list"))
	}
	var set AddressSet
	for _, item := range items {
		a, err := parseAddr(item)
		if err == nil {
			err = set.add(a)
		}
		if err != nil {
			return AddressSet{}, annotationError(CalicoIPAddrs, want, err)
		}
	}
	return set, nil
}

// ParseOVNIPAddress parses OVNIPAddress (under key, which may carry a
// network prefix): one address, or an IPv4 and an IPv6 address separated by
// a comma.
func ParseOVNIPAddress(key, value string) (AddressSet, error) {
	const want = `an address, or an IPv4 and an IPv6 address separated by a comma, such as 10.16.0.15,fd00:10:16::15`
	if strings.TrimSpace(value) == "" {
		return AddressSet{}, annotationError(key, want, errors.New("empty value"))
	}
	set, err := parseAddrList(value)
	if err != nil {
		return AddressSet{}, annotationError(key, want, err)
	}
	return set, nil
}

// ParseMAC parses a requested MAC address (under key): six bytes, unicast,
// not all zero.
func ParseMAC(key, value string) (net.HardwareAddr, error) {
	const want = `a unicast Ethernet address such as 00:00:00:53:6B:B6`
	mac, err := net.ParseMAC(strings.TrimSpace(value))
	switch {
	case err != nil:
		return nil, annotationError(key, want, fmt.Errorf("%q is not a MAC address", value))
	case len(mac) != 6:
		return nil, annotationError(key, want, fmt.Errorf("%q is not a 6-byte Ethernet address", value))
	case mac[0]&1 == 1:
		return nil, annotationError(key, want, fmt.Errorf("%s is a multicast address", mac))
	case string(mac) == "\x00\x00\x00\x00\x00\x00":
		return nil, annotationError(key, want, fmt.Errorf("%s is the zero address", mac))
	}
	return mac, nil
}

// ParseOVNIPPool parses OVNIPPool: the ordered addresses of a workload, one
// entry per pod. Entries are separated by ';' (each an address, or an IPv4
// and an IPv6 address separated by ','); without ';' every comma-separated
// address of one family is an entry, and exactly one IPv4 and one IPv6
// address are one dual-stack entry.
func ParseOVNIPPool(value string) ([]AddressSet, error) {
	const want = `addresses separated by commas (10.16.0.15,10.16.0.16), or dual-stack pairs separated by semicolons (10.16.0.15,fd00:10:16::f;10.16.0.16,fd00:10:16::10)`
	if strings.TrimSpace(value) == "" {
		return nil, annotationError(OVNIPPool, want, errors.New("empty value"))
	}
	var out []AddressSet
	if strings.Contains(value, ";") {
		for i, item := range strings.Split(value, ";") {
			if strings.TrimSpace(item) == "" {
				return nil, annotationError(OVNIPPool, want, fmt.Errorf("entry %d is empty", i))
			}
			set, err := parseAddrList(item)
			if err != nil {
				return nil, annotationError(OVNIPPool, want, fmt.Errorf("entry %d: %w", i, err))
			}
			out = append(out, set)
		}
	} else {
		var v4, v6 []netip.Addr
		for _, item := range strings.Split(value, ",") {
			a, err := parseAddr(item)
			if err != nil {
				return nil, annotationError(OVNIPPool, want, err)
			}
			if a.Is4() {
				v4 = append(v4, a)
			} else {
				v6 = append(v6, a)
			}
		}
		switch {
		case len(v4) == 1 && len(v6) == 1:
			out = []AddressSet{{IPv4: v4[0], IPv6: v6[0]}}
		case len(v4) > 0 && len(v6) > 0:
			return nil, annotationError(OVNIPPool, want, errors.New("IPv4 and IPv6 addresses mixed without ';' between the entries"))
		default:
			for _, a := range append(v4, v6...) {
				s := AddressSet{}
				_ = s.add(a)
				out = append(out, s)
			}
		}
	}
	seen := map[netip.Addr]int{}
	for i, set := range out {
		for _, a := range []netip.Addr{set.IPv4, set.IPv6} {
			if !a.IsValid() {
				continue
			}
			if j, dup := seen[a]; dup {
				return nil, annotationError(OVNIPPool, want, fmt.Errorf("%s is listed twice (entries %d and %d)", a, j, i))
			}
			seen[a] = i
		}
	}
	return out, nil
}

// KubeIPAM is what the kube-ipam annotations ask for: an IPv4 address, and
// the netmask and gateway the pod expects (checked against the pool that
// serves the address).
type KubeIPAM struct {
	IP      netip.Addr
	Netmask int // prefix length; -1 when not given
	Gateway netip.Addr
}

// ParseKubeIPAM parses KubeIPAMIP, KubeIPAMNetmask and KubeIPAMGateway from a
// pod's annotations. ok is false when KubeIPAMIP is absent; a netmask or
// gateway without an address is an error.
func ParseKubeIPAM(ann map[string]string) (k KubeIPAM, ok bool, err error) {
	ip, hasIP := ann[KubeIPAMIP]
	mask, hasMask := ann[KubeIPAMNetmask]
	gw, hasGW := ann[KubeIPAMGateway]
	if !hasIP {
		if hasMask || hasGW {
			return KubeIPAM{}, false, fmt.Errorf("invalid annotations: %q or %q without %q; add the address or remove them", KubeIPAMNetmask, KubeIPAMGateway, KubeIPAMIP)
		}
		return KubeIPAM{}, false, nil
	}
	k.Netmask = -1
	if k.IP, err = parseAddr(ip); err != nil {
		return KubeIPAM{}, false, annotationError(KubeIPAMIP, "an IPv4 address such as 10.188.0.216", err)
	}
	if !k.IP.Is4() {
		return KubeIPAM{}, false, annotationError(KubeIPAMIP, "an IPv4 address such as 10.188.0.216", fmt.Errorf("%s is not an IPv4 address", k.IP))
	}
	if hasMask {
		m, err := netip.ParseAddr(strings.TrimSpace(mask))
		if err != nil || !m.Is4() {
			return KubeIPAM{}, false, annotationError(KubeIPAMNetmask, "a dotted netmask such as 255.255.0.0", fmt.Errorf("%q is not an IPv4 netmask", mask))
		}
		b := m.As4()
		ones, bits := net.IPMask(b[:]).Size()
		if bits == 0 {
			return KubeIPAM{}, false, annotationError(KubeIPAMNetmask, "a dotted netmask such as 255.255.0.0", fmt.Errorf("%s is not a contiguous netmask", m))
		}
		k.Netmask = ones
	}
	if hasGW {
		if k.Gateway, err = parseAddr(gw); err != nil || !k.Gateway.Is4() {
			if err == nil {
				err = fmt.Errorf("%s is not an IPv4 address", k.Gateway)
			}
			return KubeIPAM{}, false, annotationError(KubeIPAMGateway, "an IPv4 address such as 10.188.0.1", err)
		}
	}
	return k, true, nil
}

// Fixed is everything a pod asks for one of its interfaces beyond pool
// names: explicit addresses, candidate pools named in another IPAM's
// dialect, a MAC, or a workload's ordered address list.
type Fixed struct {
	// Addresses are explicit addresses (at most one per family).
	Addresses AddressSet
	// List is a workload's ordered addresses (one entry per pod).
	List []AddressSet
	// Pools are candidate pools (Calico's ipv4pools/ipv6pools).
	Pools PoolSelection
	// MAC is the requested MAC address.
	MAC net.HardwareAddr
	// KubeIPAM holds the netmask and gateway the pod expects, when the
	// address came from kube-ipam's annotations.
	KubeIPAM *KubeIPAM
	// Sources are the annotations the request was read from, sorted.
	Sources []string
}

// Empty reports whether nothing is asked.
func (f *Fixed) Empty() bool {
	return f.Addresses.Empty() && len(f.List) == 0 && len(f.Pools.IPv4) == 0 && len(f.Pools.IPv6) == 0 && f.MAC == nil
}

// NetworkKey is the key of a per-network Kube-OVN annotation: "<nad
// name>.<nad namespace>." + key.
func NetworkKey(nadNamespace, nadName, key string) string {
	return nadName + "." + nadNamespace + "." + key
}

// ParseFixed reads the fixed-address annotations of every dialect for one
// interface. primary is true for the pod's first interface (eth0), which the
// unprefixed Kube-OVN and Calico annotations address; kubeIPAM is true for
// the interface kube-ipam's annotations address (the pod's first interface
// that Spindle serves, as kube-ipam's serve the interface kube-ipam
// allocates for); network is the NetworkAttachmentDefinition of a secondary
// interface, whose Kube-OVN annotations carry its name and namespace as a
// prefix.
//
// Two dialects that ask for different addresses, pools or MACs for the same
// interface are refused with an error naming both annotations; asking for
// the same thing twice is accepted.
func ParseFixed(ann map[string]string, primary, kubeIPAM bool, network *Network) (*Fixed, error) {
	f := &Fixed{}
	var addrFrom, macFrom string
	setAddrs := func(key string, set AddressSet) error {
		if len(f.List) > 0 {
			return fmt.Errorf("annotations %q and %q both fix the addresses; keep one of them", key, OVNIPPool)
		}
		if !f.Addresses.Empty() && f.Addresses != set {
			return fmt.Errorf("annotations %q (%s) and %q (%s) ask for different addresses; keep one of them", addrFrom, f.Addresses, key, set)
		}
		f.Addresses, addrFrom = set, key
		f.Sources = append(f.Sources, key)
		return nil
	}
	setMAC := func(key string, mac net.HardwareAddr) error {
		if f.MAC != nil && f.MAC.String() != mac.String() {
			return fmt.Errorf("annotations %q (%s) and %q (%s) ask for different MAC addresses; keep one of them", macFrom, f.MAC, key, mac)
		}
		f.MAC, macFrom = mac, key
		f.Sources = append(f.Sources, key)
		return nil
	}
	var keys struct{ ip, mac string }
	if primary {
		keys.ip, keys.mac = OVNIPAddress, OVNMACAddress
	} else if network != nil {
		keys.ip, keys.mac = NetworkKey(network.Namespace, network.Name, OVNIPAddress), NetworkKey(network.Namespace, network.Name, OVNMACAddress)
	}
	if primary {
		if _, ok := ann[CalicoIPAddrsNoIPAM]; ok {
			return nil, fmt.Errorf("annotation %q is not supported: Spindle always allocates through its pools; use %q with an address of a SpiderIPPool instead", CalicoIPAddrsNoIPAM, CalicoIPAddrs)
		}
		if v, ok := ann[CalicoIPAddrs]; ok {
			set, err := ParseCalicoIPAddrs(v)
			if err != nil {
				return nil, err
			}
			if err := setAddrs(CalicoIPAddrs, set); err != nil {
				return nil, err
			}
		}
		for _, p := range []struct {
			key  string
			into *[]string
		}{{CalicoIPv4Pools, &f.Pools.IPv4}, {CalicoIPv6Pools, &f.Pools.IPv6}} {
			if v, ok := ann[p.key]; ok {
				names, err := ParsePoolList(p.key, v)
				if err != nil {
					return nil, err
				}
				*p.into = names
				f.Sources = append(f.Sources, p.key)
			}
		}
		if v, ok := ann[OVNIPPool]; ok {
			list, err := ParseOVNIPPool(v)
			if err != nil {
				return nil, err
			}
			if !f.Addresses.Empty() {
				return nil, fmt.Errorf("annotations %q and %q both fix the addresses; keep one of them", addrFrom, OVNIPPool)
			}
			f.List = list
			f.Sources = append(f.Sources, OVNIPPool)
		}
	}
	if kubeIPAM {
		k, ok, err := ParseKubeIPAM(ann)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := setAddrs(KubeIPAMIP, AddressSet{IPv4: k.IP}); err != nil {
				return nil, err
			}
			f.KubeIPAM = &k
		}
	}
	if keys.ip != "" {
		if v, ok := ann[keys.ip]; ok {
			set, err := ParseOVNIPAddress(keys.ip, v)
			if err != nil {
				return nil, err
			}
			if len(f.List) > 0 {
				return nil, fmt.Errorf("annotations %q and %q both fix the addresses; keep one of them", OVNIPPool, keys.ip)
			}
			if err := setAddrs(keys.ip, set); err != nil {
				return nil, err
			}
		}
		if v, ok := ann[keys.mac]; ok {
			mac, err := ParseMAC(keys.mac, v)
			if err != nil {
				return nil, err
			}
			if err := setMAC(keys.mac, mac); err != nil {
				return nil, err
			}
		}
	}
	sort.Strings(f.Sources)
	return f, nil
}

// IsRequest reports whether key is one of the annotations that ask for
// pools or addresses, in any dialect (the native ippool/ippools, Calico,
// Kube-OVN including its per-network forms, kube-ipam). A pod that carries
// none of them takes them from its workload.
func IsRequest(key string) bool {
	switch key {
	case PodIPPool, PodIPPools, SubnetOne, SubnetMany, PoolIPNumber, PoolReclaim,
		CalicoIPAddrs, CalicoIPAddrsNoIPAM, CalicoIPv4Pools, CalicoIPv6Pools,
		OVNIPAddress, OVNMACAddress, OVNIPPool, KubeIPAMIP, KubeIPAMNetmask, KubeIPAMGateway:
		return true
	}
	return strings.HasSuffix(key, "."+OVNIPAddress) || strings.HasSuffix(key, "."+OVNMACAddress)
}

// HasRequest reports whether ann holds any annotation IsRequest accepts.
func HasRequest(ann map[string]string) bool {
	for k := range ann {
		if IsRequest(k) {
			return true
		}
	}
	return false
}
