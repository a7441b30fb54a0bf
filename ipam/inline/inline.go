// Package inline reads the address ranges a network configuration carries in
// its "ipam" object when the type is spiderpool: host-local's "ranges",
// whereabouts' "range"/"range_start"/"range_end"/"exclude" (and "ipRanges"),
// and kube-ipam's "subnet"/"fixedStart"/"fixedEnd"/"rangeStart"/"rangeEnd"
// with "gateway", "routes" and "resolvConf". spindle-controller turns such a
// NetworkAttachmentDefinition into SpiderIPPools named with PoolName; the
// spiderpool plugin asks the agent to allocate from them.
//
// The package is pure and links only the standard library, because the CNI
// plugin uses it on every ADD.
package inline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Form says which dialect the ranges are written in.
type Form string

// The forms Parse understands.
const (
	FormHostLocal  Form = "host-local ranges"
	FormWhereabout Form = "whereabouts range"
	FormKubeIPAM   Form = "kube-ipam subnet"
)

// PluginType is the ipam type whose objects may carry ranges.
const PluginType = "spiderpool"

// SharedNetworkKey is the ipam key that lets the ranges of two networks
// overlap: NetworkAttachmentDefinitions that give it the same value attach to
// one network, and their pools share its addresses (every address is still
// handed out once).
const SharedNetworkKey = "sharedNetwork"

// Config is what an inline ipam object asks for.
type Config struct {
	Form Form
	// Pools are the pools of the network: per family the pools everyone
	// allocates from (in order), then kube-ipam's fixed-only pool.
	Pools []Pool
	// SharedNetwork is the value of SharedNetworkKey ("" when unset).
	SharedNetwork string
	// DNS is the explicit "dns" object; nil when absent.
	DNS *DNS
	// ResolvConf is the "resolvConf" path on the node; "" when absent.
	ResolvConf string
	// Ignored lists the keys that mean something to another IPAM plugin only
	// (its datastore, logging, leader election), sorted.
	Ignored []string
}

// Pool is one pool of an inline network.
type Pool struct {
	// Suffix ends the pool's name (see PoolName): "v4", "v6", "v4-2" for
	// the second IPv4 subnet, "fixed-v4" for kube-ipam's fixed range.
	Suffix string
	// Family is 4 or 6.
	Family int
	Subnet netip.Prefix
	// IPs are inclusive ranges ("a-b") or single addresses, in order.
	IPs []string
	// Exclude are addresses and ranges never handed out.
	Exclude []string
	// Gateway is invalid when the range has none.
	Gateway netip.Addr
	Routes  []Route
	// FixedOnly marks kube-ipam's fixed range: its addresses go only to
	// pods that ask for one by annotation.
	FixedOnly bool
	// Key is the configuration key the pool comes from, for errors.
	Key string
}

// Route is a route of the pool's family with an explicit next hop.
type Route struct {
	Dst netip.Prefix
	GW  netip.Addr
}

// DNS is the CNI result's dns object.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Error is an invalid inline configuration: Key is the ipam key at fault
// ("ranges[0][1].rangeEnd").
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return "ipam." + e.Key + ": " + e.Msg }

func errf(key, format string, args ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ownKeys are the keys of the spiderpool ipam object itself.
var ownKeys = map[string]bool{
	"type": true, "socket": true, "ipam_unix_socket_path": true,
	"default_ipv4_ippool": true, "default_ipv6_ippool": true,
	"dns": true, "resolvConf": true, SharedNetworkKey: true,
	"routes": true, "gateway": true,
}

var formKeys = map[Form]map[string]bool{
	FormHostLocal:  {"ranges": true},
	FormWhereabout: {"range": true, "range_start": true, "range_end": true, "exclude": true, "ipRanges": true},
	FormKubeIPAM:   {"subnet": true, "fixedStart": true, "fixedEnd": true, "rangeStart": true, "rangeEnd": true},
}

// ignoredKeys mean something to host-local, whereabouts or kube-ipam only:
// where they keep state, how they log, how they elect a leader. A network
// migrates by changing only its ipam type, so they are accepted.
var ignoredKeys = map[string]bool{
	"name": true, "dataDir": true, "etcdConfig": true, "kubeConfig": true,
	"kubernetes": true, "datastore": true, "configuration_path": true,
	"log_file": true, "log_level": true, "network_name": true,
	"enable_overlapping_ranges": true, "sleep_for_race": true,
	"reconciler_cron_expression": true, "node_slice_size": true,
	"optimistic_ip_lock": true,
}

func ignored(k string) bool {
	return ignoredKeys[k] || strings.HasPrefix(k, "etcd_") || strings.HasPrefix(k, "leader_")
}

// Parse reads the ipam object of a network configuration. It returns nil
// and no error when the object carries no ranges (a configuration that names
// pools, or none). Errors are *Error.
func Parse(ipam []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(ipam, &raw); err != nil {
		return nil, &Error{Key: "", Msg: "is not a JSON object: " + err.Error()}
	}
	var forms []Form
	for _, f := range []Form{FormHostLocal, FormWhereabout, FormKubeIPAM} {
		for k := range formKeys[f] {
			if _, ok := raw[k]; ok {
				forms = append(forms, f)
				break
			}
		}
	}
	if len(forms) == 0 {
		return nil, nil
	}
	if len(forms) > 1 {
		return nil, errf(firstKey(raw, formKeys[forms[1]]), "mixes %s with %s: write the ranges in one form", forms[1], forms[0])
	}
	c := &Config{Form: forms[0]}
	for _, k := range []string{"default_ipv4_ippool", "default_ipv6_ippool"} {
		if _, ok := raw[k]; ok {
			return nil, errf(k, "names pools, but the configuration carries %s too: either name pools or write ranges, not both", c.Form)
		}
	}
	for k := range raw {
		switch {
		case ownKeys[k] || formKeys[c.Form][k]:
		case ignored(k):
			c.Ignored = append(c.Ignored, k)
		default:
			return nil, errf(k, "is not a key of %s: remove it or correct its spelling", c.Form)
		}
	}
	sort.Strings(c.Ignored)
	if err := c.common(raw); err != nil {
		return nil, err
	}
	var err error
	switch c.Form {
	case FormHostLocal:
		err = c.hostLocal(raw)
	case FormWhereabout:
		err = c.whereabouts(raw)
	case FormKubeIPAM:
		err = c.kubeIPAM(raw)
	}
	if err != nil {
		return nil, err
	}
	if err := c.routes(raw); err != nil {
		return nil, err
	}
	return c, nil
}

func firstKey(raw map[string]json.RawMessage, keys map[string]bool) string {
	var out []string
	for k := range keys {
		if _, ok := raw[k]; ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out[0]
}

func decode(raw map[string]json.RawMessage, key string, v any) error {
	b, ok := raw[key]
	if !ok || bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errf(key, "cannot be read: %v", err)
	}
	return nil
}

func (c *Config) common(raw map[string]json.RawMessage) error {
	if err := decode(raw, SharedNetworkKey, &c.SharedNetwork); err != nil {
		return err
	}
	if c.SharedNetwork != "" && !isLabelValue(c.SharedNetwork) {
		return errf(SharedNetworkKey, "%q is not a valid name: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", c.SharedNetwork)
	}
	if err := decode(raw, "resolvConf", &c.ResolvConf); err != nil {
		return err
	}
	if c.ResolvConf != "" && !strings.HasPrefix(c.ResolvConf, "/") {
		return errf("resolvConf", "%q must be an absolute path of a file on the node", c.ResolvConf)
	}
	var dns DNS
	if _, ok := raw["dns"]; ok {
		if err := decode(raw, "dns", &dns); err != nil {
			return err
		}
		if err := dns.validate("dns"); err != nil {
			return err
		}
		c.DNS = &dns
	}
	return nil
}

func (d *DNS) validate(key string) error {
	for i, ns := range d.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			return errf(fmt.Sprintf("%s.nameservers[%d]", key, i), "%q is not an IP address", ns)
		}
	}
	return nil
}

// hostRange is one range of host-local's "ranges" (and of kube-ipam's
// top level, which uses the same keys).
type hostRange struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart"`
	RangeEnd   string `json:"rangeEnd"`
	Gateway    string `json:"gateway"`
}

func (c *Config) hostLocal(raw map[string]json.RawMessage) error {
	var sets [][]hostRange
	if err := decode(raw, "ranges", &sets); err != nil {
		return err
	}
	if len(sets) == 0 {
		return errf("ranges", "is empty: list at least one range set, e.g. [[{\"subnet\": \"10.1.0.0/24\"}]]")
	}
	if err := rejectKeys(raw, "gateway", "host-local's ranges carry their gateway in each range: move it into ranges[i][j].gateway"); err != nil {
		return err
	}
	seen := map[int]string{}
	for i, set := range sets {
		setKey := fmt.Sprintf("ranges[%d]", i)
		if len(set) == 0 {
			return errf(setKey, "is an empty range set: remove it or add a range")
		}
		fam := 0
		for j, r := range set {
			key := fmt.Sprintf("%s[%d]", setKey, j)
			p, err := rangePool(key, r, true)
			if err != nil {
				return err
			}
			if fam == 0 {
				fam = p.Family
				if prev, dup := seen[fam]; dup {
					return errf(setKey, "is a second IPv%d range set (%s is the first): Spindle gives an interface one address per family; put the ranges of one family into one set", fam, prev)
				}
				seen[fam] = setKey
			} else if p.Family != fam {
				return errf(key+".subnet", "is IPv%d, but the set's first range is IPv%d: a range set holds ranges of one family", p.Family, fam)
			}
			c.add(p)
		}
	}
	return nil
}

func rejectKeys(raw map[string]json.RawMessage, key, msg string) error {
	if _, ok := raw[key]; ok {
		return errf(key, "%s", msg)
	}
	return nil
}

// add appends p with the next free suffix of its family, merging it into an
// earlier pool of the same subnet.
func (c *Config) add(p *Pool) {
	n := 0
	for i := range c.Pools {
		q := &c.Pools[i]
		if q.Family != p.Family || q.FixedOnly != p.FixedOnly {
			continue
		}
		if q.Subnet == p.Subnet && q.Gateway == p.Gateway {
			q.IPs = append(q.IPs, p.IPs...)
			q.Exclude = append(q.Exclude, p.Exclude...)
			return
		}
		n++
	}
	p.Suffix = fmt.Sprintf("v%d", p.Family)
	if p.FixedOnly {
		p.Suffix = "fixed-" + p.Suffix
	}
	if n > 0 {
		p.Suffix += fmt.Sprintf("-%d", n+1)
	}
	c.Pools = append(c.Pools, *p)
}

// rangePool reads a subnet with an optional start, end and gateway. With
// defaultGateway (host-local) a missing gateway is the subnet's first
// address, as host-local has it.
func rangePool(key string, r hostRange, defaultGateway bool) (*Pool, error) {
	subnet, err := parsePrefix(key+".subnet", r.Subnet)
	if err != nil {
		return nil, err
	}
	p := &Pool{Family: family(subnet.Addr()), Subnet: subnet, Key: key}
	first, last, ok := hosts(subnet)
	if !ok {
		return nil, errf(key+".subnet", "%s has no address to hand out: use a shorter prefix", subnet)
	}
	if r.RangeStart != "" {
		if first, err = addrIn(key+".rangeStart", r.RangeStart, subnet); err != nil {
			return nil, err
		}
	}
	if r.RangeEnd != "" {
		if last, err = addrIn(key+".rangeEnd", r.RangeEnd, subnet); err != nil {
			return nil, err
		}
	}
	if last.Less(first) {
		return nil, errf(key+".rangeEnd", "%s is before the range start %s: write the higher address", last, first)
	}
	p.IPs = []string{span(first, capped(first, last))}
	switch {
	case r.Gateway != "":
		if p.Gateway, err = addrIn(key+".gateway", r.Gateway, subnet); err != nil {
			return nil, err
		}
	case defaultGateway:
		p.Gateway = subnet.Addr().Next()
	}
	return p, nil
}

// whereaboutsRange is one range of whereabouts.
type whereaboutsRange struct {
	Range      string   `json:"range"`
	RangeStart string   `json:"range_start"`
	RangeEnd   string   `json:"range_end"`
	Exclude    []string `json:"exclude"`
	Gateway    string   `json:"gateway"`
}

func (c *Config) whereabouts(raw map[string]json.RawMessage) error {
	var top whereaboutsRange
	for k, v := range map[string]any{"range": &top.Range, "range_start": &top.RangeStart, "range_end": &top.RangeEnd, "exclude": &top.Exclude, "gateway": &top.Gateway} {
		if err := decode(raw, k, v); err != nil {
			return err
		}
	}
	var list []whereaboutsRange
	if err := decode(raw, "ipRanges", &list); err != nil {
		return err
	}
	if top.Range != "" {
		p, err := whereaboutsPool("", top)
		if err != nil {
			return err
		}
		c.add(p)
	} else if top.RangeStart != "" || top.RangeEnd != "" || len(top.Exclude) > 0 {
		return errf("range", "is missing: range_start, range_end and exclude refine a range; add \"range\": \"10.1.0.0/24\"")
	}
	seen := map[int]string{}
	for _, p := range c.Pools {
		seen[p.Family] = "range"
	}
	for i, r := range list {
		key := fmt.Sprintf("ipRanges[%d].", i)
		if r.Range == "" {
			return errf(key+"range", "is missing: every entry of ipRanges needs a range such as 10.1.0.0/24")
		}
		if r.Gateway == "" {
			r.Gateway = top.Gateway
		}
		p, err := whereaboutsPool(key, r)
		if err != nil {
			return err
		}
		if prev, dup := seen[p.Family]; dup {
			return errf(key+"range", "is a second IPv%d range (%s is the first): Spindle gives an interface one address per family", p.Family, prev)
		}
		seen[p.Family] = key + "range"
		c.add(p)
	}
	if len(c.Pools) == 0 {
		return errf("range", "is empty: write a range such as 10.1.0.0/24")
	}
	return nil
}

// whereaboutsPool reads "range" as a CIDR ("10.1.0.0/24", with a host part
// "10.1.0.5/24" meaning the range starts there) or "start-end/prefix".
func whereaboutsPool(key string, r whereaboutsRange) (*Pool, error) {
	rk := key + "range"
	s := strings.TrimSpace(r.Range)
	var subnet netip.Prefix
	var first, last netip.Addr
	if lo, rest, isSpan := strings.Cut(s, "-"); isSpan {
		hi, bits, ok := strings.Cut(rest, "/")
		if !ok {
			return nil, errf(rk, "%q is a range without a prefix length: write it as start-end/prefix, e.g. 10.1.0.10-10.1.0.50/24", r.Range)
		}
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, errf(rk, "%q: %q is not an IP address", r.Range, lo)
		}
		pfx, err := netip.ParsePrefix(strings.TrimSpace(hi) + "/" + strings.TrimSpace(bits))
		if err != nil || pfx.Addr().Zone() != "" {
			return nil, errf(rk, "%q: %q is not an address with a prefix length", r.Range, hi+"/"+bits)
		}
		subnet, first, last = pfx.Masked(), a, pfx.Addr()
		if !subnet.Contains(first) {
			return nil, errf(rk, "%q: %s is outside %s", r.Range, first, subnet)
		}
	} else {
		pfx, err := netip.ParsePrefix(s)
		if err != nil || pfx.Addr().Zone() != "" {
			return nil, errf(rk, "%q is not a CIDR: write it as 10.1.0.0/24 or start-end/prefix", r.Range)
		}
		subnet = pfx.Masked()
		var ok bool
		if first, last, ok = hosts(subnet); !ok {
			return nil, errf(rk, "%s has no address to hand out: use a shorter prefix", subnet)
		}
		if pfx.Addr() != subnet.Addr() {
			first = pfx.Addr()
		}
	}
	var err error
	if r.RangeStart != "" {
		if first, err = addrIn(key+"range_start", r.RangeStart, subnet); err != nil {
			return nil, err
		}
	}
	if r.RangeEnd != "" {
		if last, err = addrIn(key+"range_end", r.RangeEnd, subnet); err != nil {
			return nil, err
		}
	}
	if last.Less(first) {
		return nil, errf(rk, "ends at %s, before its start %s", last, first)
	}
	p := &Pool{Family: family(subnet.Addr()), Subnet: subnet, IPs: []string{span(first, capped(first, last))}, Key: rk}
	for i, e := range r.Exclude {
		ek := fmt.Sprintf("%sexclude[%d]", key, i)
		x, err := netip.ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(e))
			if aerr != nil {
				return nil, errf(ek, "%q is not a CIDR or an address", e)
			}
			x = netip.PrefixFrom(a, a.BitLen())
		}
		x = x.Masked()
		if family(x.Addr()) != p.Family {
			return nil, errf(ek, "%s is IPv%d in an IPv%d range", x, family(x.Addr()), p.Family)
		}
		if !subnet.Overlaps(x) {
			continue // excludes nothing, as whereabouts has it
		}
		if x.Bits() < subnet.Bits() {
			x = subnet
		}
		p.Exclude = append(p.Exclude, span(x.Addr(), lastOf(x)))
	}
	if r.Gateway != "" {
		if p.Gateway, err = addrIn(key+"gateway", r.Gateway, subnet); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// kubeIPAM reads kube-ipam's (and host-local's older) single-subnet form.
func (c *Config) kubeIPAM(raw map[string]json.RawMessage) error {
	var r hostRange
	var fixedStart, fixedEnd string
	for k, v := range map[string]*string{"subnet": &r.Subnet, "rangeStart": &r.RangeStart, "rangeEnd": &r.RangeEnd, "gateway": &r.Gateway, "fixedStart": &fixedStart, "fixedEnd": &fixedEnd} {
		if err := decode(raw, k, v); err != nil {
			return err
		}
	}
	if r.Subnet == "" {
		return errf("subnet", "is missing: write the network's CIDR, e.g. 10.188.0.0/16")
	}
	p, err := rangePool("", r, false)
	if err != nil {
		return err
	}
	p.Key = "subnet"
	if fixedStart == "" && fixedEnd == "" {
		c.add(p)
		return nil
	}
	if fixedStart == "" || fixedEnd == "" {
		return errf("fixedStart", "and fixedEnd come together: set both, or neither")
	}
	fs, err := addrIn("fixedStart", fixedStart, p.Subnet)
	if err != nil {
		return err
	}
	fe, err := addrIn("fixedEnd", fixedEnd, p.Subnet)
	if err != nil {
		return err
	}
	if fe.Less(fs) {
		return errf("fixedEnd", "%s is before fixedStart %s: write the higher address", fe, fs)
	}
	fixed := span(fs, fe)
	// The fixed range is never handed out to pods that do not ask for an
	// address, even where it lies inside rangeStart-rangeEnd.
	if overlaps(p.IPs[0], fs, fe) {
		p.Exclude = append(p.Exclude, fixed)
	}
	c.add(p)
	c.add(&Pool{Family: p.Family, Subnet: p.Subnet, IPs: []string{fixed}, Gateway: p.Gateway, FixedOnly: true, Key: "fixedStart"})
	return nil
}

// routes gives every pool the routes of its family; a route without gw goes
// through the pool's gateway, and the default route through the gateway is
// implied by the gateway.
func (c *Config) routes(raw map[string]json.RawMessage) error {
	var rs []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	}
	if err := decode(raw, "routes", &rs); err != nil {
		return err
	}
	for i, r := range rs {
		key := fmt.Sprintf("routes[%d]", i)
		dst, err := parsePrefix(key+".dst", r.Dst)
		if err != nil {
			return err
		}
		var gw netip.Addr
		if r.GW != "" {
			if gw, err = netip.ParseAddr(strings.TrimSpace(r.GW)); err != nil || gw.Zone() != "" {
				return errf(key+".gw", "%q is not an IP address", r.GW)
			}
			if family(gw) != family(dst.Addr()) {
				return errf(key+".gw", "%s is IPv%d but dst %s is IPv%d", gw, family(gw), dst, family(dst.Addr()))
			}
		}
		used := false
		for j := range c.Pools {
			p := &c.Pools[j]
			if p.Family != family(dst.Addr()) {
				continue
			}
			used = true
			hop := gw
			if !hop.IsValid() {
				if !p.Gateway.IsValid() {
					return errf(key+".gw", "is missing and the range %s has no gateway: set gw, or a gateway for the range", p.Subnet)
				}
				hop = p.Gateway
			}
			if dst.Bits() == 0 && hop == p.Gateway {
				continue // the gateway gives the default route
			}
			if !p.Subnet.Contains(hop) {
				return errf(key+".gw", "%s is outside the range's subnet %s: the next hop must be on the network", hop, p.Subnet)
			}
			p.Routes = append(p.Routes, Route{Dst: dst, GW: hop})
		}
		if !used {
			return errf(key+".dst", "%s is IPv%d, but the configuration has no IPv%d range", dst, family(dst.Addr()), family(dst.Addr()))
		}
	}
	return nil
}

// Families returns the suffixes of the pools everyone allocates from, per
// family, in order: what the plugin sends the agent.
func (c *Config) Families() (v4, v6 []string) {
	for _, p := range c.Pools {
		switch {
		case p.FixedOnly:
		case p.Family == 4:
			v4 = append(v4, p.Suffix)
		default:
			v6 = append(v6, p.Suffix)
		}
	}
	return v4, v6
}

// maxName is the longest object name the API server accepts.
const maxName = 253

// PoolName is the name of the pool with the given suffix of the inline
// network of NetworkAttachmentDefinition namespace/name:
// "<namespace>.<name>.<suffix>". A namespace holds no dot and the suffix
// none either, so different networks never share a name; a name that would
// be longer than an object name may be is shortened and given a hash of the
// whole.
func PoolName(namespace, name, suffix string) string {
	n := namespace + "." + name + "." + suffix
	if len(n) <= maxName {
		return n
	}
	h := fnv64(n)
	keep := maxName - len(namespace) - len(suffix) - 2 - 17
	return fmt.Sprintf("%s.%s-%016x.%s", namespace, strings.TrimRight(name[:keep], ".-"), h, suffix)
}

// IsSuffix reports whether s is a suffix PoolName is given by this package.
func IsSuffix(s string) bool {
	s = strings.TrimPrefix(s, "fixed-")
	base, n, numbered := strings.Cut(s, "-")
	if base != "v4" && base != "v6" {
		return false
	}
	if !numbered {
		return true
	}
	if n == "" || n[0] == '0' || len(n) > 3 {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func family(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return 4
	}
	return 6
}

func parsePrefix(key, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return netip.Prefix{}, errf(key, "%q is not a CIDR: write it as 10.1.0.0/24 or fd00:1::/64", s)
	}
	return p.Masked(), nil
}

func addrIn(key, s string, subnet netip.Prefix) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, errf(key, "%q is not an IP address", s)
	}
	if !subnet.Contains(a) {
		return netip.Addr{}, errf(key, "%s is outside the subnet %s", a, subnet)
	}
	return a, nil
}

// hosts returns the addresses of subnet a pod may get: all but the network
// address, and for IPv4 the broadcast address (a /31 or /32 gives all).
func hosts(subnet netip.Prefix) (first, last netip.Addr, ok bool) {
	first, last = subnet.Addr(), lastOf(subnet)
	bits := subnet.Addr().BitLen() - subnet.Bits()
	if first.Is4() && bits <= 1 {
		return first, last, true
	}
	if bits == 0 {
		return netip.Addr{}, netip.Addr{}, false
	}
	first = first.Next()
	if first.Is4() {
		last = last.Prev()
	}
	return first, last, !last.Less(first)
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		keep := p.Bits() - 8*i
		switch {
		case keep >= 8:
		case keep <= 0:
			b[i] = 0xff
		default:
			b[i] |= byte(0xff) >> keep
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// MaxAddresses is the most addresses an inline range gives its pool (the
// size limit of a pool): a longer range, such as an IPv6 /64, is cut after
// its first MaxAddresses addresses.
const MaxAddresses = 1 << 20

// capped returns last, or the last of the first MaxAddresses addresses from
// first when the range is longer.
func capped(first, last netip.Addr) netip.Addr {
	a, b := first.As16(), last.As16()
	hiA, hiB := be64(a[:8]), be64(b[:8])
	loA, loB := be64(a[8:]), be64(b[8:])
	if hiA == hiB && loB-loA < MaxAddresses {
		return last
	}
	lo, hi := loA+MaxAddresses-1, hiA
	if lo < loA {
		hi++
	}
	var out [16]byte
	put64(out[:8], hi)
	put64(out[8:], lo)
	r := netip.AddrFrom16(out)
	if first.Is4() {
		r = r.Unmap()
	}
	if last.Less(r) {
		return last
	}
	return r
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

func put64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

func span(first, last netip.Addr) string {
	if first == last {
		return first.String()
	}
	return first.String() + "-" + last.String()
}

// overlaps reports whether the range "a-b" (or address) r meets [lo, hi].
func overlaps(r string, lo, hi netip.Addr) bool {
	a, b, ok := strings.Cut(r, "-")
	first, _ := netip.ParseAddr(a)
	last := first
	if ok {
		last, _ = netip.ParseAddr(b)
	}
	return !(last.Less(lo) || hi.Less(first))
}

func isLabelValue(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); i++ {
		c := s[i]
		if alnum(c) || (c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1 {
			continue
		}
		return false
	}
	return true
}

// ParseResolvConf reads a resolv.conf as the CNI result's dns object:
// "nameserver", "domain", "search" and "options" lines; comments (# and ;)
// and other lines are skipped. A later "domain" or "search" line replaces an
// earlier one of the same kind.
func ParseResolvConf(data []byte) *DNS {
	d := &DNS{}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if _, err := netip.ParseAddr(f[1]); err == nil {
				d.Nameservers = append(d.Nameservers, f[1])
			}
		case "domain":
			d.Domain = f[1]
		case "search":
			d.Search = append([]string(nil), f[1:]...)
		case "options":
			d.Options = append(d.Options, f[1:]...)
		}
	}
	return d
}

// Empty reports whether d sets nothing.
func (d *DNS) Empty() bool {
	return d == nil || len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

// IPAMOf finds the ipam object of type spiderpool in a network
// configuration (a single plugin or a list): its path and raw JSON, or nil
// when there is none. Two such objects are an error.
func IPAMOf(config string) (string, []byte, error) {
	var conf struct {
		IPAM    json.RawMessage   `json:"ipam"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &conf); err != nil {
		return "", nil, fmt.Errorf("is not a JSON object: %w", err)
	}
	var path string
	var found []byte
	try := func(p string, ipam json.RawMessage) error {
		if len(ipam) == 0 {
			return nil
		}
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(ipam, &t) != nil || t.Type != PluginType {
			return nil
		}
		if found != nil {
			return fmt.Errorf("%s and %s both have type %s: one plugin of a network allocates its addresses", path, p, PluginType)
		}
		path, found = p, ipam
		return nil
	}
	if err := try("ipam", conf.IPAM); err != nil {
		return path, nil, err
	}
	for i, raw := range conf.Plugins {
		var pl struct {
			IPAM json.RawMessage `json:"ipam"`
		}
		if json.Unmarshal(raw, &pl) != nil {
			continue
		}
		if err := try(fmt.Sprintf("plugins[%d].ipam", i), pl.IPAM); err != nil {
			return path, nil, err
		}
	}
	return path, found, nil
}
