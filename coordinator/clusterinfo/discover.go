// Package clusterinfo keeps the status of the SpiderCoordinator "default"
// current: the cluster's service CIDRs and the pod CIDRs of its default
// network, discovered from the API, with phase Synced only while discovery
// succeeds. It also creates the "default" object when it is missing.
package clusterinfo

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Phases of status.phase.
const (
	PhaseSynced   = "Synced"
	PhaseNotReady = "NotReady"
)

// Pod CIDR types of spec.podCIDRType.
const (
	PodCIDRAuto    = "auto"
	PodCIDRCluster = "cluster"
	PodCIDRCalico  = "calico"
	PodCIDRCilium  = "cilium"
	PodCIDRNone    = "none"
)

// Found is the outcome of one discovery: the CIDRs and where they came from,
// or why nothing was found.
type Found struct {
	CIDRs  []string
	Source string
	// Problem explains an unsuccessful discovery (empty on success).
	Problem string
}

// OK reports whether the discovery succeeded.
func (f Found) OK() bool { return f.Problem == "" && len(f.CIDRs) > 0 }

// Status computes the coordinator status from the service and pod CIDR
// discoveries. podNeeded is false for podCIDRType none.
func Status(svc, pod Found, podNeeded bool) v2beta1.CoordinatorStatus {
	st := v2beta1.CoordinatorStatus{ServiceCIDR: svc.CIDRs}
	if podNeeded {
		st.OverlayPodCIDR = pod.CIDRs
	}
	var problems []string
	if !svc.OK() {
		problems = append(problems, "service CIDR: "+orDefault(svc.Problem, "not found"))
	}
	if podNeeded && !pod.OK() {
		problems = append(problems, "pod CIDR: "+orDefault(pod.Problem, "not found"))
	}
	if len(problems) > 0 {
		st.Phase = PhaseNotReady
		st.Reason = strings.Join(problems, "; ")
		return st
	}
	st.Phase = PhaseSynced
	return st
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// NormalizeCIDRs parses, masks, de-duplicates and sorts CIDRs (IPv4 first).
// Entries that do not parse are returned in bad.
func NormalizeCIDRs(in []string) (out []string, bad []string) {
	seen := map[netip.Prefix]bool{}
	var ps []netip.Prefix
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				bad = append(bad, part)
				continue
			}
			p = p.Masked()
			if !seen[p] {
				seen[p] = true
				ps = append(ps, p)
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Addr().Is4() != ps[j].Addr().Is4() {
			return ps[i].Addr().Is4()
		}
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out, bad
}

// KubeadmNetworking returns the podSubnet and serviceSubnet of the
// ClusterConfiguration stored in the kubeadm-config ConfigMap.
func KubeadmNetworking(clusterConfiguration string) (podSubnet, serviceSubnet []string, err error) {
	var cfg struct {
		Networking struct {
			PodSubnet     string `json:"podSubnet"`
			ServiceSubnet string `json:"serviceSubnet"`
		} `json:"networking"`
	}
	if err := yaml.Unmarshal([]byte(clusterConfiguration), &cfg); err != nil {
		return nil, nil, fmt.Errorf("failed to parse ClusterConfiguration: %w", err)
	}
	return splitList(cfg.Networking.PodSubnet), splitList(cfg.Networking.ServiceSubnet), nil
}

// ControllerManagerFlags returns the --cluster-cidr and
// --service-cluster-ip-range values of a kube-controller-manager command line.
func ControllerManagerFlags(args []string) (clusterCIDR, serviceRange []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		for flag, dst := range map[string]*[]string{"--cluster-cidr": &clusterCIDR, "--service-cluster-ip-range": &serviceRange} {
			switch {
			case strings.HasPrefix(a, flag+"="):
				*dst = splitList(strings.TrimPrefix(a, flag+"="))
			case a == flag && i+1 < len(args):
				*dst = splitList(args[i+1])
			}
		}
	}
	return clusterCIDR, serviceRange
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
