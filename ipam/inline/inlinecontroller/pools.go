// Package inlinecontroller turns every NetworkAttachmentDefinition whose
// spiderpool ipam object carries its own ranges into SpiderIPPools: one per
// family and subnet, and kube-ipam's fixed-only pool, each named with
// inline.PoolName, restricted to the network (spec.multusName) and kept in
// line with the configuration. Pools of a network that is deleted, or no
// longer carries ranges, are deleted; the pool finalizer keeps each until its
// last address is released.
package inlinecontroller

import (
	"errors"
	"fmt"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// ConfigError is a NetworkAttachmentDefinition whose inline ranges cannot be
// used.
type ConfigError struct {
	// Network is "namespace/name".
	Network string
	// Path is where the ipam object sits in spec.config ("ipam" or
	// "plugins[1].ipam").
	Path string
	Err  error
}

func (e *ConfigError) Error() string {
	var ie *inline.Error
	if errors.As(e.Err, &ie) {
		return fmt.Sprintf("NetworkAttachmentDefinition %s: spec.config %s.%s: %s", e.Network, e.Path, ie.Key, ie.Msg)
	}
	return fmt.Sprintf("NetworkAttachmentDefinition %s: spec.config: %v", e.Network, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Network is a NetworkAttachmentDefinition's inline ranges as pools.
type Network struct {
	// Ref is "namespace/name".
	Ref    string
	Config *inline.Config
	Pools  []v2beta1.SpiderIPPool
}

// Pools returns the pools of the network's inline ranges: nil when its
// configuration carries none (or is not one Spindle serves), a
// *ConfigError when it carries ranges that cannot be used.
func Pools(nad *netv1.NetworkAttachmentDefinition) (*Network, error) {
	ref := nad.Namespace + "/" + nad.Name
	path, ipam, err := inline.IPAMOf(nad.Spec.Config)
	if err != nil {
		return nil, &ConfigError{Network: ref, Path: path, Err: err}
	}
	if ipam == nil {
		return nil, nil
	}
	c, err := inline.Parse(ipam)
	if err != nil {
		return nil, &ConfigError{Network: ref, Path: path, Err: err}
	}
	if c == nil {
		return nil, nil
	}
	n := &Network{Ref: ref, Config: c}
	for _, p := range c.Pools {
		n.Pools = append(n.Pools, poolOf(nad, c, &p))
	}
	return n, nil
}

func poolOf(nad *netv1.NetworkAttachmentDefinition, c *inline.Config, p *inline.Pool) v2beta1.SpiderIPPool {
	ref := nad.Namespace + "/" + nad.Name
	pool := v2beta1.SpiderIPPool{
		TypeMeta: metav1.TypeMeta{APIVersion: v2beta1.GroupVersion.String(), Kind: "SpiderIPPool"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        inline.PoolName(nad.Namespace, nad.Name, p.Suffix),
			Labels:      map[string]string{v2beta1.LabelInline: "true"},
			Annotations: map[string]string{v2beta1.AnnoInlineNetwork: ref},
		},
		Spec: v2beta1.IPPoolSpec{
			IPVersion:  ptr.To(int64(p.Family)),
			Subnet:     p.Subnet.String(),
			IPs:        canonical(p.IPs),
			ExcludeIPs: canonical(p.Exclude),
			MultusName: []string{ref},
			Default:    ptr.To(false),
			Disable:    ptr.To(false),
		},
	}
	if c.SharedNetwork != "" {
		pool.Labels[v2beta1.LabelSharedNetwork] = c.SharedNetwork
	}
	if p.Gateway.IsValid() {
		pool.Spec.Gateway = ptr.To(p.Gateway.String())
	}
	for _, r := range p.Routes {
		pool.Spec.Routes = append(pool.Spec.Routes, v2beta1.Route{Dst: r.Dst.String(), Gw: r.GW.String()})
	}
	return pool
}

// sameSpec reports whether the pool already is what want asks for.
func sameSpec(cur, want *v2beta1.SpiderIPPool) bool {
	if cur.Labels[v2beta1.LabelSharedNetwork] != want.Labels[v2beta1.LabelSharedNetwork] {
		return false
	}
	return equality.Semantic.DeepEqual(cur.Spec, want.Spec)
}

// canonical writes ranges as the pool webhook stores them (sorted, merged).
func canonical(entries []string) []string {
	if len(entries) == 0 {
		return nil
	}
	rs := make([]ranges.Range, 0, len(entries))
	for _, e := range entries {
		r, err := ranges.ParseRange(e)
		if err != nil {
			return append([]string(nil), entries...)
		}
		rs = append(rs, r)
	}
	return ranges.NewSet(rs...).Strings()
}
