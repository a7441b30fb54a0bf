package subnets

import (
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func FuzzParse(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.0.10-10.6.0.200", "10.6.0.100", "10.6.0.1", int64(4))
	f.Add("fd00:6::/112", "", "", "", int64(6))
	f.Add("10.6.0.0/16", "", "", "10.7.0.1", int64(4))
	f.Add("10.6.0.5/16", "10.6.0.1", "", "", int64(0))
	f.Add("0.0.0.0/0", "", "", "", int64(4))
	f.Fuzz(func(t *testing.T, subnet, ips, exclude, gw string, ver int64) {
		s := &v2beta1.SpiderSubnet{Spec: v2beta1.SubnetSpec{Subnet: subnet, IPVersion: &ver}}
		if ips != "" {
			s.Spec.IPs = []string{ips}
		}
		if exclude != "" {
			s.Spec.ExcludeIPs = []string{exclude}
		}
		if gw != "" {
			s.Spec.Gateway = &gw
		}
		l, err := Parse(s)
		if err != nil {
			return
		}
		for _, r := range l.Usable.Ranges() {
			if !l.Subnet.Contains(r.First) || !l.Subnet.Contains(r.Last) {
				t.Fatalf("Parse(%q, %q): usable %v outside %s", subnet, ips, r, l.Subnet)
			}
		}
	})
}
