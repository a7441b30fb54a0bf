package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/cniplugin"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/podselect"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/selection"
)

// Verdicts of a candidate pool in why.
const (
	VerdictUse      = "use"      // the first candidate with a free address: the allocator takes it
	VerdictHolds    = "holds"    // the pod already holds an address of this pool here
	VerdictFallback = "fallback" // usable, tried if the ones before it fill up
	VerdictFull     = "full"     // no free address (the allocator skips it)
	VerdictRefused  = "refused"  // selection refused it (the reason says why)
)

// Candidate is one candidate pool of a family, in the order selection and
// the allocator consider them.
type Candidate struct {
	Pool    string `json:"pool"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	Free    uint64 `json:"free"`
	Total   uint64 `json:"total"`
}

// FamilyWhy explains one family of an interface.
type FamilyWhy struct {
	Family     string      `json:"family"`
	Rule       string      `json:"rule"`
	Candidates []Candidate `json:"candidates"`
	// Addresses are the fixed addresses the pod asks for, if any.
	Addresses []string `json:"addresses,omitempty"`
	// Holds is the address the pod holds on the interface now.
	Holds string `json:"holds,omitempty"`
	// Outcome sums it up; OK is false when the family gets no address.
	Outcome string `json:"outcome"`
	OK      bool   `json:"ok"`
}

// InterfaceWhy explains one interface.
type InterfaceWhy struct {
	Interface string `json:"interface"`
	Network   string `json:"network,omitempty"`
	// Evaluated is false for interfaces Spindle does not serve (Note says why).
	Evaluated        bool        `json:"evaluated"`
	Note             string      `json:"note,omitempty"`
	DefaultIPv4Pools []string    `json:"defaultIPv4Pools,omitempty"`
	DefaultIPv6Pools []string    `json:"defaultIPv6Pools,omitempty"`
	Error            string      `json:"error,omitempty"`
	Families         []FamilyWhy `json:"families,omitempty"`
}

// WhyReport is the outcome of why.
type WhyReport struct {
	Pod        string         `json:"pod"`
	PodUID     string         `json:"podUID,omitempty"`
	Node       string         `json:"node"`
	DryRun     bool           `json:"dryRun,omitempty"`
	Workload   string         `json:"workload,omitempty"`
	Inherits   string         `json:"inheritsAnnotationsOf,omitempty"`
	Settings   []Setting      `json:"settings"`
	Notes      []string       `json:"notes,omitempty"`
	Interfaces []InterfaceWhy `json:"interfaces"`
	// OK is false when an evaluated interface would get no address.
	OK bool `json:"ok"`
}

// WhyInput is everything why evaluates.
type WhyInput struct {
	Settings     *podselect.Settings
	SettingsUsed []Setting
	Pod          *corev1.Pod
	Namespace    *corev1.Namespace
	NodeName     string
	Node         *corev1.Node
	Workload     *podselect.Workload
	// NADs are the NetworkAttachmentDefinitions by "namespace/name".
	NADs map[string]*nadv1.NetworkAttachmentDefinition
	IPAM *IPAM
	// Only, when set, limits the interfaces (and evaluates them even when
	// their network is unknown).
	Only   []string
	DryRun bool
}

// NetworkIPAM reads a NetworkAttachmentDefinition's CNI configuration (a
// single plugin or a plugin list): whether a plugin uses the spiderpool
// IPAM, and its default pools. known is false for an empty configuration
// (Multus then reads the nodes' files, which the plugin cannot see).
func NetworkIPAM(config string) (known, served bool, v4, v6 []string, err error) {
	if strings.TrimSpace(config) == "" {
		return false, false, nil, nil, nil
	}
	var conf struct {
		IPAM    *cniplugin.IPAMConf `json:"ipam"`
		Plugins []struct {
			IPAM *cniplugin.IPAMConf `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &conf); err != nil {
		return true, false, nil, nil, fmt.Errorf("the CNI configuration does not parse: %w", err)
	}
	ipams := []*cniplugin.IPAMConf{conf.IPAM}
	for _, p := range conf.Plugins {
		ipams = append(ipams, p.IPAM)
	}
	for _, i := range ipams {
		if i != nil && i.Type == cniplugin.PluginType {
			return true, true, i.DefaultIPv4Pools, i.DefaultIPv6Pools, nil
		}
	}
	return true, false, nil, nil, nil
}

// inlinePools returns the pools of the inline ranges of network ns/name
// (the agent's choice for such a network); ok is false when the
// configuration carries none or they do not parse (the plugin's ADD then
// fails with the key at fault).
func inlinePools(network, config string) (v4, v6 []string, ok bool) {
	ns, name, found := strings.Cut(network, "/")
	_, ipam, err := inline.IPAMOf(config)
	if !found || err != nil || ipam == nil {
		return nil, nil, false
	}
	c, err := inline.Parse(ipam)
	if err != nil || c == nil {
		return nil, nil, false
	}
	s4, s6 := c.Families()
	for _, s := range s4 {
		v4 = append(v4, inline.PoolName(ns, name, s))
	}
	for _, s := range s6 {
		v6 = append(v6, inline.PoolName(ns, name, s))
	}
	return v4, v6, true
}

// podInterfaces lists the pod's interfaces and what their networks say.
func podInterfaces(in *WhyInput, held map[string]bool) ([]InterfaceWhy, error) {
	pod := in.Pod
	nets, err := selection.ParsePodNetworks(pod.Namespace, pod.Annotations, in.Settings.ClusterDefaultNetwork)
	if err != nil {
		return nil, err
	}
	only := map[string]bool{}
	for _, o := range in.Only {
		only[o] = true
	}
	var out []InterfaceWhy
	for i := 0; i <= len(nets.Additional); i++ {
		name := nets.InterfaceAt(i)
		if len(only) > 0 && !only[name] {
			continue
		}
		nw, _ := nets.NetworkOf(name)
		iw := InterfaceWhy{Interface: name, Network: nw}
		if nw != "" && !strings.Contains(nw, "/") {
			nw = in.Settings.SystemNamespace + "/" + nw
			iw.Network = nw
		}
		switch {
		case nw == "":
			iw.Evaluated = only[name] || held[name]
			if iw.Evaluated {
				iw.Note = "network unknown (no " + "v1.multus-cni.io/default-network annotation and no cluster-default-network setting); evaluated as served by Spindle with no CNI default pools"
			} else {
				iw.Note = "network unknown (no v1.multus-cni.io/default-network annotation and no cluster-default-network setting) and the pod holds no address on it: assumed not served by Spindle; pass --interface " + name + " to evaluate it"
			}
		case in.NADs[nw] == nil:
			iw.Note = fmt.Sprintf("NetworkAttachmentDefinition %s not found: Multus cannot attach this interface; create it", nw)
			iw.Error = iw.Note
		default:
			known, served, v4, v6, err := NetworkIPAM(in.NADs[nw].Spec.Config)
			switch {
			case err != nil:
				iw.Error = fmt.Sprintf("NetworkAttachmentDefinition %s: %v", nw, err)
			case !known:
				iw.Evaluated = true
				iw.Note = fmt.Sprintf("NetworkAttachmentDefinition %s has no inline configuration (the nodes' files decide); evaluated as served by Spindle with no CNI default pools", nw)
			case !served:
				iw.Evaluated = only[name]
				iw.Note = fmt.Sprintf("NetworkAttachmentDefinition %s does not use the %s IPAM: not Spindle's", nw, cniplugin.PluginType)
			default:
				iw.Evaluated = true
				iw.DefaultIPv4Pools, iw.DefaultIPv6Pools = v4, v6
				if p4, p6, ok := inlinePools(nw, in.NADs[nw].Spec.Config); ok {
					iw.DefaultIPv4Pools, iw.DefaultIPv6Pools = p4, p6
					iw.Note = fmt.Sprintf("NetworkAttachmentDefinition %s carries its own ranges: served by its pools", nw)
				}
			}
		}
		out = append(out, iw)
	}
	return out, nil
}

// Explain evaluates every interface of the pod with the agent's own
// selection (podselect.Request, selection.Index.Select), then counts each
// candidate's free addresses the way the allocator does.
func Explain(in *WhyInput) *WhyReport {
	pod := in.Pod
	r := &WhyReport{Pod: pod.Namespace + "/" + pod.Name, PodUID: string(pod.UID), Node: in.NodeName, DryRun: in.DryRun, Settings: in.SettingsUsed, OK: true}
	if w := in.Workload; w != nil {
		if w.App != nil {
			r.Workload = fmt.Sprintf("%s %s/%s", w.App.Kind, w.App.Namespace, w.App.Name)
		}
		r.Inherits = w.Owner
	}
	if in.Node == nil && in.NodeName != "" {
		r.Notes = append(r.Notes, fmt.Sprintf("node %q not found: node affinity is evaluated against no labels", in.NodeName))
	}
	if in.Namespace == nil {
		r.Notes = append(r.Notes, fmt.Sprintf("namespace %q not found: namespace affinity and annotations are evaluated as empty", pod.Namespace))
	}
	// The pod's current claims (its UID), by interface and family.
	holds := map[string]map[ranges.Family]*v2beta1.SpiderIPClaim{}
	heldIfaces := map[string]bool{}
	var heldList []string
	for i := range in.IPAM.Claims {
		c := &in.IPAM.Claims[i]
		if c.Spec.PodNamespace != pod.Namespace || c.Spec.PodName != pod.Name {
			continue
		}
		if !heldIfaces[c.Spec.Interface] {
			heldIfaces[c.Spec.Interface] = true
			heldList = append(heldList, c.Spec.Interface)
		}
		if pod.UID == "" || c.Spec.PodUID != string(pod.UID) {
			continue
		}
		a, err := netip.ParseAddr(c.Spec.Address)
		if err != nil {
			continue
		}
		if holds[c.Spec.Interface] == nil {
			holds[c.Spec.Interface] = map[ranges.Family]*v2beta1.SpiderIPClaim{}
		}
		holds[c.Spec.Interface][ranges.FamilyOf(a.Unmap())] = c
	}
	ifaces, err := podInterfaces(in, heldIfaces)
	if err != nil {
		r.OK = false
		r.Interfaces = []InterfaceWhy{{Interface: selection.DefaultInterface, Error: err.Error()}}
		return r
	}
	pools := make([]*v2beta1.SpiderIPPool, len(in.IPAM.Pools))
	for i := range in.IPAM.Pools {
		pools[i] = &in.IPAM.Pools[i]
	}
	idx := selection.NewIndex(pools)
	usage := in.IPAM.usage()
	facts := &podselect.Facts{Pod: pod, Namespace: in.Namespace, NodeName: in.NodeName, Node: in.Node, Workload: in.Workload,
		HeldInterfaces: func() []string { return heldList }}
	for i := range ifaces {
		iw := &ifaces[i]
		if iw.Error != "" {
			r.OK = false
			continue
		}
		if !iw.Evaluated {
			continue
		}
		req := podselect.Request(in.Settings, facts, podselect.Interface{Name: iw.Interface, DefaultIPv4Pools: iw.DefaultIPv4Pools, DefaultIPv6Pools: iw.DefaultIPv6Pools})
		explainInterface(iw, idx, req, usage, holds[iw.Interface], pod)
		for _, f := range iw.Families {
			r.OK = r.OK && f.OK
		}
		if iw.Error != "" {
			r.OK = false
		}
	}
	r.Interfaces = ifaces
	return r
}

func explainInterface(iw *InterfaceWhy, idx *selection.Index, req *selection.Request, usage map[string]*poolUsage, holds map[ranges.Family]*v2beta1.SpiderIPClaim, pod *corev1.Pod) {
	res, err := idx.Select(req)
	if err == nil {
		for _, f := range []ranges.Family{ranges.V4, ranges.V6} {
			fr := res.Family(f)
			if fr.Rule == selection.RuleNone && len(fr.Pools) == 0 {
				continue
			}
			iw.Families = append(iw.Families, explainFamily(f, fr, usage, holds[f], pod))
		}
		return
	}
	var npe *selection.NoPoolError
	if !errors.As(err, &npe) {
		iw.Error = err.Error() // a malformed annotation: the agent refuses the same way
		return
	}
	// The agent stops at the first family without a pool; explain that
	// one, and the other family on its own.
	fw := FamilyWhy{Family: npe.Family.String(), Rule: npe.Rule.String(), Outcome: "no pool: " + npe.Error()}
	for _, rj := range npe.Rejected {
		fw.Candidates = append(fw.Candidates, refusedCandidate(rj, usage))
	}
	families := []FamilyWhy{fw}
	other := *req
	if npe.Family == ranges.V4 {
		other.EnableIPv4 = false
	} else {
		other.EnableIPv6 = false
	}
	if other.EnableIPv4 || other.EnableIPv6 {
		of := ranges.V6
		if npe.Family == ranges.V6 {
			of = ranges.V4
		}
		if res, err := idx.Select(&other); err == nil {
			if fr := res.Family(of); fr.Rule != selection.RuleNone || len(fr.Pools) > 0 {
				ofw := explainFamily(of, fr, usage, holds[of], pod)
				ofw.Outcome += fmt.Sprintf(" (but the pod gets no address until %s is fixed)", npe.Family)
				ofw.OK = false
				families = append(families, ofw)
			}
		} else if errors.As(err, &npe) && npe.Family == of {
			ofw := FamilyWhy{Family: of.String(), Rule: npe.Rule.String(), Outcome: "no pool: " + npe.Error()}
			for _, rj := range npe.Rejected {
				ofw.Candidates = append(ofw.Candidates, refusedCandidate(rj, usage))
			}
			families = append(families, ofw)
		}
	}
	if families[0].Family == ranges.V6.String() && len(families) == 2 {
		families[0], families[1] = families[1], families[0]
	}
	iw.Families = families
}

func refusedCandidate(rj selection.RejectedPool, usage map[string]*poolUsage) Candidate {
	c := Candidate{Pool: rj.Name, Verdict: VerdictRefused, Reason: rj.Reason}
	if u := usage[rj.Name]; u != nil {
		c.Free, c.Total = u.free(), u.total()
	}
	return c
}

// explainFamily orders the candidates as the allocator tries them: the
// usable ones (a held address first, then the first with a free address),
// then the refused ones.
func explainFamily(f ranges.Family, fr *selection.FamilyResult, usage map[string]*poolUsage, held *v2beta1.SpiderIPClaim, pod *corev1.Pod) FamilyWhy {
	fw := FamilyWhy{Family: f.String(), Rule: fr.Rule.String()}
	for _, a := range fr.Addresses {
		fw.Addresses = append(fw.Addresses, a.String())
	}
	if held != nil {
		fw.Holds = held.Spec.Address
	}
	chosen := ""
	for _, name := range fr.Pools {
		u := usage[name]
		c := Candidate{Pool: name}
		if u != nil {
			c.Free, c.Total = u.free(), u.total()
		}
		switch {
		case held != nil && held.Spec.Pool == name:
			c.Verdict, c.Reason = VerdictHolds, "the pod holds "+held.Spec.Address+" from it"
			if chosen == "" {
				chosen = name
			}
		case len(fr.Addresses) > 0:
			avail, why := fixedAvailable(u, fr.Addresses, pod)
			switch {
			case !avail:
				c.Verdict, c.Reason = VerdictFull, why
			case chosen == "" && held == nil:
				c.Verdict, c.Reason, chosen = VerdictUse, why, name
			default:
				c.Verdict, c.Reason = VerdictFallback, why
			}
		case c.Free == 0:
			c.Verdict, c.Reason = VerdictFull, fmt.Sprintf("no free address (%d of %d usable addresses claimed)", c.Total, c.Total)
		case chosen == "" && held == nil:
			c.Verdict, c.Reason, chosen = VerdictUse, fmt.Sprintf("%d of %d addresses free", c.Free, c.Total), name
		default:
			c.Verdict, c.Reason = VerdictFallback, fmt.Sprintf("%d of %d addresses free", c.Free, c.Total)
		}
		fw.Candidates = append(fw.Candidates, c)
	}
	for _, rj := range fr.Rejected {
		fw.Candidates = append(fw.Candidates, refusedCandidate(rj, usage))
	}
	switch {
	case held != nil:
		fw.OK, fw.Outcome = true, fmt.Sprintf("holds %s from pool %s", held.Spec.Address, held.Spec.Pool)
	case chosen != "":
		fw.OK, fw.Outcome = true, "gets an address from pool "+chosen
	case len(fr.Pools) == 0:
		fw.Outcome = "no pool: every candidate is refused"
	default:
		fw.Outcome = "no address: every usable candidate pool is full (the agent retries until one has a free address)"
	}
	return fw
}

// fixedAvailable tells whether one of the requested addresses lies in the
// pool's usable addresses and is not held by another pod.
func fixedAvailable(u *poolUsage, addrs []netip.Addr, pod *corev1.Pod) (bool, string) {
	if u == nil || u.layout == nil {
		return false, "the pool does not parse"
	}
	var held []string
	for _, a := range addrs {
		if !u.layout.Usable.Contains(a) {
			continue
		}
		c := u.held[a]
		if c == nil || (pod.UID != "" && c.Spec.PodUID == string(pod.UID)) {
			return true, fmt.Sprintf("requested address %s is free", a)
		}
		held = append(held, fmt.Sprintf("%s (held by %s/%s)", a, c.Spec.PodNamespace, c.Spec.PodName))
	}
	if len(held) == 0 {
		return false, "none of the requested addresses is usable in this pool (excluded, reserved or the gateway)"
	}
	return false, "requested addresses taken: " + strings.Join(held, ", ")
}

// WriteWhy prints the explanation.
func WriteWhy(env *Env, r *WhyReport) {
	w := env.Stdout
	kind := "Pod"
	if r.DryRun {
		kind = "Pod (dry run)"
	}
	fmt.Fprintf(w, "%s %s on node %s", kind, r.Pod, r.Node)
	if r.PodUID != "" {
		fmt.Fprintf(w, " (UID %s)", r.PodUID)
	}
	fmt.Fprintln(w)
	if r.Workload != "" {
		fmt.Fprintf(w, "Application: %s\n", r.Workload)
	}
	if r.Inherits != "" {
		fmt.Fprintf(w, "Pool and address annotations inherited from: %s\n", r.Inherits)
	}
	fmt.Fprintln(w, "Agent settings assumed:")
	for _, s := range r.Settings {
		v := s.Value
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(w, "  %s=%s  (%s)\n", s.Name, v, s.Source)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	for _, iw := range r.Interfaces {
		fmt.Fprintln(w)
		head := iw.Interface
		if iw.Network != "" {
			head += " (network " + iw.Network + ")"
		}
		fmt.Fprintln(w, head)
		if len(iw.DefaultIPv4Pools)+len(iw.DefaultIPv6Pools) > 0 {
			fmt.Fprintf(w, "  CNI default pools: IPv4 %v, IPv6 %v\n", iw.DefaultIPv4Pools, iw.DefaultIPv6Pools)
		}
		if iw.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", iw.Note)
		}
		if iw.Error != "" && iw.Error != iw.Note {
			fmt.Fprintf(w, "  error: %s\n", iw.Error)
		}
		for _, f := range iw.Families {
			fmt.Fprintf(w, "  %s, candidates from %s:\n", f.Family, f.Rule)
			if len(f.Addresses) > 0 {
				fmt.Fprintf(w, "    asks for %s\n", strings.Join(f.Addresses, ", "))
			}
			t := newTable(w, "    #", "POOL", "VERDICT", "FREE", "REASON")
			for i, c := range f.Candidates {
				t.row(fmt.Sprintf("    %d", i+1), c.Pool, c.Verdict, fmt.Sprintf("%d/%d", c.Free, c.Total), c.Reason)
			}
			t.flush()
			mark := "=>"
			if !f.OK {
				mark = "=> FAIL:"
			}
			fmt.Fprintf(w, "    %s %s\n", mark, f.Outcome)
		}
	}
	fmt.Fprintln(w)
	if r.OK {
		fmt.Fprintln(w, "Result: every evaluated interface gets its addresses.")
	} else {
		fmt.Fprintln(w, "Result: some interface gets no address (see FAIL and error above).")
	}
}
