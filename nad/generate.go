// Package nad turns a SpiderMultusConfig into the Multus
// NetworkAttachmentDefinition it stands for. Generate is pure; the controller
// in nad/controller applies its result.
package nad

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// DefaultCNIVersion is the cniVersion of generated configurations unless the
// multus.spidernet.io/cni-version annotation says otherwise.
const DefaultCNIVersion = "1.0.0"

// ResourceNameAnnotation is Multus's annotation naming the device-plugin
// resource a network needs (set for sriov).
const ResourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// Name returns the name of the NetworkAttachmentDefinition generated for m:
// the multus.spidernet.io/cr-name annotation, else m's name.
func Name(m *v2beta1.SpiderMultusConfig) string {
	if n := m.Annotations[v2beta1.AnnoMultusCRName]; n != "" {
		return n
	}
	return m.Name
}

// Generate returns the NetworkAttachmentDefinition for m (name, namespace,
// annotations and config; no owner reference). The config is a conflist:
// the main plugin with the spiderpool IPAM section, the chained plugins, then
// the coordinator (unless disabled). For cniType custom, spec.customCNI is
// the config verbatim.
func Generate(m *v2beta1.SpiderMultusConfig) (*netv1.NetworkAttachmentDefinition, error) {
	name := Name(m)
	out := &netv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: name},
	}
	conf, annotations, err := config(m, name)
	if err != nil {
		return nil, err
	}
	out.Spec.Config = conf
	if len(annotations) > 0 {
		out.Annotations = annotations
	}
	return out, nil
}

type obj = map[string]any

func config(m *v2beta1.SpiderMultusConfig, name string) (string, map[string]string, error) {
	s := &m.Spec
	cniVersion := DefaultCNIVersion
	if v := m.Annotations[v2beta1.AnnoMultusCNIVersion]; v != "" {
		cniVersion = v
	}
	var annotations map[string]string
	var plugins []any
	var pools *v2beta1.SpiderpoolPools

	switch s.CniType {
	case v2beta1.CNITypeCustom:
		if s.CustomCNIConfig == nil || strings.TrimSpace(*s.CustomCNIConfig) == "" {
			return "", nil, fmt.Errorf("failed to generate config of SpiderMultusConfig %q: spec.customCNI is empty", m.Namespace+"/"+m.Name)
		}
		var probe map[string]any
		if err := json.Unmarshal([]byte(*s.CustomCNIConfig), &probe); err != nil {
			return "", nil, fmt.Errorf("failed to parse spec.customCNI of SpiderMultusConfig %q: %w", m.Namespace+"/"+m.Name, err)
		}
		return *s.CustomCNIConfig, nil, nil
	case v2beta1.CNITypeMacvlan:
		c := s.MacvlanConfig
		if c == nil {
			return "", nil, missing(m, "spec.macvlan")
		}
		p := obj{"type": "macvlan", "master": master(c.Master, c.Bond, c.VlanID), "mode": "bridge"}
		setMTU(p, c.MTU)
		plugins, pools = append(plugins, p), c.SpiderpoolConfigPools
	case v2beta1.CNITypeIPvlan:
		c := s.IPVlanConfig
		if c == nil {
			return "", nil, missing(m, "spec.ipvlan")
		}
		p := obj{"type": "ipvlan", "master": master(c.Master, c.Bond, c.VlanID), "mode": "l2"}
		setMTU(p, c.MTU)
		plugins, pools = append(plugins, p), c.SpiderpoolConfigPools
	case v2beta1.CNITypeSriov:
		c := s.SriovConfig
		if c == nil {
			return "", nil, missing(m, "spec.sriov")
		}
		p := obj{"type": "sriov"}
		if c.VlanID != nil && *c.VlanID != 0 {
			p["vlan"] = *c.VlanID
		}
		if c.MinTxRateMbps != nil && *c.MinTxRateMbps > 0 {
			p["min_tx_rate"] = *c.MinTxRateMbps
		}
		if c.MaxTxRateMbps != nil && *c.MaxTxRateMbps > 0 {
			p["max_tx_rate"] = *c.MaxTxRateMbps
		}
		plugins, pools = append(plugins, p), c.SpiderpoolConfigPools
		if c.ResourceName != "" {
			annotations = map[string]string{ResourceNameAnnotation: c.ResourceName}
		}
		if c.EnableRdma {
			plugins = append(plugins, obj{"type": "rdma"})
		}
		if c.MTU != nil && *c.MTU > 0 {
			plugins = append(plugins, obj{"type": "tuning", "mtu": *c.MTU})
		}
	case v2beta1.CNITypeOvs:
		c := s.OvsConfig
		if c == nil {
			return "", nil, missing(m, "spec.ovs")
		}
		p := obj{"type": "ovs", "bridge": c.BrName}
		if c.VLAN != nil {
			p["vlan"] = *c.VLAN
		}
		if len(c.Trunk) > 0 {
			var trunk []any
			for _, t := range c.Trunk {
				if t == nil {
					continue
				}
				e := obj{}
				if t.ID != nil {
					e["id"] = *t.ID
				}
				if t.MinID != nil {
					e["minID"] = *t.MinID
				}
				if t.MaxID != nil {
					e["maxID"] = *t.MaxID
				}
				trunk = append(trunk, e)
			}
			p["trunk"] = trunk
		}
		if c.DeviceID != "" {
			p["deviceID"] = c.DeviceID
		}
		plugins, pools = append(plugins, p), c.SpiderpoolConfigPools
	default:
		return "", nil, fmt.Errorf("failed to generate config of SpiderMultusConfig %q: unknown spec.cniType %q", m.Namespace+"/"+m.Name, s.CniType)
	}

	if s.DisableIPAM == nil || !*s.DisableIPAM {
		ipam := obj{"type": "spiderpool"}
		if pools != nil && len(pools.IPv4IPPool) > 0 {
			ipam["default_ipv4_ippool"] = pools.IPv4IPPool
		}
		if pools != nil && len(pools.IPv6IPPool) > 0 {
			ipam["default_ipv6_ippool"] = pools.IPv6IPPool
		}
		plugins[0].(obj)["ipam"] = ipam
	}
	for i, raw := range s.ChainCNIJsonData {
		var p map[string]any
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return "", nil, fmt.Errorf("failed to parse spec.chainCNIJsonData[%d] of SpiderMultusConfig %q: %w", i, m.Namespace+"/"+m.Name, err)
		}
		plugins = append(plugins, p)
	}
	if s.EnableCoordinator == nil || *s.EnableCoordinator {
		co := obj{}
		if s.CoordinatorConfig != nil {
			raw, err := json.Marshal(s.CoordinatorConfig)
			if err != nil {
				return "", nil, fmt.Errorf("failed to encode spec.coordinator of SpiderMultusConfig %q: %w", m.Namespace+"/"+m.Name, err)
			}
			if err := json.Unmarshal(raw, &co); err != nil {
				return "", nil, fmt.Errorf("failed to encode spec.coordinator of SpiderMultusConfig %q: %w", m.Namespace+"/"+m.Name, err)
			}
			delete(co, "podCIDRType")  // cluster-wide only
			delete(co, "hostRPFilter") // accepted for compatibility, unused
		}
		co["type"] = "coordinator"
		plugins = append(plugins, co)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(obj{"cniVersion": cniVersion, "name": name, "plugins": plugins}); err != nil {
		return "", nil, fmt.Errorf("failed to encode config of SpiderMultusConfig %q: %w", m.Namespace+"/"+m.Name, err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), annotations, nil
}

func missing(m *v2beta1.SpiderMultusConfig, field string) error {
	return fmt.Errorf("failed to generate config of SpiderMultusConfig %q: %s is required for spec.cniType %q", m.Namespace+"/"+m.Name, field, m.Spec.CniType)
}

// master returns the host interface of a macvlan/ipvlan network: the bond
// when several masters are bonded, with ".<vlan>" appended for a VLAN (the
// VLAN interface must exist on the node).
func master(masters []string, bond *v2beta1.BondConfig, vlan *int32) string {
	m := ""
	if len(masters) > 0 {
		m = masters[0]
	}
	if bond != nil && bond.Name != "" {
		m = bond.Name
	}
	if vlan != nil && *vlan > 0 {
		m = fmt.Sprintf("%s.%d", m, *vlan)
	}
	return m
}

func setMTU(p obj, mtu *int32) {
	if mtu != nil && *mtu > 0 {
		p["mtu"] = *mtu
	}
}
