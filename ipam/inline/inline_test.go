package inline

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// seed002 is kube-ipam's configuration as its documentation shows it, with
// the type changed to spiderpool.
const seed002 = `{
	"name": "kube-subnet",
	"type": "spiderpool",
	"kubeConfig": "/etc/kubernetes/pki/kubectl.kubeconfig",
	"etcdConfig": {
		"etcdURL": "https://192.168.1.50:2379",
		"etcdCertFile": "/etc/kubernetes/pki/etcd.pem",
		"etcdKeyFile": "/etc/kubernetes/pki/etcd-key.pem",
		"etcdTrustedCAFileFile": "/etc/kubernetes/pki/ca.pem"
	},
	"subnet": "10.188.0.0/16",
	"fixedStart": "10.188.0.10",
	"fixedEnd": "10.188.0.255",
	"rangeStart": "10.188.1.0",
	"rangeEnd": "10.188.255.254",
	"gateway": "10.188.0.1",
	"routes": [{"dst": "0.0.0.0/0"}],
	"resolvConf": "/etc/resolv.conf"
}`

func mustParse(t *testing.T, conf string) *Config {
	t.Helper()
	c, err := Parse([]byte(conf))
	if err != nil {
		t.Fatalf("Parse(%s): %v", conf, err)
	}
	if c == nil {
		t.Fatalf("Parse(%s) found no ranges", conf)
	}
	return c
}

func TestParseKubeIPAMSeed(t *testing.T) {
	c := mustParse(t, seed002)
	want := []Pool{
		{Suffix: "v4", Family: 4, Subnet: netip.MustParsePrefix("10.188.0.0/16"), IPs: []string{"10.188.1.0-10.188.255.254"},
			Gateway: netip.MustParseAddr("10.188.0.1"), Key: "subnet"},
		{Suffix: "fixed-v4", Family: 4, Subnet: netip.MustParsePrefix("10.188.0.0/16"), IPs: []string{"10.188.0.10-10.188.0.255"},
			Gateway: netip.MustParseAddr("10.188.0.1"), FixedOnly: true, Key: "fixedStart"},
	}
	if !reflect.DeepEqual(c.Pools, want) {
		t.Fatalf("pools\n got %+v\nwant %+v", c.Pools, want)
	}
	if c.Form != FormKubeIPAM || c.ResolvConf != "/etc/resolv.conf" {
		t.Errorf("form %q resolvConf %q", c.Form, c.ResolvConf)
	}
	if want := []string{"etcdConfig", "kubeConfig", "name"}; !reflect.DeepEqual(c.Ignored, want) {
		t.Errorf("ignored %v, want %v", c.Ignored, want)
	}
	v4, v6 := c.Families()
	if !reflect.DeepEqual(v4, []string{"v4"}) || v6 != nil {
		t.Errorf("families %v %v: the fixed-only pool must not serve everyone", v4, v6)
	}
}

func TestParseKubeIPAMFixedInsideRangeIsExcluded(t *testing.T) {
	c := mustParse(t, `{"type":"spiderpool","subnet":"10.9.0.0/24","fixedStart":"10.9.0.100","fixedEnd":"10.9.0.110"}`)
	if got := c.Pools[0]; !reflect.DeepEqual(got.IPs, []string{"10.9.0.1-10.9.0.254"}) || !reflect.DeepEqual(got.Exclude, []string{"10.9.0.100-10.9.0.110"}) {
		t.Fatalf("everyone's pool %+v: the fixed range must be excluded", got)
	}
	if got := c.Pools[1]; !got.FixedOnly || !reflect.DeepEqual(got.IPs, []string{"10.9.0.100-10.9.0.110"}) {
		t.Fatalf("fixed pool %+v", got)
	}
}

func TestParseHostLocalRanges(t *testing.T) {
	c := mustParse(t, `{"type":"spiderpool","dataDir":"/var/lib/x","ranges":[
		[{"subnet":"10.10.0.0/24","rangeStart":"10.10.0.20","rangeEnd":"10.10.0.40"},{"subnet":"10.10.1.0/24","gateway":"10.10.1.254"}],
		[{"subnet":"fd00:10::/64"}]],
		"routes":[{"dst":"10.20.0.0/16"},{"dst":"0.0.0.0/0"},{"dst":"fd00:20::/64","gw":"fd00:10::9"}]}`)
	want := []Pool{
		{Suffix: "v4", Family: 4, Subnet: netip.MustParsePrefix("10.10.0.0/24"), IPs: []string{"10.10.0.20-10.10.0.40"},
			Gateway: netip.MustParseAddr("10.10.0.1"), Key: "ranges[0][0]",
			Routes: []Route{{Dst: netip.MustParsePrefix("10.20.0.0/16"), GW: netip.MustParseAddr("10.10.0.1")}}},
		{Suffix: "v4-2", Family: 4, Subnet: netip.MustParsePrefix("10.10.1.0/24"), IPs: []string{"10.10.1.1-10.10.1.254"},
			Gateway: netip.MustParseAddr("10.10.1.254"), Key: "ranges[0][1]",
			Routes: []Route{{Dst: netip.MustParsePrefix("10.20.0.0/16"), GW: netip.MustParseAddr("10.10.1.254")}}},
		{Suffix: "v6", Family: 6, Subnet: netip.MustParsePrefix("fd00:10::/64"), IPs: []string{"fd00:10::1-fd00:10::10:0"},
			Gateway: netip.MustParseAddr("fd00:10::1"), Key: "ranges[1][0]",
			Routes: []Route{{Dst: netip.MustParsePrefix("fd00:20::/64"), GW: netip.MustParseAddr("fd00:10::9")}}},
	}
	if !reflect.DeepEqual(c.Pools, want) {
		t.Fatalf("pools\n got %+v\nwant %+v", c.Pools, want)
	}
	v4, v6 := c.Families()
	if !reflect.DeepEqual(v4, []string{"v4", "v4-2"}) || !reflect.DeepEqual(v6, []string{"v6"}) {
		t.Errorf("families %v %v", v4, v6)
	}
	if !reflect.DeepEqual(c.Ignored, []string{"dataDir"}) {
		t.Errorf("ignored %v", c.Ignored)
	}
}

func TestParseWhereabouts(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want Pool
	}{{
		`{"type":"spiderpool","range":"10.30.0.0/24","exclude":["10.30.0.0/28","10.30.0.200/32","10.31.0.0/16"],"gateway":"10.30.0.1",
		  "etcd_host":"x","leader_lease_duration":1500,"log_file":"/tmp/w.log","log_level":"debug","kubernetes":{"kubeconfig":"/k"},"datastore":"kubernetes"}`,
		Pool{Suffix: "v4", Family: 4, Subnet: netip.MustParsePrefix("10.30.0.0/24"), IPs: []string{"10.30.0.1-10.30.0.254"},
			Exclude: []string{"10.30.0.0-10.30.0.15", "10.30.0.200"}, Gateway: netip.MustParseAddr("10.30.0.1"), Key: "range"},
	}, {
		`{"type":"spiderpool","range":"10.30.0.10-10.30.0.50/24"}`,
		Pool{Suffix: "v4", Family: 4, Subnet: netip.MustParsePrefix("10.30.0.0/24"), IPs: []string{"10.30.0.10-10.30.0.50"}, Key: "range"},
	}, {
		`{"type":"spiderpool","range":"10.30.0.0/24","range_start":"10.30.0.100","range_end":"10.30.0.120"}`,
		Pool{Suffix: "v4", Family: 4, Subnet: netip.MustParsePrefix("10.30.0.0/24"), IPs: []string{"10.30.0.100-10.30.0.120"}, Key: "range"},
	}, {
		`{"type":"spiderpool","ipRanges":[{"range":"fd00:30::/120","exclude":["fd00:30::5"]}]}`,
		Pool{Suffix: "v6", Family: 6, Subnet: netip.MustParsePrefix("fd00:30::/120"), IPs: []string{"fd00:30::1-fd00:30::ff"},
			Exclude: []string{"fd00:30::5"}, Key: "ipRanges[0].range"},
	}} {
		c := mustParse(t, tc.conf)
		if len(c.Pools) != 1 || !reflect.DeepEqual(c.Pools[0], tc.want) {
			t.Errorf("Parse(%s)\n got %+v\nwant %+v", tc.conf, c.Pools, tc.want)
		}
	}
}

func TestParseNoRanges(t *testing.T) {
	for _, conf := range []string{`{"type":"spiderpool"}`, `{"type":"spiderpool","default_ipv4_ippool":["a"],"extra":1}`} {
		if c, err := Parse([]byte(conf)); c != nil || err != nil {
			t.Errorf("Parse(%s) = %+v, %v; want nothing", conf, c, err)
		}
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ conf, key, msg string }{
		{`{"ranges":[[{"subnet":"10.1.0.0/24","rangeEnd":"10.2.0.1"}]]}`, "ranges[0][0].rangeEnd", "outside the subnet"},
		{`{"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/24"}]]}`, "ranges[1]", "second IPv4 range set"},
		{`{"ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"fd00::/64"}]]}`, "ranges[0][1].subnet", "one family"},
		{`{"ranges":[]}`, "ranges", "is empty"},
		{`{"ranges":"10.1.0.0/24"}`, "ranges", "cannot be read"},
		{`{"ranges":[[{"subnet":"10.1.0.0/24"}]],"range":"10.1.0.0/24"}`, "range", "mixes"},
		{`{"range":"10.1.0.0/33"}`, "range", "not a CIDR"},
		{`{"range":"10.1.0.50-10.1.0.10/24"}`, "range", "before its start"},
		{`{"range":"10.1.0.0/24","exclude":["nope"]}`, "exclude[0]", "not a CIDR"},
		{`{"range_start":"10.1.0.5"}`, "range", "is missing"},
		{`{"subnet":"10.188.0.0/16","rangeStart":"10.188.0.9","rangStart":"x"}`, "rangStart", "not a key"},
		{`{"subnet":"10.188.0.0/16","fixedStart":"10.188.0.9"}`, "fixedStart", "come together"},
		{`{"subnet":"10.188.0.0/16","routes":[{"dst":"10.0.0.0/8"}]}`, "routes[0].gw", "no gateway"},
		{`{"subnet":"10.188.0.0/16","gateway":"10.188.0.1","routes":[{"dst":"fd00::/8"}]}`, "routes[0].dst", "no IPv6 range"},
		{`{"subnet":"10.188.0.0/16","default_ipv4_ippool":["p"]}`, "default_ipv4_ippool", "not both"},
		{`{"subnet":"10.188.0.0/16","sharedNetwork":"a b"}`, "sharedNetwork", "not a valid name"},
		{`{"subnet":"10.188.0.0/16","resolvConf":"etc/resolv.conf"}`, "resolvConf", "absolute path"},
		{`{"subnet":"10.188.0.0/16","dns":{"nameservers":["x"]}}`, "dns.nameservers[0]", "not an IP address"},
	} {
		_, err := Parse([]byte(tc.conf))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%s) = %v, want an *Error", tc.conf, err)
			continue
		}
		if e.Key != tc.key || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("Parse(%s) = %q (key %q), want key %q and %q", tc.conf, err, e.Key, tc.key, tc.msg)
		}
	}
}

func TestPoolName(t *testing.T) {
	if got := PoolName("ns", "net-a", "v4"); got != "ns.net-a.v4" {
		t.Errorf("PoolName = %q", got)
	}
	if PoolName("a", "b.fixed-v4", "v4") == PoolName("a", "b", "fixed-v4") {
		t.Error("two networks share a pool name")
	}
	long := strings.Repeat("n", 253)
	got := PoolName(strings.Repeat("s", 63), long, "fixed-v6-2")
	if len(got) > 253 || !validName(got) || !strings.HasSuffix(got, ".fixed-v6-2") {
		t.Errorf("PoolName of a long name = %q (%d)", got, len(got))
	}
	if got == PoolName(strings.Repeat("s", 63), long[1:], "fixed-v6-2") {
		t.Error("shortened names collide")
	}
}

func TestParseResolvConf(t *testing.T) {
	got := ParseResolvConf([]byte("# generated\nnameserver 10.96.0.10\nnameserver fd00::10 ; v6\nnameserver bogus\nsearch a.svc b.local\ndomain example.org\noptions ndots:5 edns0\n\n"))
	want := &DNS{Nameservers: []string{"10.96.0.10", "fd00::10"}, Domain: "example.org", Search: []string{"a.svc", "b.local"}, Options: []string{"ndots:5", "edns0"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !ParseResolvConf(nil).Empty() {
		t.Error("empty file gives DNS settings")
	}
}

// validName checks a DNS-1123 subdomain.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkConfig holds for every configuration Parse accepts: the pools lie
// in their subnets, suffixes are well-formed and unique, names are valid.
func checkConfig(t *testing.T, in []byte, c *Config) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range c.Pools {
		if !IsSuffix(p.Suffix) || seen[p.Suffix] {
			t.Fatalf("Parse(%s): bad or repeated suffix %q", in, p.Suffix)
		}
		seen[p.Suffix] = true
		if family(p.Subnet.Addr()) != p.Family || p.Subnet.Masked() != p.Subnet {
			t.Fatalf("Parse(%s): pool %+v has a bad subnet", in, p)
		}
		if p.Gateway.IsValid() && !p.Subnet.Contains(p.Gateway) {
			t.Fatalf("Parse(%s): gateway %s outside %s", in, p.Gateway, p.Subnet)
		}
		if len(p.IPs) == 0 {
			t.Fatalf("Parse(%s): pool %+v without addresses", in, p)
		}
		for _, r := range append(append([]string(nil), p.IPs...), p.Exclude...) {
			a, b, _ := strings.Cut(r, "-")
			if b == "" {
				b = a
			}
			first, err1 := netip.ParseAddr(a)
			last, err2 := netip.ParseAddr(b)
			if err1 != nil || err2 != nil || !p.Subnet.Contains(first) || !p.Subnet.Contains(last) || last.Less(first) {
				t.Fatalf("Parse(%s): range %q not inside %s", in, r, p.Subnet)
			}
		}
		for _, r := range p.Routes {
			if !p.Subnet.Contains(r.GW) || family(r.Dst.Addr()) != p.Family {
				t.Fatalf("Parse(%s): route %+v of pool %s", in, r, p.Subnet)
			}
		}
		if n := PoolName("ns", "net", p.Suffix); !validName(n) {
			t.Fatalf("PoolName(%q) = %q is not a valid name", p.Suffix, n)
		}
	}
}

func fuzzParse(t *testing.T, conf map[string]any) {
	in, err := json.Marshal(conf)
	if err != nil {
		return // not JSON-encodable (e.g. NaN): no config a user can write
	}
	c, err := Parse(in)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Msg == "" {
			t.Fatalf("Parse(%s) = %v: errors must be *Error with a message", in, err)
		}
		return
	}
	if c == nil {
		t.Fatalf("Parse(%s) found no ranges in an inline configuration", in)
	}
	checkConfig(t, in, c)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(seed002))
	f.Add([]byte(`{"ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.5"}],[{"subnet":"fd00::/64"}]],"routes":[{"dst":"0.0.0.0/0"}]}`))
	f.Add([]byte(`{"range":"10.1.0.0/24","exclude":["10.1.0.0/28"],"ipRanges":[{"range":"fd00::/120"}]}`))
	f.Add([]byte(`{"type":"spiderpool","default_ipv4_ippool":["x"]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, want *Error", in, err)
			}
			return
		}
		if c != nil {
			checkConfig(t, in, c)
		}
	})
}

func FuzzHostLocalRanges(f *testing.F) {
	f.Add("10.1.0.0/24", "10.1.0.10", "10.1.0.20", "", "fd00::/64", "10.9.0.0/16")
	f.Add("10.1.0.0/31", "", "", "10.1.0.1", "10.2.0.0/24", "0.0.0.0/0")
	f.Add("fd00::/127", "fd00::1", "fd00::", "", "", "::/0")
	f.Fuzz(func(t *testing.T, subnet, start, end, gw, second, route string) {
		r := map[string]any{"subnet": subnet, "rangeStart": start, "rangeEnd": end, "gateway": gw}
		sets := []any{[]any{r}}
		if second != "" {
			sets = append(sets, []any{map[string]any{"subnet": second}})
		}
		fuzzParse(t, map[string]any{"type": "spiderpool", "ranges": sets, "routes": []any{map[string]any{"dst": route}}})
	})
}

func FuzzWhereaboutsRange(f *testing.F) {
	f.Add("10.1.0.0/24", "", "", "10.1.0.0/28", "10.1.0.1")
	f.Add("10.1.0.10-10.1.0.50/24", "10.1.0.20", "", "10.1.0.30", "")
	f.Add("fd00::5/120", "", "fd00::9", "fd00::/125", "")
	f.Fuzz(func(t *testing.T, rng, start, end, exclude, gw string) {
		fuzzParse(t, map[string]any{"type": "spiderpool", "range": rng, "range_start": start, "range_end": end,
			"exclude": []string{exclude}, "gateway": gw, "etcd_host": "x", "leader_retry_period": 1})
	})
}

func FuzzKubeIPAM(f *testing.F) {
	f.Add("10.188.0.0/16", "10.188.0.10", "10.188.0.255", "10.188.1.0", "10.188.255.254", "10.188.0.1", "0.0.0.0/0")
	f.Add("10.9.0.0/24", "10.9.0.100", "10.9.0.110", "", "", "", "10.0.0.0/8")
	f.Add("fd00::/64", "", "", "fd00::10", "fd00::20", "fd00::1", "::/0")
	f.Fuzz(func(t *testing.T, subnet, fixedStart, fixedEnd, start, end, gw, route string) {
		conf := map[string]any{"type": "spiderpool", "subnet": subnet, "rangeStart": start, "rangeEnd": end, "gateway": gw,
			"routes": []any{map[string]any{"dst": route}}, "etcdConfig": map[string]any{}, "kubeConfig": "/k"}
		if fixedStart != "" {
			conf["fixedStart"] = fixedStart
		}
		if fixedEnd != "" {
			conf["fixedEnd"] = fixedEnd
		}
		fuzzParse(t, conf)
	})
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 10.0.0.1\nsearch a b\noptions ndots:2\n"))
	f.Add([]byte("domain x\n#nameserver 1.1.1.1\nnameserver ::1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := ParseResolvConf(in)
		for _, ns := range d.Nameservers {
			if _, err := netip.ParseAddr(ns); err != nil {
				t.Fatalf("nameserver %q is no address", ns)
			}
		}
	})
}

func FuzzPoolName(f *testing.F) {
	f.Add("default", "net-a", "v4")
	f.Add(strings.Repeat("a", 63), strings.Repeat("b.c", 84), "fixed-v6-12")
	f.Fuzz(func(t *testing.T, ns, name, suffix string) {
		if !validName(ns) || strings.Contains(ns, ".") || len(ns) > 63 || !validName(name) || !IsSuffix(suffix) {
			return // not a namespace, NetworkAttachmentDefinition name and suffix Kubernetes would accept
		}
		if got := PoolName(ns, name, suffix); !validName(got) || !strings.HasPrefix(got, ns+".") || !strings.HasSuffix(got, "."+suffix) {
			t.Fatalf("PoolName(%q, %q, %q) = %q", ns, name, suffix, got)
		}
	})
}

func TestCapped(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"10.0.0.1", "10.0.0.9", "10.0.0.9"},
		{"10.0.0.1", "10.255.255.254", "10.16.0.0"},
		{"fd00::1", "fd00::ffff:ffff:ffff:ffff", "fd00::10:0"},
		{"fd00::ffff:ffff:ffff:fffe", "fd00:0:0:1::1", "fd00:0:0:1::1"},
		{"fd00::ffff:ffff:ffff:fffe", "fd00:0:0:2::", "fd00::1:0:0:f:fffd"},
	} {
		if got := capped(netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)); got.String() != tc.want {
			t.Errorf("capped(%s, %s) = %s, want %s", tc.first, tc.last, got, tc.want)
		}
	}
}
