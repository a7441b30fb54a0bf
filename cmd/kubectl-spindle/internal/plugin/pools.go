package plugin

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/selection"
)

// PoolSummary is one row of `kubectl spindle pools`.
type PoolSummary struct {
	Name      string `json:"name"`
	Family    string `json:"family"`
	Subnet    string `json:"subnet"`
	Gateway   string `json:"gateway,omitempty"`
	Total     uint64 `json:"total"`
	Allocated int    `json:"allocated"`
	Free      uint64 `json:"free"`
	// UsedPercent is allocated addresses of the usable ones, in percent.
	UsedPercent float64 `json:"usedPercent"`
	Default     bool    `json:"default"`
	Disabled    bool    `json:"disabled"`
	Terminating bool    `json:"terminating,omitempty"`
	// Affinity summarises nodeName/nodeAffinity, namespaceName/
	// namespaceAffinity, podAffinity and multusName; "" for none.
	Affinity string `json:"affinity,omitempty"`
	// StatusAllocated is status.allocatedIPCount (nil when unset).
	StatusAllocated *int64 `json:"statusAllocatedIPCount,omitempty"`
	// Invalid explains why the pool does not parse.
	Invalid string `json:"invalid,omitempty"`
}

// SummarizePools computes the rows of the pools, in name order.
func SummarizePools(s *IPAM) []PoolSummary {
	usage := s.usage()
	out := make([]PoolSummary, 0, len(s.Pools))
	for i := range s.Pools {
		p := &s.Pools[i]
		u := usage[p.Name]
		row := PoolSummary{Name: p.Name, Subnet: p.Spec.Subnet, Allocated: u.claims, Total: u.total(), Free: u.free(),
			Default: p.Spec.Default != nil && *p.Spec.Default, Disabled: p.Spec.Disable != nil && *p.Spec.Disable,
			Terminating: p.DeletionTimestamp != nil, Affinity: AffinitySummary(&p.Spec), StatusAllocated: p.Status.AllocatedIPCount}
		if p.Spec.Gateway != nil {
			row.Gateway = *p.Spec.Gateway
		}
		if u.err != nil {
			row.Family, row.Invalid = "invalid", u.err.Error()
		} else {
			row.Family = u.family.String()
		}
		if row.Total > 0 {
			row.UsedPercent = float64(len(u.held)) * 100 / float64(row.Total)
		}
		out = append(out, row)
	}
	return out
}

// AffinitySummary describes a pool's affinities in one short line, e.g.
// "nodes=worker-1; namespaces~team=a; pods~app=db; networks=kube-system/macvlan".
// "=" lists names, "~" a label selector.
func AffinitySummary(spec *v2beta1.IPPoolSpec) string {
	var parts []string
	switch {
	case len(spec.NodeName) > 0:
		parts = append(parts, "nodes="+strings.Join(spec.NodeName, ","))
	case spec.NodeAffinity != nil:
		parts = append(parts, "nodes~"+selectorString(spec.NodeAffinity))
	}
	switch {
	case len(spec.NamespaceName) > 0:
		parts = append(parts, "namespaces="+strings.Join(spec.NamespaceName, ","))
	case spec.NamespaceAffinity != nil:
		parts = append(parts, "namespaces~"+selectorString(spec.NamespaceAffinity))
	}
	if spec.PodAffinity != nil {
		parts = append(parts, "pods~"+selectorString(spec.PodAffinity))
	}
	if len(spec.MultusName) > 0 {
		parts = append(parts, "networks="+strings.Join(spec.MultusName, ","))
	}
	return strings.Join(parts, "; ")
}

func selectorString(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "(invalid: " + err.Error() + ")"
	}
	if str := sel.String(); str != "" {
		return str
	}
	return "(everything)"
}

// FilterPools keeps the pools whose affinity could serve pods of node (with
// nodeLabels) and of namespace (with nsLabels); an empty name skips that
// filter. It applies selection's own node and namespace checks.
func FilterPools(rows []PoolSummary, pools []v2beta1.SpiderIPPool, node string, nodeLabels map[string]string, namespace string, nsLabels map[string]string) []PoolSummary {
	spec := map[string]*v2beta1.IPPoolSpec{}
	for i := range pools {
		spec[pools[i].Name] = &pools[i].Spec
	}
	var out []PoolSummary
	for _, r := range rows {
		s := spec[r.Name]
		if s == nil {
			continue
		}
		if node != "" && selection.NodeRefusal(s, node, nodeLabels) != "" {
			continue
		}
		if namespace != "" && selection.NamespaceRefusal(s, namespace, nsLabels) != "" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// WritePools prints rows as a table (wide adds gateway, counter and state).
func WritePools(env *Env, rows []PoolSummary, format string) error {
	if format == "json" || format == "yaml" {
		if rows == nil {
			rows = []PoolSummary{}
		}
		return writeStructured(env.Stdout, format, rows)
	}
	headers := []string{"NAME", "FAMILY", "SUBNET", "TOTAL", "ALLOCATED", "FREE", "USED", "DEFAULT", "DISABLED", "AFFINITY"}
	if format == "wide" {
		headers = append(headers, "GATEWAY", "STATUS-COUNT", "NOTE")
	}
	t := newTable(env.Stdout, headers...)
	for _, r := range rows {
		cells := []string{r.Name, r.Family, r.Subnet, strconv.FormatUint(r.Total, 10), strconv.Itoa(r.Allocated),
			strconv.FormatUint(r.Free, 10), fmt.Sprintf("%.0f%%", r.UsedPercent), strconv.FormatBool(r.Default), strconv.FormatBool(r.Disabled), r.Affinity}
		if format == "wide" {
			count := ""
			if r.StatusAllocated != nil {
				count = strconv.FormatInt(*r.StatusAllocated, 10)
			}
			note := r.Invalid
			if r.Terminating {
				note = strings.TrimPrefix(note+"; terminating", "; ")
			}
			cells = append(cells, r.Gateway, count, note)
		}
		t.row(cells...)
	}
	t.flush()
	if len(rows) == 0 {
		fmt.Fprintln(env.Stderr, "no SpiderIPPool matches")
	}
	return nil
}

func poolsCommand() *command {
	var node, format string
	return &command{
		name: "pools",
		help: "kubectl spindle pools: usage of every SpiderIPPool (addresses counted as the allocator counts them).\n" +
			"--node and --namespace keep the pools whose affinity could serve pods of that node / namespace.",
		bind: func(fs *pflag.FlagSet) {
			fs.StringVar(&node, "node", "", "only pools whose node affinity admits this node")
			fs.StringVarP(&format, "output", "o", "", "output format: wide, json or yaml")
		},
		run: func(ctx context.Context, env *Env, _ *pflag.FlagSet, args []string) error {
			if err := noArgs("pools", args); err != nil {
				return err
			}
			if err := checkFormat(format, "", "wide", "json", "yaml"); err != nil {
				return err
			}
			if err := env.connect(); err != nil {
				return err
			}
			s, err := readIPAM(ctx, env.Client)
			if err != nil {
				return err
			}
			rows := SummarizePools(s)
			var nodeLabels, nsLabels map[string]string
			if node != "" {
				n := &corev1.Node{}
				if err := env.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
					return findingsErr("--node %s: failed to read the node: %v", node, err)
				}
				nodeLabels = n.Labels
			}
			ns := ""
			if env.NamespaceSet {
				ns = env.Namespace
				n := &corev1.Namespace{}
				if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
					return findingsErr("--namespace %s: failed to read the namespace: %v", ns, err)
				}
				nsLabels = n.Labels
			}
			if node != "" || ns != "" {
				rows = FilterPools(rows, s.Pools, node, nodeLabels, ns, nsLabels)
			}
			return WritePools(env, rows, format)
		},
	}
}
