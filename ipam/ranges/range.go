// Package ranges does the address arithmetic of IP pools: it parses the ips,
// excludeIPs and reserved-IP entries of the API ("10.6.0.5", "10.6.0.10-10.6.0.20"),
// keeps them as canonical sets of inclusive ranges, counts them, maps addresses
// to offsets, and allocates addresses from a pool with a bitmap.
//
// Both families are handled with net/netip. An IPv4-mapped IPv6 address
// (::ffff:10.6.0.5) is an IPv6 address here; it is never the same address as
// 10.6.0.5. Zoned addresses are rejected.
package ranges

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Family is an IP family: 4 or 6, the values of spec.ipVersion.
type Family int

// The two IP families.
const (
	V4 Family = 4
	V6 Family = 6
)

// String returns "IPv4", "IPv6" or "IP family N".
func (f Family) String() string {
	switch f {
	case V4:
		return "IPv4"
	case V6:
		return "IPv6"
	default:
		return fmt.Sprintf("IP family %d", int(f))
	}
}

// FamilyOf returns the family of addr (V6 for IPv4-mapped IPv6 addresses), or
// 0 for the zero Addr.
func FamilyOf(addr netip.Addr) Family {
	switch {
	case addr.Is4():
		return V4
	case addr.Is6():
		return V6
	default:
		return 0
	}
}

// Range is the inclusive address range [First, Last] of one family.
type Range struct {
	First, Last netip.Addr
}

// Family returns the family of the range.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether addr lies in r.
func (r Range) Contains(addr netip.Addr) bool {
	return addr.BitLen() == r.First.BitLen() && r.First.Compare(addr) <= 0 && addr.Compare(r.Last) <= 0
}

// String returns "a" for a single address and "a-b" otherwise: the syntax of
// the ips field.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// span returns Last-First, the number of addresses in r minus one, which
// never overflows 128 bits.
func (r Range) span() u128 { return toU128(r.Last).sub(toU128(r.First)) }

// ParseRange parses one entry of ips/excludeIPs: a single address or an
// inclusive range "a-b" of one family with a <= b. Spaces around the
// addresses are ignored.
func ParseRange(s string) (Range, error) {
	first, last, isRange := strings.Cut(s, "-")
	a, err := parseAddr(first)
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Range{First: a, Last: a}, nil
	}
	b, err := parseAddr(last)
	if err != nil {
		return Range{}, err
	}
	if FamilyOf(a) != FamilyOf(b) {
		return Range{}, fmt.Errorf("range mixes %s and %s addresses", FamilyOf(a), FamilyOf(b))
	}
	if b.Less(a) {
		return Range{}, fmt.Errorf("range is reversed: %s is after %s; write the lower address first", a, b)
	}
	return Range{First: a, Last: b}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, errors.New("empty address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone; zones are not allowed", s)
	}
	return a, nil
}

// Set is a canonical set of addresses of one family: sorted, non-overlapping,
// non-adjacent inclusive ranges. The zero Set is empty. Build one with NewSet
// or ParseSet; a Set is never modified in place.
type Set struct {
	ranges []Range
}

// NewSet returns the canonical set holding every address of rs. All ranges
// must be of one family; NewSet panics otherwise (ParseSet reports it as an
// error).
func NewSet(rs ...Range) Set {
	if len(rs) == 0 {
		return Set{}
	}
	sorted := slices.Clone(rs)
	fam := sorted[0].Family()
	for _, r := range sorted {
		if r.Family() != fam || r.Last.Less(r.First) {
			panic(fmt.Sprintf("ranges: NewSet given invalid or mixed-family range %s", r))
		}
	}
	slices.SortFunc(sorted, func(a, b Range) int { return a.First.Compare(b.First) })
	out := sorted[:1]
	for _, r := range sorted[1:] {
		cur := &out[len(out)-1]
		// Merge when r starts at or before cur.Last+1.
		if next := cur.Last.Next(); !next.IsValid() || r.First.Compare(next) <= 0 {
			if cur.Last.Less(r.Last) {
				cur.Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return Set{ranges: slices.Clip(out)}
}

// ParseSet parses entries (the ips/excludeIPs syntax) of the given family.
// field names the entries in errors, e.g. "spec.ips". When within is valid,
// every entry must lie inside it.
func ParseSet(field string, entries []string, fam Family, within netip.Prefix) (Set, error) {
	rs := make([]Range, 0, len(entries))
	for i, e := range entries {
		r, err := ParseRange(e)
		if err != nil {
			return Set{}, fmt.Errorf("invalid %s[%d] %q: %w", field, i, e, err)
		}
		if r.Family() != fam {
			return Set{}, fmt.Errorf("invalid %s[%d] %q: %s entry in an %s list", field, i, e, r.Family(), fam)
		}
		if within.IsValid() && !(within.Contains(r.First) && within.Contains(r.Last)) {
			return Set{}, fmt.Errorf("invalid %s[%d] %q: not inside subnet %s", field, i, e, within)
		}
		rs = append(rs, r)
	}
	return NewSet(rs...), nil
}

// Ranges returns the canonical ranges of s. The slice must not be modified.
func (s Set) Ranges() []Range { return s.ranges }

// Empty reports whether s holds no address.
func (s Set) Empty() bool { return len(s.ranges) == 0 }

// Family returns the family of s, or 0 when s is empty.
func (s Set) Family() Family {
	if len(s.ranges) == 0 {
		return 0
	}
	return s.ranges[0].Family()
}

// Strings returns the canonical entries of s in the ips syntax.
func (s Set) Strings() []string {
	out := make([]string, len(s.ranges))
	for i, r := range s.ranges {
		out[i] = r.String()
	}
	return out
}

// Contains reports whether addr is in s.
func (s Set) Contains(addr netip.Addr) bool {
	i, ok := s.find(addr)
	return ok && s.ranges[i].Contains(addr)
}

// find returns the index of the last range whose First <= addr.
func (s Set) find(addr netip.Addr) (int, bool) {
	if len(s.ranges) == 0 || addr.BitLen() != s.ranges[0].First.BitLen() {
		return 0, false
	}
	i, found := slices.BinarySearchFunc(s.ranges, addr, func(r Range, a netip.Addr) int { return r.First.Compare(a) })
	if found {
		return i, true
	}
	if i == 0 {
		return 0, false
	}
	return i - 1, true
}

// Equal reports whether s and o hold the same addresses.
func (s Set) Equal(o Set) bool { return slices.Equal(s.ranges, o.ranges) }

// Union returns the addresses in s or o. Sets of different families cannot be
// combined: the result is s when o is empty, o when s is empty, and Union
// panics otherwise.
func (s Set) Union(o Set) Set {
	switch {
	case o.Empty():
		return s
	case s.Empty():
		return o
	}
	return NewSet(append(slices.Clone(s.ranges), o.ranges...)...)
}

// Subtract returns the addresses of s that are not in o. Addresses of o of
// another family are ignored.
func (s Set) Subtract(o Set) Set {
	if s.Empty() || o.Empty() || s.Family() != o.Family() {
		return s
	}
	var out []Range
	j := 0
	for _, r := range s.ranges {
		cur := r
		alive := true
		// Skip holes that end before cur.
		for j < len(o.ranges) && o.ranges[j].Last.Less(cur.First) {
			j++
		}
		for k := j; alive && k < len(o.ranges) && o.ranges[k].First.Compare(cur.Last) <= 0; k++ {
			h := o.ranges[k]
			if cur.First.Less(h.First) {
				out = append(out, Range{First: cur.First, Last: h.First.Prev()})
			}
			if h.Last.Less(cur.Last) {
				cur.First = h.Last.Next()
			} else {
				alive = false
			}
		}
		if alive {
			out = append(out, cur)
		}
	}
	return Set{ranges: out}
}

// Count returns the number of addresses in s, saturated at math.MaxUint64
// (only reachable by IPv6 sets larger than 2^64 addresses). Use BigCount for
// the exact value.
func (s Set) Count() uint64 {
	var total u128
	for _, r := range s.ranges {
		sp := r.span()
		if sp.hi != 0 {
			return math.MaxUint64
		}
		total = total.add(sp).add(u128{lo: 1})
		if total.hi != 0 {
			return math.MaxUint64
		}
	}
	return total.lo
}

// BigCount returns the exact number of addresses in s.
func (s Set) BigCount() *big.Int {
	total := new(big.Int)
	for _, r := range s.ranges {
		sp := r.span()
		n := new(big.Int).SetUint64(sp.hi)
		n.Lsh(n, 64).Add(n, new(big.Int).SetUint64(sp.lo)).Add(n, big.NewInt(1))
		total.Add(total, n)
	}
	return total
}

// u128 is an unsigned 128-bit integer used for address arithmetic.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) toAddr(f Family) netip.Addr {
	if f == V4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) add(v u128) u128 {
	lo := u.lo + v.lo
	carry := uint64(0)
	if lo < u.lo {
		carry = 1
	}
	return u128{hi: u.hi + v.hi + carry, lo: lo}
}

func (u u128) sub(v u128) u128 {
	lo := u.lo - v.lo
	borrow := uint64(0)
	if u.lo < v.lo {
		borrow = 1
	}
	return u128{hi: u.hi - v.hi - borrow, lo: lo}
}
