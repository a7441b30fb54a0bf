// Package migrate imports the allocations of another IPAM into Spindle: it
// reads what Spiderpool (SpiderIPPool status.allocatedIPs, SpiderEndpoints)
// or whereabouts (IPPool spec.allocations, OverlappingRangeIPReservations)
// recorded, and creates a SpiderIPClaim for every address a live pod still
// holds, so that Spindle never hands it out again and a StatefulSet replica
// keeps it. The parsers of the old records are pure (this file); the import
// itself (import.go) writes through package store, one create per address.
package migrate

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strings"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Record is one address the old IPAM recorded as held by a pod.
type Record struct {
	// Address is the held address.
	Address netip.Addr
	// Pool is the SpiderIPPool the old record names (Spiderpool); empty for
	// whereabouts, whose ranges are matched against Spindle's pools.
	Pool string
	// Namespace and Name are the pod's.
	Namespace, Name string
	// UID is the pod's UID when the old record has one.
	UID string
	// Interface is the pod interface ("" when the record does not say).
	Interface string
	// ContainerID is the sandbox the old IPAM allocated for, when recorded.
	ContainerID string
	// CleanGateway: the interface gets no default route via the pool's
	// gateway (recorded by Spiderpool's SpiderEndpoints).
	CleanGateway bool
	// Source names the old object the record was read from, for the report:
	// "SpiderIPPool pool-a", "IPPool kube-system/10.6.0.0-16".
	Source string
}

// PodKey is "<namespace>/<name>".
func (r Record) PodKey() string { return r.Namespace + "/" + r.Name }

// splitPodRef parses "namespace/name", the form both Spiderpool ("pod") and
// whereabouts ("podref") record a pod in.
func splitPodRef(field, ref string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("%s %q is not a pod reference of the form namespace/name", field, ref)
	}
	return ns, n, nil
}

// spiderpoolRecord is one entry of a SpiderIPPool's status.allocatedIPs.
// Spiderpool has written two shapes over time: {"pod":"ns/name",
// "podUid":...} and, in older releases, {"namespace":...,"pod":"name",
// "interface":...,"node":...,"containerID":...}; both are read.
type spiderpoolRecord struct {
	Pod         string `json:"pod"`
	PodUID      string `json:"podUid"`
	Namespace   string `json:"namespace"`
	Interface   string `json:"interface"`
	ContainerID string `json:"containerID"`
}

// ParseAllocatedIPs parses the status.allocatedIPs of SpiderIPPool pool, a
// JSON object (written as a string) mapping each address to its holder. An
// empty string is no allocation. Records are returned in address order; the
// first bad entry fails the whole field with an error naming the pool and
// the entry.
func ParseAllocatedIPs(pool, allocatedIPs string) ([]Record, error) {
	if strings.TrimSpace(allocatedIPs) == "" {
		return nil, nil
	}
	var raw map[string]spiderpoolRecord
	if err := json.Unmarshal([]byte(allocatedIPs), &raw); err != nil {
		return nil, fmt.Errorf("SpiderIPPool %q: status.allocatedIPs is not a JSON object of address to record: %w", pool, err)
	}
	out := make([]Record, 0, len(raw))
	for key, rec := range raw {
		addr, err := netip.ParseAddr(key)
		if err != nil || addr.Zone() != "" {
			return nil, fmt.Errorf("SpiderIPPool %q: status.allocatedIPs key %q is not an IP address", pool, key)
		}
		ns, name := rec.Namespace, rec.Pod
		if ns == "" {
			if ns, name, err = splitPodRef("pod", rec.Pod); err != nil {
				return nil, fmt.Errorf("SpiderIPPool %q: status.allocatedIPs[%q]: %w", pool, key, err)
			}
		} else if name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("SpiderIPPool %q: status.allocatedIPs[%q]: pod %q is not a pod name", pool, key, rec.Pod)
		}
		out = append(out, Record{Address: addr.Unmap(), Pool: pool, Namespace: ns, Name: name, UID: rec.PodUID,
			Interface: rec.Interface, ContainerID: rec.ContainerID, Source: "SpiderIPPool " + pool})
	}
	sortRecords(out)
	return out, nil
}

// EndpointRecords returns the addresses a SpiderEndpoint records for its pod
// (status.current.ips: interface, ipv4/ipv6 with prefix length, pool names).
func EndpointRecords(se *v2beta1.SpiderEndpoint) ([]Record, error) {
	var out []Record
	cur := se.Status.Current
	src := "SpiderEndpoint " + se.Namespace + "/" + se.Name
	for i, d := range cur.IPs {
		for _, a := range []struct {
			field      string
			addr, pool *string
		}{{"ipv4", d.IPv4, d.IPv4Pool}, {"ipv6", d.IPv6, d.IPv6Pool}} {
			if a.addr == nil || *a.addr == "" {
				continue
			}
			addr, err := parseAddrOrPrefix(*a.addr)
			if err != nil {
				return nil, fmt.Errorf("%s: status.current.ips[%d].%s: %w", src, i, a.field, err)
			}
			r := Record{Address: addr, Namespace: se.Namespace, Name: se.Name, UID: cur.UID,
				Interface: d.Interface, ContainerID: cur.ContainerID, CleanGateway: d.CleanGateway != nil && *d.CleanGateway, Source: src}
			if a.pool != nil {
				r.Pool = *a.pool
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// parseAddrOrPrefix accepts "10.6.0.5/16" or "10.6.0.5".
func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%q is not an address with prefix length", s)
		}
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}

// WhereaboutsAllocation is one entry of a whereabouts IPPool's
// spec.allocations: the holder of the address at that offset.
type WhereaboutsAllocation struct {
	ID     string `json:"id"`
	PodRef string `json:"podref"`
	IfName string `json:"ifname"`
}

// OffsetAddr returns the address offset positions after the first address
// of rng (a CIDR, as in a whereabouts IPPool's spec.range); offset is a
// decimal number as whereabouts writes the keys of spec.allocations. The
// address must lie inside rng.
func OffsetAddr(rng, offset string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(rng)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("range %q is not a CIDR", rng)
	}
	p = p.Masked()
	n, ok := new(big.Int).SetString(offset, 10)
	if !ok || n.Sign() < 0 || strings.HasPrefix(offset, "+") {
		return netip.Addr{}, fmt.Errorf("offset %q is not a non-negative decimal number", offset)
	}
	base := p.Addr().AsSlice()
	sum := new(big.Int).Add(new(big.Int).SetBytes(base), n)
	if sum.BitLen() > len(base)*8 {
		return netip.Addr{}, fmt.Errorf("offset %s is outside range %s", offset, p)
	}
	buf := make([]byte, len(base))
	sum.FillBytes(buf)
	addr, _ := netip.AddrFromSlice(buf)
	if !p.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("offset %s is outside range %s", offset, p)
	}
	return addr, nil
}

// ParseWhereaboutsAllocations turns the spec.allocations of the whereabouts
// IPPool source (named for the report) with spec.range rng into records.
func ParseWhereaboutsAllocations(source, rng string, allocations map[string]WhereaboutsAllocation) ([]Record, error) {
	out := make([]Record, 0, len(allocations))
	for off, a := range allocations {
		addr, err := OffsetAddr(rng, off)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.allocations[%q]: %w", source, off, err)
		}
		ns, name, err := splitPodRef("podref", a.PodRef)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.allocations[%q]: %w", source, off, err)
		}
		out = append(out, Record{Address: addr, Namespace: ns, Name: name, Interface: a.IfName, ContainerID: a.ID, Source: source})
	}
	sortRecords(out)
	return out, nil
}

// ReservationAddr returns the address an OverlappingRangeIPReservation is
// named after: the address itself, with ':' written as '-' for IPv6 (and a
// leading or trailing '0' added where the name would start or end in '-').
func ReservationAddr(name string) (netip.Addr, error) {
	s := name
	if strings.Contains(s, "-") {
		s = strings.ReplaceAll(s, "-", ":")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("OverlappingRangeIPReservation name %q is not an IP address", name)
	}
	return a.Unmap(), nil
}

// ReservationRecord turns an OverlappingRangeIPReservation (its name and
// spec.podref, spec.ifname, spec.containerid) into a record.
func ReservationRecord(namespace, name, podRef, ifName, containerID string) (Record, error) {
	src := "OverlappingRangeIPReservation " + namespace + "/" + name
	addr, err := ReservationAddr(name)
	if err != nil {
		return Record{}, err
	}
	ns, pod, err := splitPodRef("spec.podref", podRef)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", src, err)
	}
	return Record{Address: addr, Namespace: ns, Name: pod, Interface: ifName, ContainerID: containerID, Source: src}, nil
}

// Merge folds records of the same address and pod into one, filling each
// field from the first record that has it (so a SpiderEndpoint adds the
// interface to a status.allocatedIPs entry, and an
// OverlappingRangeIPReservation repeats an IPPool's entry). Records of one
// address naming different pods stay apart: the import reports the conflict.
// The result is in address order.
func Merge(records []Record) []Record {
	type key struct {
		addr netip.Addr
		pod  string
	}
	idx := map[key]int{}
	var out []Record
	for _, r := range records {
		k := key{r.Address, r.PodKey()}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, r)
			continue
		}
		m := &out[i]
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&m.Pool, r.Pool}, {&m.UID, r.UID}, {&m.Interface, r.Interface}, {&m.ContainerID, r.ContainerID},
		} {
			if *f.dst == "" {
				*f.dst = f.src
			}
		}
		m.CleanGateway = m.CleanGateway || r.CleanGateway
		if !strings.Contains(m.Source, r.Source) {
			m.Source += ", " + r.Source
		}
	}
	sortRecords(out)
	return out
}

func sortRecords(rs []Record) {
	sort.SliceStable(rs, func(i, j int) bool {
		if c := rs[i].Address.Compare(rs[j].Address); c != 0 {
			return c < 0
		}
		return rs[i].PodKey() < rs[j].PodKey()
	})
}
