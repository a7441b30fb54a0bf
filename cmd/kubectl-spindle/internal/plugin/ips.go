package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Holder states of an address (column STATE of ips).
const (
	HolderRunning  = "Running"  // the pod exists with the claim's UID
	HolderGone     = "PodGone"  // no pod of that name
	HolderReplaced = "Replaced" // a pod of that name with another UID
	HolderUnknown  = "Unknown"  // the claim records no pod
)

// IPRow is one row of `kubectl spindle ips`: who holds an address.
type IPRow struct {
	Address   string    `json:"address"`
	Pool      string    `json:"pool"`
	Namespace string    `json:"namespace,omitempty"`
	Pod       string    `json:"pod,omitempty"`
	PodUID    string    `json:"podUID,omitempty"`
	Interface string    `json:"interface,omitempty"`
	Node      string    `json:"node,omitempty"`
	MAC       string    `json:"mac,omitempty"`
	Owner     string    `json:"owner,omitempty"`
	State     string    `json:"state"`
	Claim     string    `json:"claim"`
	ClaimUID  string    `json:"claimUID"`
	Created   time.Time `json:"created"`
	Age       string    `json:"age"`
}

// IPFilter selects the rows of ips; empty fields do not filter.
type IPFilter struct {
	Pool, Node, Namespace string
	Pod                   *PodRef
}

// podIndex finds pods by namespace/name.
type podIndex map[string]*corev1.Pod

func indexPods(pods []corev1.Pod) podIndex {
	ix := podIndex{}
	for i := range pods {
		ix[pods[i].Namespace+"/"+pods[i].Name] = &pods[i]
	}
	return ix
}

// holderState says whether the claim's pod is the live holder.
func (ix podIndex) holderState(c *v2beta1.SpiderIPClaim) (string, *corev1.Pod) {
	if c.Spec.PodName == "" {
		return HolderUnknown, nil
	}
	p := ix[c.Spec.PodNamespace+"/"+c.Spec.PodName]
	switch {
	case p == nil:
		return HolderGone, nil
	case c.Spec.PodUID != "" && string(p.UID) != c.Spec.PodUID:
		return HolderReplaced, p
	}
	return HolderRunning, p
}

// NetworkStatus parses the pod's k8s.v1.cni.cncf.io/network-status
// annotation; nil when there is none or it does not parse.
func NetworkStatus(p *corev1.Pod) []nadv1.NetworkStatus {
	v, ok := p.Annotations[nadv1.NetworkStatusAnnot]
	if !ok {
		return nil
	}
	var out []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil
	}
	return out
}

// BuildIPRows lists the claims that match f, in address order, with their
// holder's state and the interface's MAC (the claim's requested MAC, else
// the one in the pod's network status).
func BuildIPRows(claims []v2beta1.SpiderIPClaim, pods []corev1.Pod, f IPFilter, now time.Time) []IPRow {
	ix := indexPods(pods)
	var out []IPRow
	for i := range claims {
		c := &claims[i]
		switch {
		case f.Pool != "" && c.Spec.Pool != f.Pool,
			f.Node != "" && c.Spec.Node != f.Node,
			f.Namespace != "" && c.Spec.PodNamespace != f.Namespace,
			f.Pod != nil && (c.Spec.PodNamespace != f.Pod.Namespace || c.Spec.PodName != f.Pod.Name):
			continue
		}
		state, pod := ix.holderState(c)
		row := IPRow{Address: c.Spec.Address, Pool: c.Spec.Pool, Namespace: c.Spec.PodNamespace, Pod: c.Spec.PodName, PodUID: c.Spec.PodUID,
			Interface: c.Spec.Interface, Node: c.Spec.Node, MAC: c.Spec.MAC, State: state, Claim: c.Name, ClaimUID: string(c.UID),
			Created: c.CreationTimestamp.Time, Age: Age(now.Sub(c.CreationTimestamp.Time))}
		if c.Spec.OwnerKind != "" {
			row.Owner = c.Spec.OwnerKind + "/" + c.Spec.OwnerName
		}
		if row.MAC == "" && state == HolderRunning {
			for _, ns := range NetworkStatus(pod) {
				if ns.Interface == c.Spec.Interface {
					row.MAC = strings.ToLower(ns.Mac)
				}
			}
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		a, ea := netip.ParseAddr(out[i].Address)
		b, eb := netip.ParseAddr(out[j].Address)
		if ea != nil || eb != nil {
			return out[i].Address < out[j].Address
		}
		return a.Less(b)
	})
	return out
}

// WriteIPs prints the rows.
func WriteIPs(env *Env, rows []IPRow, format string) error {
	if format == "json" || format == "yaml" {
		if rows == nil {
			rows = []IPRow{}
		}
		return writeStructured(env.Stdout, format, rows)
	}
	headers := []string{"ADDRESS", "POOL", "POD", "INTERFACE", "NODE", "MAC", "STATE", "AGE"}
	if format == "wide" {
		headers = append(headers, "POD-UID", "OWNER", "CLAIM-UID")
	}
	t := newTable(env.Stdout, headers...)
	for _, r := range rows {
		pod := ""
		if r.Pod != "" {
			pod = r.Namespace + "/" + r.Pod
		}
		cells := []string{r.Address, r.Pool, pod, r.Interface, r.Node, r.MAC, r.State, r.Age}
		if format == "wide" {
			cells = append(cells, r.PodUID, r.Owner, r.ClaimUID)
		}
		t.row(cells...)
	}
	t.flush()
	if len(rows) == 0 {
		fmt.Fprintln(env.Stderr, "no SpiderIPClaim matches")
	}
	return nil
}

func ipsCommand() *command {
	var pool, pod, node, format string
	return &command{
		name: "ips",
		help: "kubectl spindle ips: who holds which address (from SpiderIPClaims), on which interface, with MAC and age.\n" +
			"STATE is Running (the claim's pod exists with its UID), PodGone, Replaced (a pod of that name with another UID) or Unknown.",
		bind: func(fs *pflag.FlagSet) {
			fs.StringVar(&pool, "pool", "", "only addresses of this SpiderIPPool")
			fs.StringVar(&pod, "pod", "", "only addresses held by this pod (NAMESPACE/NAME)")
			fs.StringVar(&node, "node", "", "only addresses of pods on this node")
			fs.StringVarP(&format, "output", "o", "", "output format: wide, json or yaml")
		},
		run: func(ctx context.Context, env *Env, _ *pflag.FlagSet, args []string) error {
			if err := noArgs("ips", args); err != nil {
				return err
			}
			if err := checkFormat(format, "", "wide", "json", "yaml"); err != nil {
				return err
			}
			if err := env.connect(); err != nil {
				return err
			}
			f := IPFilter{Pool: pool, Node: node}
			if pod != "" {
				ref, err := ParsePodRef(pod, env.Namespace)
				if err != nil {
					return usageErr("--pod: %v", err)
				}
				f.Pod = &ref
			} else if env.NamespaceSet {
				f.Namespace = env.Namespace
			}
			s, err := readIPAM(ctx, env.Client)
			if err != nil {
				return err
			}
			pods := &corev1.PodList{}
			if err := env.Client.List(ctx, pods); err != nil {
				return fmt.Errorf("failed to list pods: %w", err)
			}
			return WriteIPs(env, BuildIPRows(s.Claims, pods.Items, f, env.Now()), format)
		},
	}
}
