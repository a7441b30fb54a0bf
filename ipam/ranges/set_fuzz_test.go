package ranges

import (
	"net/netip"
	"testing"
)

func FuzzParseSet(f *testing.F) {
	f.Add("10.0.0.10-10.0.0.20", "10.0.0.5", "10.0.0.0/24", false)
	f.Add("fd00::1-fd00::ff", "fd00::300", "fd00::/120", true)
	f.Add("10.0.0.20-10.0.0.10", "", "10.0.0.0/24", false)
	f.Add("fe80::1%eth0", "", "fe80::/64", true)
	f.Add("::ffff:10.0.0.1", "", "10.0.0.0/24", false)
	f.Fuzz(func(t *testing.T, a, b, within string, v6 bool) {
		fam := V4
		if v6 {
			fam = V6
		}
		prefix, _ := netip.ParsePrefix(within)
		s, err := ParseSet("spec.ips", []string{a, b}, fam, prefix)
		if err != nil {
			return
		}
		for _, r := range s.Ranges() {
			for _, addr := range []netip.Addr{r.First, r.Last} {
				if addr.Is4() != (fam == V4) || addr.Zone() != "" || addr.Is4In6() {
					t.Fatalf("ParseSet(%q, %q, %v) holds %s", a, b, fam, addr)
				}
				if prefix.IsValid() && !prefix.Masked().Contains(addr) {
					t.Fatalf("ParseSet(%q, %q) holds %s outside %s", a, b, addr, prefix)
				}
			}
			if r.Last.Less(r.First) {
				t.Fatalf("ParseSet(%q, %q): reversed range %v", a, b, r)
			}
		}
	})
}
