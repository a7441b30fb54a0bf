package webhook

import (
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// Known CNI versions for the multus.spidernet.io/cni-version annotation.
var cniVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// PoolFamilies maps pool names to their family, for checking the pools a
// SpiderMultusConfig names. Pools missing from the map are unknown.
type PoolFamilies map[string]ranges.Family

// cniTypes lists the supported spec.cniType values and the field of each
// type's own section.
var cniTypes = []struct{ name, field string }{
	{v2beta1.CNITypeMacvlan, "spec.macvlan"},
	{v2beta1.CNITypeIPvlan, "spec.ipvlan"},
	{v2beta1.CNITypeSriov, "spec.sriov"},
	{v2beta1.CNITypeOvs, "spec.ovs"},
	{v2beta1.CNITypeCustom, "spec.customCNI"},
}

// ValidateMultusConfig checks a SpiderMultusConfig. pools gives the family of
// the existing pools; naming a pool that does not exist yet is only a
// warning, so manifests can be applied in any order.
func ValidateMultusConfig(m *v2beta1.SpiderMultusConfig, pools PoolFamilies) (warnings []string, err error) {
	var es Errors
	s := &m.Spec
	validateMultusAnnotations(&es, m.Annotations)

	set := map[string]bool{
		v2beta1.CNITypeMacvlan: s.MacvlanConfig != nil,
		v2beta1.CNITypeIPvlan:  s.IPVlanConfig != nil,
		v2beta1.CNITypeSriov:   s.SriovConfig != nil,
		v2beta1.CNITypeOvs:     s.OvsConfig != nil,
		v2beta1.CNITypeCustom:  s.CustomCNIConfig != nil,
	}
	own, names := "", make([]string, 0, len(cniTypes))
	for _, t := range cniTypes {
		names = append(names, t.name)
		if t.name == s.CniType {
			own = t.field
		}
	}
	if own == "" {
		es.add("spec.cniType", "%q is not a supported CNI type: use one of %s", s.CniType, strings.Join(names, ", "))
		return nil, es.Err()
	}
	for _, t := range cniTypes {
		if t.name != s.CniType && set[t.name] {
			es.add(t.field, "is set but spec.cniType is %q: remove %s or set spec.cniType to %q", s.CniType, t.field, t.name)
		}
	}

	var pp *v2beta1.SpiderpoolPools
	switch s.CniType {
	case v2beta1.CNITypeMacvlan:
		if c := s.MacvlanConfig; c != nil {
			validateLink(&es, own, c.Master, c.Bond, c.VlanID, c.MTU)
			pp = c.SpiderpoolConfigPools
		} else {
			es.add(own, "is required when spec.cniType is %q: set %s.master to the host interface, e.g. eth1", s.CniType, own)
		}
	case v2beta1.CNITypeIPvlan:
		if c := s.IPVlanConfig; c != nil {
			validateLink(&es, own, c.Master, c.Bond, c.VlanID, c.MTU)
			pp = c.SpiderpoolConfigPools
		} else {
			es.add(own, "is required when spec.cniType is %q: set %s.master to the host interface, e.g. eth1", s.CniType, own)
		}
	case v2beta1.CNITypeSriov:
		validateSriov(&es, s.SriovConfig)
		if s.SriovConfig != nil {
			pp = s.SriovConfig.SpiderpoolConfigPools
		}
	case v2beta1.CNITypeOvs:
		validateOvs(&es, s.OvsConfig)
		if s.OvsConfig != nil {
			pp = s.OvsConfig.SpiderpoolConfigPools
		}
	case v2beta1.CNITypeCustom:
		validateCustom(&es, s.CustomCNIConfig)
	}
	for i, raw := range s.ChainCNIJsonData {
		var obj map[string]any
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			es.add(idx("spec.chainCNIJsonData", i), "is not a JSON object (%v): write one plugin configuration such as {\"type\":\"tuning\"}", err)
			continue
		}
		if t, ok := obj["type"].(string); !ok || t == "" {
			es.add(idx("spec.chainCNIJsonData", i), "has no \"type\": every chained plugin configuration needs its plugin type")
		}
	}
	if s.CoordinatorConfig != nil {
		validateCoordinatorSpec(&es, "spec.coordinator", s.CoordinatorConfig)
	}
	if pp != nil {
		poolsField := own + ".ippools"
		if s.DisableIPAM != nil && *s.DisableIPAM && len(pp.IPv4IPPool)+len(pp.IPv6IPPool) > 0 {
			warnings = append(warnings, poolsField+" is ignored because spec.disableIPAM is true")
		}
		warnings = append(warnings, checkPools(&es, poolsField+".ipv4", pp.IPv4IPPool, ranges.V4, pools)...)
		warnings = append(warnings, checkPools(&es, poolsField+".ipv6", pp.IPv6IPPool, ranges.V6, pools)...)
	}
	return warnings, es.Err()
}

func validateMultusAnnotations(es *Errors, annotations map[string]string) {
	if n, ok := annotations[v2beta1.AnnoMultusCRName]; ok {
		for _, msg := range validation.IsDNS1123Subdomain(n) {
			es.add("metadata.annotations["+v2beta1.AnnoMultusCRName+"]", "%q is not a valid object name (%s): use lower-case letters, digits, '-' and '.'", n, msg)
		}
	}
	if v, ok := annotations[v2beta1.AnnoMultusCNIVersion]; ok && !oneOf(v, cniVersions) {
		es.add("metadata.annotations["+v2beta1.AnnoMultusCNIVersion+"]", "%q is not a CNI version: use one of %s", v, strings.Join(cniVersions, ", "))
	}
}

// validateLink checks the macvlan/ipvlan section at field f.
func validateLink(es *Errors, f string, master []string, bond *v2beta1.BondConfig, vlan, mtu *int32) {
	if len(master) == 0 {
		es.add(f+".master", "is empty: name the host interface(s) the pods attach to, e.g. [eth1]")
	}
	for i, n := range master {
		checkIfName(es, idx(f+".master", i), n)
	}
	if len(master) > 1 && bond == nil {
		es.add(f+".master", "lists %d interfaces but %s.bond is not set: list one interface, or set %s.bond to bond them", len(master), f, f)
	}
	if bond != nil {
		checkIfName(es, f+".bond.name", bond.Name)
		if bond.Mode < 0 || bond.Mode > 6 {
			es.add(f+".bond.mode", "%d is not a bonding mode: use 0 to 6", bond.Mode)
		}
	}
	checkVLAN(es, f+".vlanID", vlan)
	checkMTU(es, f+".mtu", mtu)
}

func validateSriov(es *Errors, c *v2beta1.SpiderSRIOVCniConfig) {
	if c == nil || strings.TrimSpace(c.ResourceName) == "" {
		es.add("spec.sriov.resourceName", "is required when spec.cniType is \"sriov\": set it to the device plugin resource of the VFs, e.g. spidernet.io/sriov_netdevice")
		return
	}
	checkVLAN(es, "spec.sriov.vlanID", c.VlanID)
	checkMTU(es, "spec.sriov.mtu", c.MTU)
	if c.MinTxRateMbps != nil && *c.MinTxRateMbps < 0 {
		es.add("spec.sriov.minTxRateMbps", "%d is negative: use 0 to disable the limit", *c.MinTxRateMbps)
	}
	if c.MaxTxRateMbps != nil && *c.MaxTxRateMbps < 0 {
		es.add("spec.sriov.maxTxRateMbps", "%d is negative: use 0 to disable the limit", *c.MaxTxRateMbps)
	}
	if c.MinTxRateMbps != nil && c.MaxTxRateMbps != nil && *c.MaxTxRateMbps > 0 && *c.MinTxRateMbps > *c.MaxTxRateMbps {
		es.add("spec.sriov.minTxRateMbps", "%d is above spec.sriov.maxTxRateMbps %d: lower it or raise the maximum", *c.MinTxRateMbps, *c.MaxTxRateMbps)
	}
}

func validateOvs(es *Errors, c *v2beta1.SpiderOvsCniConfig) {
	if c == nil || strings.TrimSpace(c.BrName) == "" {
		es.add("spec.ovs.bridge", "is required when spec.cniType is \"ovs\": set it to the OVS bridge, e.g. br1")
		return
	}
	checkVLAN(es, "spec.ovs.vlan", c.VLAN)
	for i, t := range c.Trunk {
		f := idx("spec.ovs.trunk", i)
		if t == nil {
			es.add(f, "is empty: set id, or minID and maxID")
			continue
		}
		if t.ID == nil && (t.MinID == nil || t.MaxID == nil) {
			es.add(f, "sets neither id nor both minID and maxID: set id for one VLAN or minID and maxID for a range")
		}
		for _, v := range []struct {
			name string
			val  *uint
		}{{"id", t.ID}, {"minID", t.MinID}, {"maxID", t.MaxID}} {
			if v.val != nil && *v.val > 4094 {
				es.add(f+"."+v.name, "%d is not a VLAN ID: use 0 to 4094", *v.val)
			}
		}
		if t.MinID != nil && t.MaxID != nil && *t.MinID > *t.MaxID {
			es.add(f, "minID %d is above maxID %d: swap them", *t.MinID, *t.MaxID)
		}
	}
}

func validateCustom(es *Errors, conf *string) {
	if conf == nil || strings.TrimSpace(*conf) == "" {
		es.add("spec.customCNI", "is required when spec.cniType is \"custom\": set it to a complete CNI configuration (JSON)")
		return
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(*conf), &obj); err != nil {
		es.add("spec.customCNI", "is not a JSON object (%v): write a complete CNI configuration such as {\"cniVersion\":\"1.0.0\",\"type\":\"macvlan\",...}", err)
		return
	}
	_, hasType := obj["type"].(string)
	plugins, hasPlugins := obj["plugins"].([]any)
	if !hasType && !hasPlugins {
		es.add("spec.customCNI", "has neither \"type\" nor \"plugins\": write a single plugin configuration with \"type\" or a configuration list with \"plugins\"")
	}
	if hasPlugins && len(plugins) == 0 {
		es.add("spec.customCNI", "\"plugins\" is empty: list at least one plugin")
	}
}

func checkPools(es *Errors, field string, names []string, fam ranges.Family, pools PoolFamilies) []string {
	var warnings []string
	for i, n := range names {
		f := idx(field, i)
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			es.add(f, "%q is not a SpiderIPPool name (%s)", n, msgs[0])
			continue
		}
		got, ok := pools[n]
		if !ok {
			warnings = append(warnings, f+": SpiderIPPool "+n+" does not exist yet; pods using this network fail until it is created")
			continue
		}
		if got != fam {
			es.add(f, "SpiderIPPool %q is an %s pool: list it under %s instead", n, got, strings.ToLower(got.String()))
		}
	}
	return warnings
}

func checkVLAN(es *Errors, field string, v *int32) {
	if v != nil && (*v < 0 || *v > 4094) {
		es.add(field, "%d is not a VLAN ID: use 1 to 4094, or 0 for untagged", *v)
	}
}

func checkMTU(es *Errors, field string, v *int32) {
	if v != nil && *v < 0 {
		es.add(field, "%d is negative: use 0 to keep the default MTU or a positive MTU", *v)
	}
}

// DefaultMultusConfig sets enableCoordinator (true) and disableIPAM (false)
// when unset.
func DefaultMultusConfig(m *v2beta1.SpiderMultusConfig) {
	setDefault(&m.Spec.EnableCoordinator, true)
	setDefault(&m.Spec.DisableIPAM, false)
}
