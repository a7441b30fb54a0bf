package main

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/lab/shim"
)

// PodView is what the checks need of a pod.
type PodView struct {
	Namespace, Name, UID, Node string
	OwnerKind                  string
}

func (p PodView) String() string { return fmt.Sprintf("%s/%s (uid %s)", p.Namespace, p.Name, p.UID) }

// AddrOn is an address configured on an interface inside a pod.
type AddrOn struct {
	If   string
	Addr netip.Addr
}

// Claim is what the checks need of a SpiderIPClaim.
type Claim struct {
	Name, Pool, Address, PodUID, PodNamespace, PodName, OwnerKind string
}

func (c Claim) String() string {
	return fmt.Sprintf("claim %s (pool %s, %s, pod %s/%s uid %s)", c.Name, c.Pool, c.Address, c.PodNamespace, c.PodName, c.PodUID)
}

// Snapshot is one sample of the truth: the pods live through the whole
// sample (Running and not terminating in a pod list taken before the
// addresses were read and in one taken after the claims were), the
// addresses configured inside their network namespaces, and the claims.
type Snapshot struct {
	Live   map[string]PodView  // by UID
	Exists map[string]bool     // UIDs of every pod in the later list
	Addrs  map[string][]AddrOn // by UID, Spindle's interfaces only
	Claims []Claim
}

// Duplicates lists addresses configured in two live pods at once.
func Duplicates(s Snapshot) []string {
	holder := map[netip.Addr]string{}
	var out []string
	for _, uid := range sortedKeys(s.Addrs) {
		if _, ok := s.Live[uid]; !ok {
			continue
		}
		for _, a := range s.Addrs[uid] {
			if other, taken := holder[a.Addr]; taken && other != uid {
				out = append(out, fmt.Sprintf("address %s is configured in pod %s (%s) and in pod %s at once", a.Addr, s.Live[uid], a.If, s.Live[other]))
				continue
			}
			holder[a.Addr] = uid
		}
	}
	return out
}

// Lost lists addresses configured in a live pod without a claim that names
// that pod's UID.
func Lost(s Snapshot) []string {
	held := map[string]bool{}
	byAddr := map[string][]Claim{}
	for _, c := range s.Claims {
		held[c.PodUID+"|"+canonical(c.Address)] = true
		byAddr[canonical(c.Address)] = append(byAddr[canonical(c.Address)], c)
	}
	var out []string
	for _, uid := range sortedKeys(s.Addrs) {
		p, ok := s.Live[uid]
		if !ok {
			continue
		}
		for _, a := range s.Addrs[uid] {
			if !held[uid+"|"+a.Addr.String()] {
				out = append(out, fmt.Sprintf("pod %s runs with %s on %s, but no claim names its UID (claims of that address: %v)", p, a.Addr, a.If, byAddr[a.Addr.String()]))
			}
		}
	}
	return out
}

// Leaked lists claims that name a pod which no longer exists. A
// StatefulSet keeps the addresses of every ordinal it ran while it exists
// (docs/ipam.md): its replicas' claims are not leaks before the
// StatefulSet is deleted, which the run checks last.
func Leaked(claims []Claim, exists map[string]bool) []string {
	var out []string
	for _, c := range claims {
		if !exists[c.PodUID] && c.OwnerKind != "StatefulSet" {
			out = append(out, c.String()+": the pod no longer exists")
		}
	}
	return out
}

// PoolView is what the checks need of a SpiderIPPool.
type PoolView struct {
	Name      string
	Allocated *int64
}

// CounterDrift lists pools whose allocatedIPCount differs from the number of
// their claims.
func CounterDrift(pools []PoolView, claims []Claim) []string {
	n := map[string]int64{}
	for _, c := range claims {
		n[c.Pool]++
	}
	var out []string
	for _, p := range pools {
		var got int64
		if p.Allocated != nil {
			got = *p.Allocated
		}
		if got != n[p.Name] {
			out = append(out, fmt.Sprintf("pool %s: status.allocatedIPCount %d, claims %d", p.Name, got, n[p.Name]))
		}
	}
	return out
}

// EndpointView is what the checks need of a SpiderEndpoint.
type EndpointView struct {
	Namespace, Name, UID string
	Addrs                []string
}

// EndpointDrift lists live pods whose SpiderEndpoint is missing, names
// another incarnation, or lists other addresses than the pod's claims.
func EndpointDrift(live map[string]PodView, endpoints []EndpointView, claims []Claim) []string {
	byPod := map[string]EndpointView{}
	for _, e := range endpoints {
		byPod[e.Namespace+"/"+e.Name] = e
	}
	want := map[string][]string{}
	for _, c := range claims {
		want[c.PodUID] = append(want[c.PodUID], canonical(c.Address))
	}
	var out []string
	for _, uid := range sortedKeys(live) {
		p := live[uid]
		e, ok := byPod[p.Namespace+"/"+p.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("pod %s has no SpiderEndpoint", p))
		case e.UID != uid:
			out = append(out, fmt.Sprintf("SpiderEndpoint %s/%s names uid %s, the pod is %s", e.Namespace, e.Name, e.UID, p))
		default:
			got := make([]string, 0, len(e.Addrs))
			for _, a := range e.Addrs {
				got = append(got, canonical(a))
			}
			w := slices.Clone(want[uid])
			sort.Strings(got)
			sort.Strings(w)
			if !slices.Equal(got, w) {
				out = append(out, fmt.Sprintf("SpiderEndpoint %s/%s lists %v, the claims of %s are %v", e.Namespace, e.Name, got, p, w))
			}
		}
	}
	return out
}

// HeldAfterDel lists teardown DELs that reported success for a pod that is
// gone while a claim still names it, minAge after the DEL. A StatefulSet
// replica's claims are kept by design for its next incarnation, so they are
// left to the leak check.
func HeldAfterDel(dels []shim.DelRecord, claims []Claim, exists map[string]bool, now time.Time, minAge time.Duration) []string {
	byUID := map[string][]Claim{}
	for _, c := range claims {
		byUID[c.PodUID] = append(byUID[c.PodUID], c)
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range dels {
		if !d.OK || d.Phase != "teardown" || exists[d.UID] || seen[d.UID] || now.Sub(d.Time) < minAge {
			continue
		}
		var held []string
		for _, c := range byUID[d.UID] {
			if c.OwnerKind != "StatefulSet" {
				held = append(held, c.String())
			}
		}
		if len(held) > 0 {
			seen[d.UID] = true
			out = append(out, fmt.Sprintf("CNI DEL of pod %s/%s (uid %s) reported success at %s, yet %s", d.Namespace, d.Name, d.UID, d.Time.Format(time.RFC3339Nano), strings.Join(held, "; ")))
		}
	}
	return out
}

// canonical writes an address (or address/prefix) as netip prints the
// address, so that IPv6 spellings compare equal.
func canonical(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
