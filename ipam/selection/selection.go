// Package selection picks the candidate SpiderIPPools of one pod interface,
// per IP family. It is pure: the caller passes the pod, namespace and node
// facts and the pools; selection returns ordered pool names or an error that
// lists every candidate and why it was refused.
//
// # Rules
//
// The first rule that names pools wins:
//
//  1. pod annotation ipam.spidernet.io/ippools, the entry of this interface;
//  2. pod annotation ipam.spidernet.io/ippool (applies to every interface);
//  3. namespace annotations ipam.spidernet.io/default-ipv4-ippool and
//     ipam.spidernet.io/default-ipv6-ippool (else Calico's
//     cni.projectcalico.org/ipv4pools and ipv6pools on the namespace);
//  4. the CNI configuration's default_ipv4_ippool / default_ipv6_ippool;
//  5. the cluster default pools (spec.default: true) of the family.
//
// Between rules 2 and 3 come the other dialects' pod annotations: Calico's
// pools, then fixed addresses of any dialect (served by the pools that
// contain them). A pod with none of these annotations (annotations.IsRequest)
// uses those of its workload (Request.OwnerAnnotations).
//
// A network whose CNI configuration names default pools of one family only
// is a single-family network: the other family gets an address only from
// the pod's or the namespace's annotations, never from the cluster default
// pools, and its absence is no error.
// Pod annotations (rules 1 and 2) decide for the whole interface: a family
// they name no pool for gets no address, so a pod can ask for IPv4 only in a
// dual-stack cluster. When the ippools annotation exists but has no entry for
// the interface, selection fails rather than fall through: the annotation is
// meant to describe the pod's interfaces and silently ignoring it would put
// the interface into an unintended pool. Rules 3 to 5 are evaluated per
// family; an enabled family that no rule gives a pool is an error.
//
// Entries of the ippools annotation that name no interface map by position
// to the pod's interfaces: the first to eth0, the N-th (N>1) to the
// interface of the (N-1)-th entry of k8s.v1.cni.cncf.io/networks (its
// explicit interface or Multus' default net<N-1>).
//
// Pool names may be shell patterns (path.Match syntax), expanded against all
// pool names in name order.
//
// # Filters
//
// A candidate is refused, with the reason recorded, when it does not exist,
// is terminating, disabled or of the other family, or when the pod does not
// satisfy its affinity: nodeName (else nodeAffinity) against the node,
// namespaceName (else namespaceAffinity) against the namespace, podAffinity
// against the pod, multusName against the NetworkAttachmentDefinition of the
// interface. Affinity is enforced even for pools the pod names explicitly.
// A pool serving a kube-ipam address must have the subnet length and gateway
// of the pod's kube-ipam.netmask and kube-ipam.gateway.
// A multusName entry without a namespace refers to the system namespace
// (where Spindle is installed).
//
// # Order
//
// Remaining candidates are ordered by the specificity of their affinity, as
// Spiderpool does: pools with podAffinity first, then nodeName, nodeAffinity,
// namespaceName, namespaceAffinity, multusName; ties keep the order of the
// rule (annotation order, or name order for patterns and cluster defaults).
package selection

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// DefaultInterface is the pod's first interface, attached to the default
// network.
const DefaultInterface = "eth0"

// Rule says which rule named the candidates of a family.
type Rule int

// The selection rules, highest priority first.
const (
	RuleNone Rule = iota
	RulePodIPPools
	RulePodIPPool
	RuleAppSubnet
	RulePodCalicoPools
	RuleFixedAddress
	RuleNamespace
	RuleCNIConfig
	RuleClusterDefault
)

// String describes the rule for logs and errors.
func (r Rule) String() string {
	switch r {
	case RulePodIPPools:
		return "pod annotation " + annotations.PodIPPools
	case RulePodIPPool:
		return "pod annotation " + annotations.PodIPPool
	case RuleAppSubnet:
		return "the application's pool from annotation " + annotations.SubnetOne + "/" + annotations.SubnetMany
	case RulePodCalicoPools:
		return "pod annotations " + annotations.CalicoIPv4Pools + "/" + annotations.CalicoIPv6Pools
	case RuleFixedAddress:
		return "pools containing the requested addresses"
	case RuleNamespace:
		return "namespace default pool annotation"
	case RuleCNIConfig:
		return "CNI configuration default pools"
	case RuleClusterDefault:
		return "cluster default pools"
	default:
		return "no rule"
	}
}

// Request holds the facts about one CNI ADD that selection needs.
type Request struct {
	PodNamespace   string
	PodName        string
	PodLabels      map[string]string
	PodAnnotations map[string]string

	NamespaceLabels      map[string]string
	NamespaceAnnotations map[string]string

	NodeName   string
	NodeLabels map[string]string

	// Interface is the pod interface being set up (CNI_IFNAME).
	Interface string
	// Network is the "namespace/name" of the NetworkAttachmentDefinition the
	// interface is attached through. When empty it is derived from the pod's
	// Multus annotations (see PodNetworks).
	Network string
	// ClusterDefaultNetwork is the "namespace/name" of Multus' cluster
	// default network, the network of eth0 for pods without the
	// v1.multus-cni.io/default-network annotation. Empty when unknown.
	ClusterDefaultNetwork string
	// SystemNamespace is the namespace multusName entries without one refer
	// to.
	SystemNamespace string

	// DefaultIPv4Pools and DefaultIPv6Pools are the CNI configuration's
	// default_ipv4_ippool and default_ipv6_ippool.
	DefaultIPv4Pools []string
	DefaultIPv6Pools []string

	// EnableIPv4 and EnableIPv6 say which families the cluster allocates.
	EnableIPv4 bool
	EnableIPv6 bool

	// Ordinal is the pod's ordinal when it is a StatefulSet replica (nil
	// otherwise): replica i gets entry i of a workload's address list.
	Ordinal *int

	// Owner names the pod's top-level workload ("StatefulSet app/web"), and
	// OwnerAnnotations are that workload's own annotations (its metadata,
	// not its pod template). A pod with none of the pool and address
	// annotations (annotations.IsRequest) of its own uses the workload's: a
	// manifest that puts them on the StatefulSet means them for its pods.
	Owner            string
	OwnerAnnotations map[string]string

	// KubeIPAMInterface is the interface kube-ipam's annotations address:
	// the pod's first interface Spindle serves (empty means eth0).
	KubeIPAMInterface string

	// App is the pod's application (its top controller, or its
	// third-party controller); nil for a pod without one. Its pools carved
	// from subnets are found by it, and PodLabels should include
	// subnets.AppLabels(*App) for their affinity.
	App *subnets.App
	// DefaultSubnet names the cluster default subnets (nil: none): the
	// pods of an application of a kind in subnets.AppKinds whose
	// annotations name no pools, subnets or addresses get eth0's addresses
	// from its pools carved from them.
	DefaultSubnet *annotations.SubnetRequest
}

// FamilyResult is the outcome for one family of an interface.
type FamilyResult struct {
	// Rule named the candidates; RuleNone when the family gets no address.
	Rule Rule
	// Pools are the usable candidates, in the order to try them. Empty when
	// the family gets no address.
	Pools []string
	// Rejected lists the candidates that were refused and why. An allocator
	// that finds every pool of Pools exhausted appends them here and returns
	// a NoPoolError, so the error names every candidate.
	Rejected []RejectedPool
	// Addresses, when set, are the only addresses the family may get, in
	// order (a fixed address, or the pod's entries of a workload's list).
	Addresses []netip.Addr
}

// Result is the outcome of Select.
type Result struct {
	Interface string
	// Network is the "namespace/name" of the interface's
	// NetworkAttachmentDefinition; empty when unknown.
	Network string
	// CleanGateway: the interface gets no default route via its pools'
	// gateways (ippools annotation "cleangateway").
	CleanGateway bool
	IPv4         FamilyResult
	IPv6         FamilyResult
	// Fixed is what the pod's fixed-address annotations (of any dialect)
	// ask for this interface; nil when none.
	Fixed *annotations.Fixed
}

// Family returns the result of f.
func (r *Result) Family(f ranges.Family) *FamilyResult {
	if f == ranges.V6 {
		return &r.IPv6
	}
	return &r.IPv4
}

// RejectedPool is a candidate pool that cannot serve the request.
type RejectedPool struct {
	Name   string
	Reason string
}

func (r RejectedPool) String() string { return fmt.Sprintf("pool %q: %s", r.Name, r.Reason) }

// NoPoolError says that no candidate pool of a family can serve an
// interface. It lists every candidate and why it was refused.
type NoPoolError struct {
	Interface string
	Family    ranges.Family
	Rule      Rule
	Rejected  []RejectedPool
	// Detail explains the failure when there was no candidate at all.
	Detail string
	// Waiting: the candidate is expected to appear (an application's pool
	// the controller has not carved yet); the request is worth retrying.
	Waiting bool
}

// Error returns e.g. `no pool for eth0 IPv4: pool "a": node affinity does
// not match node "worker-2"; pool "b": disabled`.
func (e *NoPoolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no pool for %s %s: ", e.Interface, e.Family)
	if len(e.Rejected) == 0 {
		b.WriteString(e.Detail)
		return b.String()
	}
	for i, r := range e.Rejected {
		if i == maxRejectedListed {
			fmt.Fprintf(&b, "; and %d more pools rejected", len(e.Rejected)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// maxRejectedListed bounds the rejected pools a NoPoolError names: a pod
// naming thousands of pools gets a readable error, not a truncated one.
const maxRejectedListed = 10

// entry is a pool with everything selection derives from it precomputed.
type entry struct {
	pool      *v2beta1.SpiderIPPool
	family    ranges.Family
	familyErr error
	nodeSel   labels.Selector
	nsSel     labels.Selector
	podSel    labels.Selector
	selErr    string
	score     int
	// ips are the pool's addresses (spec.ips), for fixed-address requests;
	// hasIPs is false when the pool does not parse.
	ips    ranges.Set
	hasIPs bool
}

// Index is a set of pools prepared for selection. Build it once per change
// of the pool set and share it: Select does not modify it and may run
// concurrently.
type Index struct {
	byName   map[string]*entry
	names    []string
	defaults map[ranges.Family][]*entry
}

// NewIndex prepares pools for selection. Nil entries are skipped; the pools
// must not be modified while the Index is in use.
func NewIndex(pools []*v2beta1.SpiderIPPool) *Index {
	x := &Index{byName: make(map[string]*entry, len(pools)), defaults: map[ranges.Family][]*entry{}}
	for _, p := range pools {
		if p == nil {
			continue
		}
		e := &entry{pool: p}
		e.family, e.familyErr = ranges.PoolFamily(&p.Spec)
		var err error
		if e.nodeSel, err = selector(p.Spec.NodeAffinity); err != nil {
			e.selErr = "invalid spec.nodeAffinity: " + err.Error()
		}
		if e.nsSel, err = selector(p.Spec.NamespaceAffinity); err != nil {
			e.selErr = "invalid spec.namespaceAffinity: " + err.Error()
		}
		if e.podSel, err = selector(p.Spec.PodAffinity); err != nil {
			e.selErr = "invalid spec.podAffinity: " + err.Error()
		}
		e.score = score(&p.Spec)
		if layout, err := ranges.ParsePool(&p.Spec, ranges.Set{}); err == nil {
			e.ips, e.hasIPs = layout.IPs, true
		}
		x.byName[p.Name] = e
		x.names = append(x.names, p.Name)
	}
	sort.Strings(x.names)
	for _, n := range x.names {
		e := x.byName[n]
		if e.pool.Spec.Default != nil && *e.pool.Spec.Default && e.familyErr == nil {
			x.defaults[e.family] = append(x.defaults[e.family], e)
		}
	}
	return x
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// score ranks a pool's affinity specificity; higher is tried first.
func score(s *v2beta1.IPPoolSpec) int {
	n := 0
	if s.PodAffinity != nil {
		n |= 1 << 5
	}
	if len(s.NodeName) > 0 {
		n |= 1 << 4
	}
	if s.NodeAffinity != nil {
		n |= 1 << 3
	}
	if len(s.NamespaceName) > 0 {
		n |= 1 << 2
	}
	if s.NamespaceAffinity != nil {
		n |= 1 << 1
	}
	if len(s.MultusName) > 0 {
		n |= 1
	}
	return n
}

// Select builds an Index of pools and selects from it. Prefer NewIndex and
// Index.Select on hot paths.
func Select(pools []*v2beta1.SpiderIPPool, req *Request) (*Result, error) {
	return NewIndex(pools).Select(req)
}

// Select returns the candidate pools of req's interface. It returns a
// *NoPoolError when an enabled family has no usable candidate, and another
// error when an annotation is malformed or the request is incomplete.
func (x *Index) Select(req *Request) (*Result, error) {
	if req.Interface == "" {
		return nil, fmt.Errorf("failed to select pools for pod %s/%s: no interface name given", req.PodNamespace, req.PodName)
	}
	if !req.EnableIPv4 && !req.EnableIPv6 {
		return nil, fmt.Errorf("failed to select pools for pod %s/%s: neither IPv4 nor IPv6 is enabled", req.PodNamespace, req.PodName)
	}
	s := &state{req: req, ann: req.PodAnnotations, subject: "pod " + req.PodNamespace + "/" + req.PodName}
	if !annotations.HasRequest(req.PodAnnotations) && annotations.HasRequest(req.OwnerAnnotations) {
		s.ann, s.subject = req.OwnerAnnotations, req.Owner+" (owner of pod "+req.PodNamespace+"/"+req.PodName+")"
	}
	res := &Result{Interface: req.Interface}

	names, rule, err := s.podAnnotationPools(x, res)
	if err != nil {
		return nil, err
	}
	fixed, err := s.fixed(res)
	if err != nil {
		return nil, err
	}
	if len(fixed) > 0 {
		served := false
		for _, f := range s.families() {
			served = served || len(fixed[f]) > 0
		}
		if !served {
			return nil, fmt.Errorf("failed to select addresses for %s of pod %s/%s: %s asks for %s addresses, but this node allocates only %s; change the annotation",
				req.Interface, req.PodNamespace, req.PodName, strings.Join(res.Fixed.Sources, ", "), otherFamily(fixed), s.familyWords())
		}
	}
	if rule != RuleNone {
		// Pod annotations decide both families.
		wanted := false
		for _, f := range s.families() {
			if len(names[f]) > 0 || len(fixed[f]) > 0 {
				wanted = true
			}
		}
		if !wanted {
			return nil, fmt.Errorf("failed to select pools for %s of pod %s/%s: %s names no %s pool for it; add one or remove the annotation",
				req.Interface, req.PodNamespace, req.PodName, rule, s.familyWords())
		}
	}
	for _, f := range s.families() {
		fr := res.Family(f)
		var candNames []string
		var candEntries []*entry
		fr.Addresses = fixed[f]
		switch {
		case rule != RuleNone && len(names[f]) > 0:
			fr.Rule, candNames = rule, names[f]
		case len(fr.Addresses) > 0:
			fr.Rule, candEntries = RuleFixedAddress, x.containing(f, fr.Addresses)
			if len(candEntries) == 0 {
				return nil, &NoPoolError{Interface: req.Interface, Family: f, Rule: fr.Rule, Detail: fmt.Sprintf(
					"no %s pool contains %s (asked by %s); create a SpiderIPPool that does, or change the annotation",
					f, addrList(fr.Addresses), strings.Join(res.Fixed.Sources, ", "))}
			}
		case rule != RuleNone || len(fixed) > 0:
			// The pod's annotations decide its families (fixed addresses
			// as Calico's ipAddrs do): this one gets no address.
			continue
		default:
			fr.Rule, candNames, candEntries, err = s.defaultPools(x, f)
			if err != nil {
				return nil, err
			}
			if (fr.Rule == RuleNone || fr.Rule == RuleClusterDefault) && s.singleFamilyNetwork(f) {
				// The network's CNI configuration names default pools of
				// the other family only: a single-family network, which
				// the cluster default pools (of the default network) do
				// not widen.
				fr.Rule = RuleNone
				continue
			}
			if fr.Rule == RuleNone {
				return nil, &NoPoolError{Interface: req.Interface, Family: f, Detail: fmt.Sprintf(
					"no pool is named by the pod, its namespace or the CNI configuration, and no %s pool has spec.default: true; "+
						"create one, or name a pool in the pod annotation %s", f, annotations.PodIPPool)}
			}
		}
		if candEntries == nil {
			candEntries = x.expand(candNames, &fr.Rejected)
		}
		for _, e := range candEntries {
			reason := s.refuse(e, f)
			if reason == "" && res.Fixed != nil && res.Fixed.KubeIPAM != nil && f == ranges.V4 {
				reason = refuseKubeIPAM(e, res.Fixed.KubeIPAM)
			}
			if reason != "" {
				fr.Rejected = append(fr.Rejected, RejectedPool{Name: e.pool.Name, Reason: reason})
				continue
			}
			fr.Pools = append(fr.Pools, e.pool.Name)
		}
		if len(fr.Pools) == 0 {
			return nil, &NoPoolError{Interface: req.Interface, Family: f, Rule: fr.Rule, Rejected: fr.Rejected,
				Detail: fmt.Sprintf("%s names no pool", fr.Rule)}
		}
		sortBySpecificity(x, fr.Pools)
	}
	if nw, ok, err := s.interfaceNetwork(); err == nil && ok {
		res.Network = nw
	}
	return res, nil
}

// expand resolves names and patterns to pool entries in order, without
// duplicates; unknown names and patterns without a match are recorded.
func (x *Index) expand(names []string, rejected *[]RejectedPool) []*entry {
	out := make([]*entry, 0, len(names))
	seen := make(map[string]bool, len(names))
	add := func(e *entry) {
		if !seen[e.pool.Name] {
			seen[e.pool.Name] = true
			out = append(out, e)
		}
	}
	for _, n := range names {
		if meta := strings.IndexAny(n, `*?[\`); meta >= 0 {
			// Only names starting with the literal prefix can match; they
			// are adjacent in the sorted name list.
			prefix := n[:meta]
			matched := false
			for i := sort.SearchStrings(x.names, prefix); i < len(x.names) && strings.HasPrefix(x.names[i], prefix); i++ {
				name := x.names[i]
				if ok, _ := path.Match(n, name); ok {
					matched = true
					add(x.byName[name])
				}
			}
			if !matched {
				*rejected = append(*rejected, RejectedPool{Name: n, Reason: "no pool matches this pattern"})
			}
			continue
		}
		if e, ok := x.byName[n]; ok {
			add(e)
		} else {
			*rejected = append(*rejected, RejectedPool{Name: n, Reason: "not found"})
		}
	}
	return out
}

func sortBySpecificity(x *Index, pools []string) {
	sort.SliceStable(pools, func(i, j int) bool { return x.byName[pools[i]].score > x.byName[pools[j]].score })
}

// state carries per-request state: lazily parsed Multus annotations.
type state struct {
	req *Request
	// ann holds the pool and address annotations in effect: the pod's, or
	// its workload's when the pod has none; subject names their object.
	ann     map[string]string
	subject string

	netDone  bool
	netErr   error
	netKnown bool
	network  string
	podNets  *PodNetworks
}

func (s *state) families() []ranges.Family {
	var fs []ranges.Family
	if s.req.EnableIPv4 {
		fs = append(fs, ranges.V4)
	}
	if s.req.EnableIPv6 {
		fs = append(fs, ranges.V6)
	}
	return fs
}

func (s *state) familyWords() string {
	switch {
	case s.req.EnableIPv4 && s.req.EnableIPv6:
		return "IPv4 or IPv6"
	case s.req.EnableIPv6:
		return "IPv6"
	default:
		return "IPv4"
	}
}

func (s *state) networks() (*PodNetworks, error) {
	if s.podNets == nil && s.netErr == nil {
		s.podNets, s.netErr = ParsePodNetworks(s.req.PodNamespace, s.req.PodAnnotations, s.req.ClusterDefaultNetwork)
	}
	return s.podNets, s.netErr
}

// interfaceNetwork resolves the NetworkAttachmentDefinition of the interface.
func (s *state) interfaceNetwork() (string, bool, error) {
	if !s.netDone {
		s.netDone = true
		if s.req.Network != "" {
			s.network, s.netKnown = s.req.Network, true
		} else if nets, err := s.networks(); err == nil {
			s.network, s.netKnown = nets.NetworkOf(s.req.Interface)
		}
	}
	return s.network, s.netKnown, s.netErr
}

// podAnnotationPools applies rules 1 and 2, then the application's subnet
// pools and Calico's pool annotations.
func (s *state) podAnnotationPools(x *Index, res *Result) (map[ranges.Family][]string, Rule, error) {
	req := s.req
	if v, ok := s.ann[annotations.PodIPPools]; ok {
		list, err := annotations.ParseIPPools(v)
		if err != nil {
			return nil, RuleNone, fmt.Errorf("failed to parse %s: %w", s.subject, err)
		}
		for i, item := range list {
			iface := item.Interface
			if iface == "" {
				nets, err := s.networks()
				if err != nil {
					return nil, RuleNone, fmt.Errorf("failed to map %s entries to interfaces of pod %s/%s: %w",
						annotations.PodIPPools, req.PodNamespace, req.PodName, err)
				}
				iface = nets.InterfaceAt(i)
			}
			if iface == req.Interface {
				res.CleanGateway = item.CleanGateway
				return map[ranges.Family][]string{ranges.V4: item.IPv4, ranges.V6: item.IPv6}, RulePodIPPools, nil
			}
		}
		return nil, RuleNone, fmt.Errorf("failed to select pools for %s of pod %s/%s: annotation %q has no entry for interface %q; "+
			`add an entry such as {"interface":%q,"ipv4":["<pool>"]} or remove the annotation`,
			req.Interface, req.PodNamespace, req.PodName, annotations.PodIPPools, req.Interface, req.Interface)
	}
	if v, ok := s.ann[annotations.PodIPPool]; ok {
		sel, err := annotations.ParseIPPool(v)
		if err != nil {
			return nil, RuleNone, fmt.Errorf("failed to parse %s: %w", s.subject, err)
		}
		return map[ranges.Family][]string{ranges.V4: sel.IPv4, ranges.V6: sel.IPv6}, RulePodIPPool, nil
	}
	if names, ok, err := s.appSubnetPools(x); err != nil || ok {
		return names, RuleAppSubnet, err
	}
	if req.Interface == DefaultInterface {
		out, found := map[ranges.Family][]string{}, false
		for f, key := range map[ranges.Family]string{ranges.V4: annotations.CalicoIPv4Pools, ranges.V6: annotations.CalicoIPv6Pools} {
			if v, ok := s.ann[key]; ok {
				names, err := annotations.ParsePoolList(key, v)
				if err != nil {
					return nil, RuleNone, fmt.Errorf("failed to parse %s: %w", s.subject, err)
				}
				out[f], found = names, true
			}
		}
		if found {
			return out, RulePodCalicoPools, nil
		}
	}
	return nil, RuleNone, nil
}

// appSubnetPools finds the pools the controller carved for the pod's
// application and interface from the subnets its annotations name. ok is
// false when they name none for the interface.
func (s *state) appSubnetPools(x *Index) (map[ranges.Family][]string, bool, error) {
	req := s.req
	def := req.DefaultSubnet
	if req.App == nil || req.App.ThirdParty() {
		def = nil // bare pods take the cluster default pools instead
	}
	a, ok, err := annotations.AppSubnetsOrDefault(s.ann, 0, def)
	if err != nil {
		return nil, false, fmt.Errorf("failed to parse %s: %w", s.subject, err)
	}
	if !ok {
		return nil, false, nil
	}
	var want *annotations.SubnetRequest
	for i := range a.Interfaces {
		if a.Interfaces[i].Interface == req.Interface {
			want = &a.Interfaces[i]
		}
	}
	if want == nil {
		return nil, false, nil
	}
	if req.App == nil {
		return nil, false, fmt.Errorf("failed to select pools for %s of pod %s/%s: annotation %q gives pools to the pods of an application, and this pod has no controller; "+
			"create it through a Deployment, StatefulSet or another controller, or name a pool with %q", req.Interface, req.PodNamespace, req.PodName, a.Source, annotations.PodIPPool)
	}
	if req.App.ThirdParty() && a.IPNumber.Flexible {
		return nil, false, fmt.Errorf("failed to select pools for %s of pod %s/%s: annotation %q gives pools to the pods of %s, a controller whose replicas spindle-controller cannot read; "+
			`set %q to a fixed number of addresses such as "5"`, req.Interface, req.PodNamespace, req.PodName, a.Source, req.App, annotations.PoolIPNumber)
	}
	out := map[ranges.Family][]string{}
	for _, f := range s.families() {
		subnet := want.IPv4
		if f == ranges.V6 {
			subnet = want.IPv6
		}
		if subnet == "" {
			continue
		}
		name := subnets.AutoPoolName(*req.App, req.Interface, f)
		if _, ok := x.byName[name]; !ok {
			return nil, false, &NoPoolError{Interface: req.Interface, Family: f, Rule: RuleAppSubnet, Waiting: true, Detail: fmt.Sprintf(
				"pool %q of %s is not carved from SpiderSubnet %q yet; spindle-controller creates it, and the pod starts then", name, req.App, subnet)}
		}
		out[f] = []string{name}
	}
	return out, true, nil
}

// fixed reads the pod's fixed-address annotations for the interface into
// res.Fixed and returns the addresses each family may get.
func (s *state) fixed(res *Result) (map[ranges.Family][]netip.Addr, error) {
	req := s.req
	var network *annotations.Network
	if req.Interface != DefaultInterface {
		if nw, ok, err := s.interfaceNetwork(); err == nil && ok {
			if ns, name, found := strings.Cut(nw, "/"); found {
				network = &annotations.Network{Namespace: ns, Name: name}
			}
		}
	}
	kubeIPAM := req.KubeIPAMInterface
	if kubeIPAM == "" {
		kubeIPAM = DefaultInterface
	}
	f, err := annotations.ParseFixed(s.ann, req.Interface == DefaultInterface, req.Interface == kubeIPAM, network)
	if err != nil {
		return nil, fmt.Errorf("failed to parse %s: %w", s.subject, err)
	}
	if f.Empty() {
		return nil, nil
	}
	res.Fixed = f
	out := map[ranges.Family][]netip.Addr{}
	add := func(set annotations.AddressSet) {
		if set.IPv4.IsValid() {
			out[ranges.V4] = append(out[ranges.V4], set.IPv4)
		}
		if set.IPv6.IsValid() {
			out[ranges.V6] = append(out[ranges.V6], set.IPv6)
		}
	}
	add(f.Addresses)
	switch {
	case len(f.List) == 0:
	case req.Ordinal != nil && *req.Ordinal >= 0 && *req.Ordinal < len(f.List):
		add(f.List[*req.Ordinal])
	case req.Ordinal != nil:
		fam := ranges.V4
		if !f.List[0].IPv4.IsValid() {
			fam = ranges.V6
		}
		return nil, &NoPoolError{Interface: req.Interface, Family: fam, Rule: RuleFixedAddress, Detail: fmt.Sprintf(
			"annotation %q lists %d entries and this StatefulSet replica has ordinal %d: the list is used up; add entries",
			annotations.OVNIPPool, len(f.List), *req.Ordinal)}
	default:
		for _, set := range f.List {
			add(set)
		}
	}
	return out, nil
}

// containing returns the pools of family f whose addresses include any of
// addrs, in name order.
func (x *Index) containing(f ranges.Family, addrs []netip.Addr) []*entry {
	var out []*entry
	for _, n := range x.names {
		e := x.byName[n]
		if e.familyErr != nil || e.family != f || !e.hasIPs {
			continue
		}
		for _, a := range addrs {
			if e.ips.Contains(a) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

func otherFamily(fixed map[ranges.Family][]netip.Addr) string {
	if len(fixed[ranges.V4]) > 0 {
		return "IPv4"
	}
	return "IPv6"
}

func addrList(addrs []netip.Addr) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// defaultPools applies rules 3 to 5 for one family.
func (s *state) defaultPools(x *Index, f ranges.Family) (Rule, []string, []*entry, error) {
	req := s.req
	keys, cni := []string{annotations.NamespaceDefaultIPv4Pool, annotations.CalicoIPv4Pools}, req.DefaultIPv4Pools
	if f == ranges.V6 {
		keys, cni = []string{annotations.NamespaceDefaultIPv6Pool, annotations.CalicoIPv6Pools}, req.DefaultIPv6Pools
	}
	// The native key first; Calico's namespace pools mean the same.
	for _, key := range keys {
		v, ok := req.NamespaceAnnotations[key]
		if !ok {
			continue
		}
		names, err := annotations.ParsePoolList(key, v)
		if err != nil {
			return RuleNone, nil, nil, fmt.Errorf("failed to parse namespace %q: %w", req.PodNamespace, err)
		}
		if len(names) > 0 {
			return RuleNamespace, names, nil, nil
		}
	}
	if len(cni) > 0 {
		return RuleCNIConfig, cni, nil, nil
	}
	if d := x.defaults[f]; len(d) > 0 {
		return RuleClusterDefault, nil, d, nil
	}
	return RuleNone, nil, nil, nil
}

// singleFamilyNetwork reports whether the CNI configuration of the
// interface's network names default pools of the other family than f only.
func (s *state) singleFamilyNetwork(f ranges.Family) bool {
	v4, v6 := len(s.req.DefaultIPv4Pools) > 0, len(s.req.DefaultIPv6Pools) > 0
	if f == ranges.V6 {
		return v4 && !v6
	}
	return v6 && !v4
}

// refuseKubeIPAM returns why pool e disagrees with the netmask or gateway
// a pod's kube-ipam annotations expect, or "".
func refuseKubeIPAM(e *entry, k *annotations.KubeIPAM) string {
	subnet, err := netip.ParsePrefix(e.pool.Spec.Subnet)
	if err != nil {
		return ""
	}
	if k.Netmask >= 0 && k.Netmask != subnet.Bits() {
		mask := net.CIDRMask(k.Netmask, 32)
		return fmt.Sprintf("%s %s (/%d) disagrees with the pool's subnet %s; change the annotation or serve the address from a pool with that netmask",
			annotations.KubeIPAMNetmask, net.IP(mask), k.Netmask, subnet)
	}
	if k.Gateway.IsValid() {
		gw := ""
		if e.pool.Spec.Gateway != nil {
			gw = *e.pool.Spec.Gateway
		}
		if g, err := netip.ParseAddr(gw); err != nil || g != k.Gateway {
			if gw == "" {
				gw = "none"
			}
			return fmt.Sprintf("%s %s disagrees with the pool's gateway %s; change the annotation or the pool's spec.gateway",
				annotations.KubeIPAMGateway, k.Gateway, gw)
		}
	}
	return ""
}

// refuse returns why e cannot serve the request for family f, or "".
func (s *state) refuse(e *entry, f ranges.Family) string {
	req, spec := s.req, &e.pool.Spec
	switch {
	case e.pool.DeletionTimestamp != nil:
		return "terminating"
	case spec.Disable != nil && *spec.Disable:
		return "disabled"
	case e.familyErr != nil:
		return e.familyErr.Error()
	case e.family != f:
		return fmt.Sprintf("is an %s pool", e.family)
	case e.selErr != "":
		return e.selErr
	}
	if r := refuseNode(spec, e.nodeSel, req.NodeName, req.NodeLabels); r != "" {
		return r
	}
	if r := refuseNamespace(spec, e.nsSel, req.PodNamespace, req.NamespaceLabels); r != "" {
		return r
	}
	if e.podSel != nil && !e.podSel.Matches(labels.Set(req.PodLabels)) {
		return fmt.Sprintf("pod affinity does not match pod %s/%s", req.PodNamespace, req.PodName)
	}
	if len(spec.MultusName) > 0 {
		nw, known, err := s.interfaceNetwork()
		switch {
		case err != nil:
			return fmt.Sprintf("multusName %v cannot be checked: %v", spec.MultusName, err)
		case !known:
			return fmt.Sprintf("multusName %v cannot be checked: the network of %s is unknown", spec.MultusName, req.Interface)
		}
		for _, m := range spec.MultusName {
			if !strings.Contains(m, "/") {
				m = req.SystemNamespace + "/" + m
			}
			if m == nw {
				return ""
			}
		}
		return fmt.Sprintf("multusName %v does not include network %q of %s", spec.MultusName, nw, req.Interface)
	}
	return ""
}

func refuseNode(spec *v2beta1.IPPoolSpec, sel labels.Selector, node string, nodeLabels map[string]string) string {
	if len(spec.NodeName) > 0 {
		if !slices.Contains(spec.NodeName, node) {
			return fmt.Sprintf("nodeName %v does not include node %q", spec.NodeName, node)
		}
	} else if sel != nil && !sel.Matches(labels.Set(nodeLabels)) {
		return fmt.Sprintf("node affinity does not match node %q", node)
	}
	return ""
}

func refuseNamespace(spec *v2beta1.IPPoolSpec, sel labels.Selector, namespace string, nsLabels map[string]string) string {
	if len(spec.NamespaceName) > 0 {
		if !slices.Contains(spec.NamespaceName, namespace) {
			return fmt.Sprintf("namespaceName %v does not include namespace %q", spec.NamespaceName, namespace)
		}
	} else if sel != nil && !sel.Matches(labels.Set(nsLabels)) {
		return fmt.Sprintf("namespace affinity does not match namespace %q", namespace)
	}
	return ""
}

// NodeRefusal returns why the pool's node affinity (nodeName, else
// nodeAffinity) refuses the node, or "" when the pool may serve its pods:
// the check Select makes.
func NodeRefusal(spec *v2beta1.IPPoolSpec, node string, nodeLabels map[string]string) string {
	sel, err := selector(spec.NodeAffinity)
	if err != nil {
		return "invalid spec.nodeAffinity: " + err.Error()
	}
	return refuseNode(spec, sel, node, nodeLabels)
}

// NamespaceRefusal returns why the pool's namespace affinity
// (namespaceName, else namespaceAffinity) refuses the namespace, or "":
// the check Select makes.
func NamespaceRefusal(spec *v2beta1.IPPoolSpec, namespace string, nsLabels map[string]string) string {
	sel, err := selector(spec.NamespaceAffinity)
	if err != nil {
		return "invalid spec.namespaceAffinity: " + err.Error()
	}
	return refuseNamespace(spec, sel, namespace, nsLabels)
}

// PodNetworks is the Multus view of a pod's interfaces.
type PodNetworks struct {
	// Default is the "namespace/name" of the network of eth0; empty when
	// unknown.
	Default string
	// Additional are the entries of k8s.v1.cni.cncf.io/networks, with their
	// interface names resolved.
	Additional []annotations.Network
}

// ParsePodNetworks reads the Multus annotations of a pod. clusterDefault is
// the "namespace/name" of Multus' cluster default network, used when the pod
// has no v1.multus-cni.io/default-network annotation.
func ParsePodNetworks(podNamespace string, podAnnotations map[string]string, clusterDefault string) (*PodNetworks, error) {
	p := &PodNetworks{Default: clusterDefault}
	if v, ok := podAnnotations[annotations.MultusDefaultNetwork]; ok {
		n, err := annotations.ParseDefaultNetwork(v, podNamespace)
		if err != nil {
			return nil, err
		}
		p.Default = n.Ref()
	}
	if v, ok := podAnnotations[annotations.MultusNetworks]; ok && strings.TrimSpace(v) != "" {
		nets, err := annotations.ParseNetworks(v, podNamespace)
		if err != nil {
			return nil, err
		}
		p.Additional = nets
	}
	return p, nil
}

// NetworkOf returns the "namespace/name" of the network attached as iface.
func (p *PodNetworks) NetworkOf(iface string) (string, bool) {
	if iface == DefaultInterface {
		return p.Default, p.Default != ""
	}
	for _, n := range p.Additional {
		if n.Interface == iface {
			return n.Ref(), true
		}
	}
	return "", false
}

// InterfaceAt returns the name of the pod's i-th (0-based) interface: eth0,
// then the interfaces of the additional networks in order (net<i> for
// positions beyond them).
func (p *PodNetworks) InterfaceAt(i int) string {
	switch {
	case i == 0:
		return DefaultInterface
	case i <= len(p.Additional):
		return p.Additional[i-1].Interface
	default:
		return annotations.DefaultInterfaceName(i - 1)
	}
}

// RoutesFor returns the routes of the ipam.spidernet.io/routes annotation
// that belong to an interface whose pools have the given subnets: those whose
// gateway lies in one of them.
func RoutesFor(routes []annotations.Route, subnets ...netip.Prefix) []annotations.Route {
	var out []annotations.Route
	for _, r := range routes {
		for _, s := range subnets {
			if s.Contains(r.Gw) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}
