package ranges

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// MaxPoolSize is the largest number of usable addresses one pool may have:
// 2^20 (1048576), a 128 KiB bitmap. A larger pool (typically an IPv6 pool
// whose ips lists a whole /64) is refused with ErrPoolTooLarge; list a smaller
// range in spec.ips.
const MaxPoolSize = 1 << 20

// Errors of the Allocator. Callers add the pool name with %w.
var (
	// ErrPoolTooLarge: the pool has more than MaxPoolSize usable addresses.
	ErrPoolTooLarge = errors.New("pool too large")
	// ErrNotInPool: the address is not a usable address of the pool.
	ErrNotInPool = errors.New("address not in pool")
	// ErrAllocated: the address is already allocated.
	ErrAllocated = errors.New("address already allocated")
	// ErrPoolFull: every usable address is allocated.
	ErrPoolFull = errors.New("pool is full")
)

// Allocator tracks which usable addresses of a pool are allocated, with one
// bit per address. Addresses are numbered 0..Size()-1 in address order
// ("offsets"). Finding a free address costs O(Size/4096) word reads at most,
// whatever the fill level. An Allocator is not safe for concurrent use.
type Allocator struct {
	fam    Family
	ranges []Range
	starts []uint64 // starts[i] is the offset of ranges[i].First
	size   uint64
	used   uint64
	words  []uint64 // bit i: offset i allocated; bits past size are set
	full   []uint64 // bit w: words[w] is all ones; bits past len(words) are set
}

// NewAllocator returns an allocator over usable with nothing allocated. It
// fails with ErrPoolTooLarge when usable holds more than MaxPoolSize
// addresses.
func NewAllocator(usable Set) (*Allocator, error) {
	if n := usable.Count(); n > MaxPoolSize {
		return nil, fmt.Errorf("%w: %s usable addresses, at most %d are supported per pool; list a smaller range in spec.ips",
			ErrPoolTooLarge, usable.BigCount(), MaxPoolSize)
	}
	a := &Allocator{fam: usable.Family(), ranges: usable.ranges, starts: make([]uint64, len(usable.ranges))}
	for i, r := range usable.ranges {
		a.starts[i] = a.size
		a.size += r.span().lo + 1
	}
	nw := (a.size + 63) / 64
	a.words = make([]uint64, nw)
	a.full = make([]uint64, (nw+63)/64)
	if rem := a.size % 64; rem != 0 {
		a.words[nw-1] = ^uint64(0) << rem // padding counts as allocated
	}
	if rem := nw % 64; rem != 0 {
		a.full[len(a.full)-1] = ^uint64(0) << rem
	}
	return a, nil
}

// Family returns the pool's family (0 for an empty pool).
func (a *Allocator) Family() Family { return a.fam }

// Size returns the number of usable addresses.
func (a *Allocator) Size() uint64 { return a.size }

// Used returns the number of allocated addresses.
func (a *Allocator) Used() uint64 { return a.used }

// Free returns the number of free addresses.
func (a *Allocator) Free() uint64 { return a.size - a.used }

// Contains reports whether addr is a usable address of the pool.
func (a *Allocator) Contains(addr netip.Addr) bool {
	_, ok := a.Offset(addr)
	return ok
}

// Offset returns the offset of addr, or false when addr is not usable.
func (a *Allocator) Offset(addr netip.Addr) (uint64, bool) {
	s := Set{ranges: a.ranges}
	i, ok := s.find(addr)
	if !ok || !a.ranges[i].Contains(addr) {
		return 0, false
	}
	return a.starts[i] + toU128(addr).sub(toU128(a.ranges[i].First)).lo, true
}

// AddrAt returns the address at offset off, or false when off >= Size().
func (a *Allocator) AddrAt(off uint64) (netip.Addr, bool) {
	if off >= a.size {
		return netip.Addr{}, false
	}
	i, found := slices.BinarySearch(a.starts, off)
	if !found {
		i--
	}
	return toU128(a.ranges[i].First).add(u128{lo: off - a.starts[i]}).toAddr(a.fam), true
}

// Has reports whether addr is allocated.
func (a *Allocator) Has(addr netip.Addr) bool {
	off, ok := a.Offset(addr)
	return ok && a.isSet(off)
}

// Allocate marks addr allocated. It fails with ErrNotInPool or ErrAllocated.
func (a *Allocator) Allocate(addr netip.Addr) error {
	off, ok := a.Offset(addr)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotInPool, addr)
	}
	if a.isSet(off) {
		return fmt.Errorf("%w: %s", ErrAllocated, addr)
	}
	a.set(off)
	return nil
}

// Release marks addr free and reports whether it was allocated.
func (a *Allocator) Release(addr netip.Addr) bool {
	off, ok := a.Offset(addr)
	if !ok || !a.isSet(off) {
		return false
	}
	w := off / 64
	a.words[w] &^= 1 << (off % 64)
	a.full[w/64] &^= 1 << (w % 64)
	a.used--
	return true
}

// NextFree returns the first free address at or after offset start, wrapping
// around to offset 0; start may be any value (it is taken modulo Size()). It
// returns false when the pool is full.
func (a *Allocator) NextFree(start uint64) (netip.Addr, uint64, bool) {
	if a.used == a.size {
		return netip.Addr{}, 0, false
	}
	off, ok := a.scan(start % a.size)
	if !ok {
		off, ok = a.scan(0)
	}
	if !ok {
		return netip.Addr{}, 0, false
	}
	addr, _ := a.AddrAt(off)
	return addr, off, true
}

// AllocateNext allocates the address NextFree(start) returns. It fails with
// ErrPoolFull.
func (a *Allocator) AllocateNext(start uint64) (netip.Addr, error) {
	addr, off, ok := a.NextFree(start)
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: %d/%d allocated", ErrPoolFull, a.used, a.size)
	}
	a.set(off)
	return addr, nil
}

// Clone returns an independent copy of a.
func (a *Allocator) Clone() *Allocator {
	c := *a
	c.words = slices.Clone(a.words)
	c.full = slices.Clone(a.full)
	return &c
}

func (a *Allocator) isSet(off uint64) bool { return a.words[off/64]&(1<<(off%64)) != 0 }

func (a *Allocator) set(off uint64) {
	w := off / 64
	a.words[w] |= 1 << (off % 64)
	if a.words[w] == ^uint64(0) {
		a.full[w/64] |= 1 << (w % 64)
	}
	a.used++
}

// scan returns the first clear bit at or after from.
func (a *Allocator) scan(from uint64) (uint64, bool) {
	w := from / 64
	if w >= uint64(len(a.words)) {
		return 0, false
	}
	if x := ^a.words[w] &^ (1<<(from%64) - 1); x != 0 {
		return w*64 + uint64(bits.TrailingZeros64(x)), true
	}
	// Find the next word that is not full through the summary.
	w++
	for s := w / 64; s < uint64(len(a.full)); s++ {
		x := ^a.full[s]
		if s == w/64 {
			x &^= 1<<(w%64) - 1
		}
		if x == 0 {
			continue
		}
		wi := s*64 + uint64(bits.TrailingZeros64(x))
		if wi >= uint64(len(a.words)) {
			return 0, false
		}
		return wi*64 + uint64(bits.TrailingZeros64(^a.words[wi])), true
	}
	return 0, false
}
