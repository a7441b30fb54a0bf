package ranges

import (
	"net/netip"
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.1-10.0.0.9", "fd00::1-fd00::ff", "10.0.0.9-10.0.0.1", "1.2.3.4-fd00::1", " 1.2.3.4 ", "fe80::1%eth0", "-", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if r.Last.Less(r.First) || r.First.Zone() != "" || r.Family() != FamilyOf(r.Last) {
			t.Fatalf("ParseRange(%q) accepted an invalid range %+v", s, r)
		}
		back, err := ParseRange(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseRange(%q).String() = %q re-parses to %+v, %v", s, r.String(), back, err)
		}
	})
}

// setFromBytes builds ranges inside a 256-address block from pairs of bytes.
func setFromBytes(base netip.Addr, data []byte) (Set, [256]bool) {
	var model [256]bool
	var rs []Range
	for i := 0; i+1 < len(data); i += 2 {
		lo, hi := data[i], data[i+1]
		if hi < lo {
			lo, hi = hi, lo
		}
		rs = append(rs, Range{First: offsetAddr(base, lo), Last: offsetAddr(base, hi)})
		for x := int(lo); x <= int(hi); x++ {
			model[x] = true
		}
	}
	return NewSet(rs...), model
}

func offsetAddr(base netip.Addr, n byte) netip.Addr {
	return toU128(base).add(u128{lo: uint64(n)}).toAddr(FamilyOf(base))
}

func checkSet(t *testing.T, base netip.Addr, s Set, model [256]bool) {
	t.Helper()
	var count uint64
	for x := range 256 {
		if model[x] {
			count++
		}
		if got := s.Contains(offsetAddr(base, byte(x))); got != model[x] {
			t.Fatalf("Contains(+%d) = %v, model %v (set %v)", x, got, model[x], s.Strings())
		}
	}
	if s.Count() != count || s.BigCount().Uint64() != count {
		t.Fatalf("Count = %d, model %d", s.Count(), count)
	}
	rs := s.Ranges()
	for i := 1; i < len(rs); i++ {
		if rs[i].First.Compare(rs[i-1].Last.Next()) <= 0 {
			t.Fatalf("set not canonical: %v", s.Strings())
		}
	}
	// Strings re-parse to the same set.
	back, err := ParseSet("x", s.Strings(), FamilyOf(base), netip.Prefix{})
	if err != nil || !back.Equal(s) {
		t.Fatalf("Strings %v re-parse to %v, %v", s.Strings(), back.Strings(), err)
	}
}

func FuzzSetOps(f *testing.F) {
	f.Add([]byte{1, 5, 3, 9, 20, 20}, []byte{4, 4, 0, 1}, false)
	f.Add([]byte{0, 255}, []byte{0, 0, 255, 255}, true)
	f.Fuzz(func(t *testing.T, a, b []byte, v6 bool) {
		base := netip.MustParseAddr("10.0.0.0")
		if v6 {
			base = netip.MustParseAddr("fd00::ff00")
		}
		sa, ma := setFromBytes(base, a)
		sb, mb := setFromBytes(base, b)
		checkSet(t, base, sa, ma)
		checkSet(t, base, sb, mb)
		var diff, union [256]bool
		for x := range 256 {
			diff[x] = ma[x] && !mb[x]
			union[x] = ma[x] || mb[x]
		}
		checkSet(t, base, sa.Subtract(sb), diff)
		checkSet(t, base, sa.Union(sb), union)
	})
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{1, 5, 3, 9, 200, 255}, []byte{0, 1, 2, 3, 4, 5, 6})
	f.Fuzz(func(t *testing.T, ranges, ops []byte) {
		base := netip.MustParseAddr("10.0.0.0")
		s, model := setFromBytes(base, ranges)
		a, err := NewAllocator(s)
		if err != nil {
			t.Fatal(err)
		}
		var used [256]bool
		for i, op := range ops {
			x := op
			ad := offsetAddr(base, x)
			switch i % 3 {
			case 0:
				err := a.Allocate(ad)
				if (err == nil) != (model[x] && !used[x]) {
					t.Fatalf("Allocate(%s) = %v", ad, err)
				}
				if model[x] {
					used[x] = true
				}
			case 1:
				if a.Release(ad) != (model[x] && used[x]) {
					t.Fatalf("Release(%s) wrong", ad)
				}
				used[x] = false
			case 2:
				got, _, ok := a.NextFree(uint64(x))
				if ok {
					off := toU128(got).sub(toU128(base)).lo
					if off > 255 || !model[off] || used[off] {
						t.Fatalf("NextFree returned %s, not a free pool address", got)
					}
				} else if a.Free() != 0 {
					t.Fatalf("NextFree failed with %d free", a.Free())
				}
			}
			for y := range 256 {
				if a.Has(offsetAddr(base, byte(y))) != used[y] {
					t.Fatalf("Has(+%d) = %v, model %v", y, !used[y], used[y])
				}
			}
		}
	})
}

func FuzzParsePool(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.0.1-10.6.0.9", "10.6.0.5", "10.6.0.1", int64(4))
	f.Add("fd00::/64", "fd00::1-fd00::ff", "fd00::5", "fd00::1", int64(6))
	f.Fuzz(func(t *testing.T, subnet, ips, exclude, gw string, ver int64) {
		spec := v2beta1.IPPoolSpec{Subnet: subnet, IPs: []string{ips}, ExcludeIPs: []string{exclude}, Gateway: &gw, IPVersion: &ver}
		p, err := ParsePool(&spec, Set{})
		if err != nil {
			return
		}
		for _, r := range p.Usable.Ranges() {
			if !p.Subnet.Contains(r.First) || !p.Subnet.Contains(r.Last) {
				t.Fatalf("usable range %s outside subnet %s", r, p.Subnet)
			}
		}
		if p.Gateway.IsValid() && p.Usable.Contains(p.Gateway) {
			t.Fatalf("gateway %s is usable", p.Gateway)
		}
		if p.Usable.Count() > p.IPs.Count() {
			t.Fatal("more usable addresses than listed")
		}
	})
}
