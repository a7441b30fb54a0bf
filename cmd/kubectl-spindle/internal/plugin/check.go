package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
)

// Kinds of findings of check.
const (
	// FindingLeaked: a claim whose pod no longer exists (or exists with
	// another UID), older than the grace period, that no StatefulSet keeps.
	FindingLeaked = "leaked"
	// FindingLost: a running pod shows a Spindle address in its status
	// with no claim naming the pod's UID.
	FindingLost = "lost"
	// FindingDuplicate: one Spindle address in the status of two live pods.
	FindingDuplicate = "duplicate"
	// FindingCounterDrift: status.allocatedIPCount of a pool differs from
	// the number of its claims.
	FindingCounterDrift = "counter-drift"
	// FindingEndpoint: a pod's SpiderEndpoint disagrees with its claims.
	FindingEndpoint = "endpoint"
)

// Finding is one inconsistency.
type Finding struct {
	Kind      string `json:"kind"`
	Address   string `json:"address,omitempty"`
	Pool      string `json:"pool,omitempty"`
	Pod       string `json:"pod,omitempty"` // namespace/name
	PodUID    string `json:"podUID,omitempty"`
	Interface string `json:"interface,omitempty"`
	// Claim and ClaimUID identify the claim of a leaked address; release
	// --from-report deletes exactly that claim.
	Claim    string `json:"claim,omitempty"`
	ClaimUID string `json:"claimUID,omitempty"`
	Detail   string `json:"detail"`
}

// Report is the outcome of check (-o json).
type Report struct {
	Generated time.Time      `json:"generated"`
	Grace     string         `json:"grace"`
	Checked   map[string]int `json:"checked"`
	Findings  []Finding      `json:"findings"`
}

// CheckInput are the objects check compares.
type CheckInput struct {
	Now          time.Time
	Grace        time.Duration
	IPAM         *IPAM
	Pods         []corev1.Pod
	Endpoints    []v2beta1.SpiderEndpoint
	StatefulSets []appsv1.StatefulSet
}

// podLive: running, not terminating, has its own network.
func podLive(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && !p.Spec.HostNetwork
}

// statusAddress is an address a pod shows, and on which interface.
type statusAddress struct {
	addr  netip.Addr
	iface string
}

// statusAddresses are the addresses of the pod's network status annotation
// and status.podIPs, without duplicates.
func statusAddresses(p *corev1.Pod) []statusAddress {
	seen := map[netip.Addr]bool{}
	var out []statusAddress
	add := func(s, iface string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			if pf, err2 := netip.ParsePrefix(s); err2 == nil {
				a = pf.Addr()
			} else {
				return
			}
		}
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, statusAddress{addr: a, iface: iface})
		}
	}
	for _, ns := range NetworkStatus(p) {
		for _, ip := range ns.IPs {
			add(ip, ns.Interface)
		}
	}
	for _, ip := range p.Status.PodIPs {
		add(ip.IP, "")
	}
	return out
}

// Check compares claims, pods, their network status, SpiderEndpoints and
// pool counters. Only Spindle's addresses (inside some pool's spec.ips) are
// considered in pods' status.
func Check(in *CheckInput) *Report {
	r := &Report{Generated: in.Now.UTC(), Grace: in.Grace.String(), Findings: []Finding{},
		Checked: map[string]int{"pools": len(in.IPAM.Pools), "claims": len(in.IPAM.Claims), "pods": len(in.Pods), "endpoints": len(in.Endpoints)}}
	usage := in.IPAM.usage()
	pods := indexPods(in.Pods)
	poolByName := map[string]*v2beta1.SpiderIPPool{}
	for i := range in.IPAM.Pools {
		poolByName[in.IPAM.Pools[i].Name] = &in.IPAM.Pools[i]
	}
	sts := map[string]*appsv1.StatefulSet{}
	for i := range in.StatefulSets {
		sts[in.StatefulSets[i].Namespace+"/"+in.StatefulSets[i].Name] = &in.StatefulSets[i]
	}
	claimByAddr := map[netip.Addr]*v2beta1.SpiderIPClaim{}
	claimsByUID := map[string]map[netip.Addr]*v2beta1.SpiderIPClaim{}
	for i := range in.IPAM.Claims {
		c := &in.IPAM.Claims[i]
		a, err := netip.ParseAddr(c.Spec.Address)
		if err != nil {
			continue
		}
		a = a.Unmap()
		claimByAddr[a] = c
		if c.Spec.PodUID != "" {
			if claimsByUID[c.Spec.PodUID] == nil {
				claimsByUID[c.Spec.PodUID] = map[netip.Addr]*v2beta1.SpiderIPClaim{}
			}
			claimsByUID[c.Spec.PodUID][a] = c
		}
	}

	// Leaked: claims whose holder is gone.
	for i := range in.IPAM.Claims {
		c := &in.IPAM.Claims[i]
		state, pod := pods.holderState(c)
		if state != HolderGone && state != HolderReplaced {
			continue
		}
		if age := in.Now.Sub(c.CreationTimestamp.Time); age < in.Grace {
			continue
		}
		if c.Spec.OwnerKind == lifecycle.KindVirtualMachineInstance {
			continue // kept for the virtual machine's next launcher pod
		}
		d := lifecycle.Decide(lifecycle.Input{
			Holder: lifecycle.Holder{Namespace: c.Spec.PodNamespace, Name: c.Spec.PodName, UID: types.UID(c.Spec.PodUID),
				OwnerKind: c.Spec.OwnerKind, OwnerName: c.Spec.OwnerName},
			Pod: pod, StatefulSet: sts[c.Spec.PodNamespace+"/"+c.Spec.OwnerName], Now: in.Now,
			PoolReleasesOnScaleDown: poolByName[c.Spec.Pool] != nil && lifecycle.ReleasesOnScaleDown(poolByName[c.Spec.Pool].Annotations),
		})
		if !d.Collect {
			continue // e.g. a StatefulSet keeps it for the replica's next pod
		}
		detail := fmt.Sprintf("pod %s/%s no longer exists", c.Spec.PodNamespace, c.Spec.PodName)
		if state == HolderReplaced {
			detail = fmt.Sprintf("pod %s/%s now has UID %s, the claim names UID %s", c.Spec.PodNamespace, c.Spec.PodName, pod.UID, c.Spec.PodUID)
		}
		detail += fmt.Sprintf(" (claim created %s ago)", Age(in.Now.Sub(c.CreationTimestamp.Time)))
		r.Findings = append(r.Findings, Finding{Kind: FindingLeaked, Address: c.Spec.Address, Pool: c.Spec.Pool,
			Pod: c.Spec.PodNamespace + "/" + c.Spec.PodName, PodUID: c.Spec.PodUID, Interface: c.Spec.Interface,
			Claim: c.Name, ClaimUID: string(c.UID), Detail: detail})
	}

	// Lost and duplicate: addresses in live pods' status.
	shownBy := map[netip.Addr][]*corev1.Pod{}
	for i := range in.Pods {
		p := &in.Pods[i]
		if !podLive(p) {
			continue
		}
		for _, sa := range statusAddresses(p) {
			inPools := in.IPAM.poolsContaining(usage, sa.addr)
			if len(inPools) == 0 {
				continue // not Spindle's address
			}
			shownBy[sa.addr] = append(shownBy[sa.addr], p)
			if _, ok := claimsByUID[string(p.UID)][sa.addr]; ok {
				continue
			}
			detail := fmt.Sprintf("pod shows %s", sa.addr)
			if sa.iface != "" {
				detail += " on " + sa.iface
			}
			if c := claimByAddr[sa.addr]; c != nil {
				detail += fmt.Sprintf(", but its claim names pod %s/%s (UID %s)", c.Spec.PodNamespace, c.Spec.PodName, c.Spec.PodUID)
			} else {
				detail += ", but no SpiderIPClaim holds it: the allocator may hand it to another pod"
			}
			r.Findings = append(r.Findings, Finding{Kind: FindingLost, Address: sa.addr.String(), Pool: strings.Join(inPools, ","),
				Pod: p.Namespace + "/" + p.Name, PodUID: string(p.UID), Interface: sa.iface, Detail: detail})
		}
	}
	addrs := make([]netip.Addr, 0, len(shownBy))
	for a := range shownBy {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		ps := shownBy[a]
		if len(ps) < 2 {
			continue
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		sort.Strings(names)
		r.Findings = append(r.Findings, Finding{Kind: FindingDuplicate, Address: a.String(), Pool: strings.Join(in.IPAM.poolsContaining(usage, a), ","),
			Pod: strings.Join(names, ","), Detail: fmt.Sprintf("%s is in the status of %d live pods: %s", a, len(ps), strings.Join(names, ", "))})
	}

	// Endpoints of live pods against their claims.
	for i := range in.Endpoints {
		se := &in.Endpoints[i]
		p := pods[se.Namespace+"/"+se.Name]
		if p == nil || !podLive(p) || se.Status.Current.UID != string(p.UID) {
			continue
		}
		for _, d := range se.Status.Current.IPs {
			for _, s := range []*string{d.IPv4, d.IPv6} {
				if s == nil {
					continue
				}
				a := addrOf(*s)
				if !a.IsValid() {
					continue
				}
				if _, ok := claimsByUID[string(p.UID)][a]; !ok {
					r.Findings = append(r.Findings, Finding{Kind: FindingEndpoint, Address: a.String(), Pod: p.Namespace + "/" + p.Name, PodUID: string(p.UID),
						Interface: d.Interface, Detail: fmt.Sprintf("SpiderEndpoint %s/%s lists %s on %s, but no claim of the pod holds it", se.Namespace, se.Name, a, d.Interface)})
				}
			}
		}
	}

	// Counter drift.
	for i := range in.IPAM.Pools {
		p := &in.IPAM.Pools[i]
		n := usage[p.Name].claims
		switch {
		case p.Status.AllocatedIPCount == nil && n > 0:
			r.Findings = append(r.Findings, Finding{Kind: FindingCounterDrift, Pool: p.Name,
				Detail: fmt.Sprintf("status.allocatedIPCount is unset, the pool has %d claims", n)})
		case p.Status.AllocatedIPCount != nil && *p.Status.AllocatedIPCount != int64(n):
			r.Findings = append(r.Findings, Finding{Kind: FindingCounterDrift, Pool: p.Name,
				Detail: fmt.Sprintf("status.allocatedIPCount is %d, the pool has %d claims", *p.Status.AllocatedIPCount, n)})
		}
	}
	return r
}

// addrOf parses "10.6.0.5/16" or "10.6.0.5".
func addrOf(s string) netip.Addr {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// WriteCheck prints the findings as a table, or that there are none.
func WriteCheck(env *Env, r *Report) {
	if len(r.Findings) == 0 {
		fmt.Fprintf(env.Stdout, "no findings: %d pools, %d claims, %d pods, %d SpiderEndpoints checked (grace %s)\n",
			r.Checked["pools"], r.Checked["claims"], r.Checked["pods"], r.Checked["endpoints"], r.Grace)
		return
	}
	t := newTable(env.Stdout, "KIND", "ADDRESS", "POOL", "POD", "INTERFACE", "DETAIL")
	for _, f := range r.Findings {
		t.row(f.Kind, f.Address, f.Pool, f.Pod, f.Interface, f.Detail)
	}
	t.flush()
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Kind]++
	}
	var parts []string
	for _, k := range []string{FindingLeaked, FindingLost, FindingDuplicate, FindingCounterDrift, FindingEndpoint} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	fmt.Fprintf(env.Stdout, "%d findings: %s\n", len(r.Findings), strings.Join(parts, ", "))
}

func readCheckInput(ctx context.Context, env *Env, grace time.Duration) (*CheckInput, error) {
	s, err := readIPAM(ctx, env.Client)
	if err != nil {
		return nil, err
	}
	in := &CheckInput{Now: env.Now(), Grace: grace, IPAM: s}
	pods := &corev1.PodList{}
	if err := env.Client.List(ctx, pods); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	eps := &v2beta1.SpiderEndpointList{}
	if err := env.Client.List(ctx, eps); err != nil {
		return nil, fmt.Errorf("failed to list SpiderEndpoints: %w", err)
	}
	sts := &appsv1.StatefulSetList{}
	if err := env.Client.List(ctx, sts); err != nil {
		return nil, fmt.Errorf("failed to list StatefulSets: %w", err)
	}
	in.Pods, in.Endpoints, in.StatefulSets = pods.Items, eps.Items, sts.Items
	return in, nil
}

// transient reports whether a finding may be a moment's lag of an
// eventually consistent writer (the pool counters, the SpiderEndpoints)
// rather than a fault: it is re-read once after settle before it counts.
func transient(f Finding) bool { return f.Kind == FindingCounterDrift || f.Kind == FindingEndpoint }

func key(f Finding) string { return f.Kind + "|" + f.Address + "|" + f.Pool + "|" + f.Pod }

// RunCheck reads the cluster and checks it. Findings that may be a lag of
// the controller or the agents are confirmed by a second read after settle.
func RunCheck(ctx context.Context, env *Env, grace, settle time.Duration) (*Report, error) {
	in, err := readCheckInput(ctx, env, grace)
	if err != nil {
		return nil, err
	}
	r := Check(in)
	again := false
	for _, f := range r.Findings {
		again = again || transient(f)
	}
	if !again || settle <= 0 {
		return r, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(settle):
	}
	in2, err := readCheckInput(ctx, env, grace)
	if err != nil {
		return nil, err
	}
	r2 := Check(in2)
	still := map[string]bool{}
	for _, f := range r2.Findings {
		still[key(f)] = true
	}
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		if !transient(f) || still[key(f)] {
			kept = append(kept, f)
		}
	}
	r.Findings = kept
	return r, nil
}

func checkCommand() *command {
	var format string
	var grace, settle time.Duration
	return &command{
		name: "check",
		help: "kubectl spindle check: consistency of claims, pods, their network status, SpiderEndpoints and pool counters.\n" +
			"Finds leaked addresses (claim of a pod that is gone, older than --grace), lost ones (a running pod shows a Spindle\n" +
			"address no claim of it holds), duplicates (one address in two live pods), counter drift (status.allocatedIPCount\n" +
			"differs from the pool's claims) and SpiderEndpoints that list addresses the pod holds no claim for.\n" +
			"Exits 1 when there is any finding. -o json|yaml prints the report; -o FILE writes it (JSON) and prints the table.",
		bind: func(fs *pflag.FlagSet) {
			fs.DurationVar(&grace, "grace", 2*time.Minute, "claims younger than this are never reported as leaked (an ADD may be in progress)")
			fs.DurationVar(&settle, "settle", 3*time.Second, "counter and SpiderEndpoint findings are confirmed by a second read after this long (0: no second read)")
			fs.StringVarP(&format, "output", "o", "", "json or yaml: print the report; any other value: write the JSON report to that file")
		},
		run: func(ctx context.Context, env *Env, _ *pflag.FlagSet, args []string) error {
			if err := noArgs("check", args); err != nil {
				return err
			}
			if grace < 0 {
				return usageErr("--grace %s: must not be negative", grace)
			}
			if err := env.connect(); err != nil {
				return err
			}
			r, err := RunCheck(ctx, env, grace, settle)
			if err != nil {
				return err
			}
			switch format {
			case "json", "yaml":
				if err := writeStructured(env.Stdout, format, r); err != nil {
					return err
				}
			case "":
				WriteCheck(env, r)
			default:
				b, err := json.MarshalIndent(r, "", "  ")
				if err != nil {
					return err
				}
				if err := os.WriteFile(format, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("failed to write the report to %s (-o): %w", format, err)
				}
				WriteCheck(env, r)
				fmt.Fprintf(env.Stderr, "report written to %s\n", format)
			}
			if len(r.Findings) > 0 {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
}
