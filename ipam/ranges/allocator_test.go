package ranges

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustAllocator(t testing.TB, entries ...string) *Allocator {
	t.Helper()
	a, err := NewAllocator(mustSet(t, entries...))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllocatorOffsets(t *testing.T) {
	a := mustAllocator(t, "10.0.0.1-10.0.0.3", "10.0.0.10", "10.0.1.250-10.0.2.5")
	if a.Size() != 3+1+12 {
		t.Fatalf("size %d, want 16", a.Size())
	}
	want := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.10", "10.0.1.250", "10.0.1.251", "10.0.1.252", "10.0.1.253",
		"10.0.1.254", "10.0.1.255", "10.0.2.0", "10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.2.4", "10.0.2.5"}
	for off, w := range want {
		got, ok := a.AddrAt(uint64(off))
		if !ok || got != addr(w) {
			t.Errorf("AddrAt(%d) = %s, %v; want %s", off, got, ok, w)
		}
		o, ok := a.Offset(addr(w))
		if !ok || o != uint64(off) {
			t.Errorf("Offset(%s) = %d, %v; want %d", w, o, ok, off)
		}
	}
	if _, ok := a.AddrAt(16); ok {
		t.Error("AddrAt(Size) succeeded")
	}
	for _, s := range []string{"10.0.0.0", "10.0.0.4", "10.0.0.11", "10.0.2.6", "fd00::1", "::ffff:10.0.0.1"} {
		if _, ok := a.Offset(addr(s)); ok || a.Contains(addr(s)) {
			t.Errorf("Offset(%s) succeeded for an address outside the pool", s)
		}
	}
}

func TestAllocatorAllocateRelease(t *testing.T) {
	a := mustAllocator(t, "10.0.0.1-10.0.0.3")
	if err := a.Allocate(addr("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Allocate(addr("10.0.0.2")); !errors.Is(err, ErrAllocated) {
		t.Errorf("second Allocate: %v, want ErrAllocated", err)
	}
	if err := a.Allocate(addr("10.0.0.9")); !errors.Is(err, ErrNotInPool) {
		t.Errorf("Allocate outside pool: %v, want ErrNotInPool", err)
	}
	if !a.Has(addr("10.0.0.2")) || a.Has(addr("10.0.0.1")) || a.Has(addr("10.0.0.9")) {
		t.Error("Has is wrong")
	}
	if a.Used() != 1 || a.Free() != 2 {
		t.Errorf("used %d free %d, want 1 2", a.Used(), a.Free())
	}
	if a.Release(addr("10.0.0.1")) || a.Release(addr("10.0.0.9")) {
		t.Error("Release of a free or foreign address reported true")
	}
	if !a.Release(addr("10.0.0.2")) || a.Has(addr("10.0.0.2")) || a.Used() != 0 {
		t.Error("Release did not free the address")
	}
}

func TestAllocatorNextFreeWrapsAround(t *testing.T) {
	a := mustAllocator(t, "10.0.0.1-10.0.0.4")
	for _, s := range []string{"10.0.0.1", "10.0.0.3", "10.0.0.4"} {
		if err := a.Allocate(addr(s)); err != nil {
			t.Fatal(err)
		}
	}
	for start := uint64(0); start < 10; start++ {
		got, off, ok := a.NextFree(start)
		if !ok || got != addr("10.0.0.2") || off != 1 {
			t.Errorf("NextFree(%d) = %s %d %v, want 10.0.0.2 1 true", start, got, off, ok)
		}
	}
	if _, err := a.AllocateNext(3); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := a.NextFree(0); ok {
		t.Error("NextFree on a full pool succeeded")
	}
	if _, err := a.AllocateNext(0); !errors.Is(err, ErrPoolFull) || err.Error() != "pool is full: 4/4 allocated" {
		t.Errorf("AllocateNext on a full pool: %v", err)
	}
}

func TestAllocatorNextFreeAcrossWords(t *testing.T) {
	// 200 addresses: 4 words, the last one padded. Fill all but one address
	// in each position and check NextFree finds it from every start.
	for _, hole := range []uint64{0, 63, 64, 127, 128, 150, 199} {
		a := mustAllocator(t, "10.0.0.0-10.0.0.199")
		for off := range uint64(200) {
			if off != hole {
				ad, _ := a.AddrAt(off)
				if err := a.Allocate(ad); err != nil {
					t.Fatal(err)
				}
			}
		}
		for start := range uint64(200) {
			_, off, ok := a.NextFree(start)
			if !ok || off != hole {
				t.Fatalf("hole %d: NextFree(%d) = %d %v", hole, start, off, ok)
			}
		}
	}
}

func TestAllocatorLargeSparseFill(t *testing.T) {
	// 2^20 addresses (the maximum) with one free address far from the start:
	// the summary words must lead to it.
	a := mustAllocator(t, "fd00::-fd00::f:ffff")
	if a.Size() != MaxPoolSize {
		t.Fatalf("size %d", a.Size())
	}
	const hole = 777777
	for off := range uint64(MaxPoolSize) {
		if off != hole {
			a.set(off)
		}
	}
	got, off, ok := a.NextFree(hole + 1)
	if !ok || off != hole || got != addr("fd00::b:de31") {
		t.Errorf("NextFree = %s %d %v, want fd00::b:de31 %d", got, off, ok, hole)
	}
}

func TestAllocatorEmptyPool(t *testing.T) {
	a := mustAllocator(t)
	if a.Size() != 0 || a.Free() != 0 {
		t.Error("empty pool has addresses")
	}
	if _, _, ok := a.NextFree(5); ok {
		t.Error("NextFree on an empty pool succeeded")
	}
	if _, err := a.AllocateNext(0); !errors.Is(err, ErrPoolFull) {
		t.Errorf("AllocateNext on an empty pool: %v", err)
	}
}

func TestAllocatorTooLarge(t *testing.T) {
	if _, err := NewAllocator(mustSet(t, "fd00::-fd00::10:0000")); !errors.Is(err, ErrPoolTooLarge) {
		t.Errorf("2^20+1 addresses: %v, want ErrPoolTooLarge", err)
	}
	_, err := NewAllocator(mustSet(t, "fd00::-fd00::ffff:ffff:ffff:ffff"))
	if !errors.Is(err, ErrPoolTooLarge) || err.Error() != "pool too large: 18446744073709551616 usable addresses, at most 1048576 are supported per pool; list a smaller range in spec.ips" {
		t.Errorf("a /64: %v", err)
	}
	if _, err := NewAllocator(mustSet(t, "fd00::-fd00::f:ffff")); err != nil {
		t.Errorf("exactly 2^20 addresses: %v", err)
	}
}

func TestAllocatorIPv6EdgeOfSpace(t *testing.T) {
	a := mustAllocator(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::-::3")
	if a.Size() != 20 {
		t.Fatalf("size %d", a.Size())
	}
	last := addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	if off, ok := a.Offset(last); !ok || off != 19 {
		t.Errorf("Offset(last) = %d %v", off, ok)
	}
	if got, _ := a.AddrAt(19); got != last {
		t.Errorf("AddrAt(19) = %s", got)
	}
	if got, _ := a.AddrAt(0); got != addr("::") {
		t.Errorf("AddrAt(0) = %s", got)
	}
}

func TestAllocatorFromPoolSpec(t *testing.T) {
	spec := v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.1-10.6.0.4"}, Gateway: ptr("10.6.0.1")}
	_, a, err := NewPoolAllocator(&spec, Set{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewPoolAllocator(&v2beta1.IPPoolSpec{Subnet: "fd00::/64", IPs: []string{"fd00::-fd00::ffff:ffff"}}, Set{}); !errors.Is(err, ErrPoolTooLarge) {
		t.Errorf("huge pool: %v", err)
	}
	if _, _, err := NewPoolAllocator(&v2beta1.IPPoolSpec{Subnet: "x"}, Set{}); err == nil {
		t.Error("bad spec accepted")
	}
	var got []string
	for {
		ad, err := a.AllocateNext(0)
		if errors.Is(err, ErrPoolFull) {
			break
		}
		got = append(got, ad.String())
	}
	if len(got) != 3 || got[0] != "10.6.0.2" || got[2] != "10.6.0.4" {
		t.Errorf("allocated %v, want 10.6.0.2..10.6.0.4 (never the gateway)", got)
	}
}

func TestAllocatorClone(t *testing.T) {
	a := mustAllocator(t, "10.0.0.1-10.0.0.3")
	c := a.Clone()
	if err := c.Allocate(addr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if a.Has(addr("10.0.0.1")) || a.Used() != 0 {
		t.Error("Clone shares state with the original")
	}
}

// TestAllocatorMatchesModel runs random operations against a map model.
func TestAllocatorMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := mustAllocator(t, "10.0.0.3-10.0.0.70", "10.0.1.0-10.0.1.200", "10.0.3.7")
	model := map[uint64]bool{}
	for range 20000 {
		off := rng.Uint64N(a.Size() + 3) // sometimes out of range
		ad, inPool := a.AddrAt(off)
		switch rng.IntN(3) {
		case 0:
			if !inPool {
				continue
			}
			err := a.Allocate(ad)
			if model[off] != errors.Is(err, ErrAllocated) || (!model[off] && err != nil) {
				t.Fatalf("Allocate(%s) = %v with model %v", ad, err, model[off])
			}
			model[off] = true
		case 1:
			if !inPool {
				continue
			}
			if got := a.Release(ad); got != model[off] {
				t.Fatalf("Release(%s) = %v, model %v", ad, got, model[off])
			}
			delete(model, off)
		case 2:
			got, gotOff, ok := a.NextFree(off)
			// Model: first free offset scanning from off%size with wrap.
			var want uint64
			found := false
			for i := range a.Size() {
				o := (off%a.Size() + i) % a.Size()
				if !model[o] {
					want, found = o, true
					break
				}
			}
			if ok != found || (ok && gotOff != want) {
				t.Fatalf("NextFree(%d) = %d %v, model %d %v", off, gotOff, ok, want, found)
			}
			if ok {
				if back, _ := a.AddrAt(gotOff); back != got {
					t.Fatalf("NextFree address %s does not match offset %d", got, gotOff)
				}
			}
		}
		if a.Used() != uint64(len(model)) {
			t.Fatalf("used %d, model %d", a.Used(), len(model))
		}
	}
}

func benchAllocator(b *testing.B, fill float64) (*Allocator, []uint64) {
	a, err := NewAllocator(mustSet(b, "10.0.0.0-10.0.255.255"))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for off := range a.Size() {
		if rng.Float64() < fill {
			a.set(off)
		}
	}
	starts := make([]uint64, 1024)
	for i := range starts {
		starts[i] = rng.Uint64N(a.Size())
	}
	return a, starts
}

// BenchmarkNextFree_Empty: a /16 with nothing allocated.
func BenchmarkNextFree_Empty(b *testing.B) {
	a, starts := benchAllocator(b, 0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, ok := a.NextFree(starts[i%len(starts)]); !ok {
			b.Fatal("no free address")
		}
	}
}

// BenchmarkNextFree_90pctFull: a /16 with 90% of the addresses allocated at
// random.
func BenchmarkNextFree_90pctFull(b *testing.B) {
	a, starts := benchAllocator(b, 0.9)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, ok := a.NextFree(starts[i%len(starts)]); !ok {
			b.Fatal("no free address")
		}
	}
}

// BenchmarkNextFree_LastFree: the worst case, a 2^20-address pool with a
// single free address just before the start offset.
func BenchmarkNextFree_LastFree(b *testing.B) {
	a, err := NewAllocator(mustSet(b, "fd00::-fd00::f:ffff"))
	if err != nil {
		b.Fatal(err)
	}
	for off := range a.Size() {
		if off != 5 {
			a.set(off)
		}
	}
	for b.Loop() {
		if _, off, ok := a.NextFree(6); !ok || off != 5 {
			b.Fatal("wrong address")
		}
	}
}

// BenchmarkNewPoolAllocator: parsing a /16 pool and building its allocator.
func BenchmarkNewPoolAllocator(b *testing.B) {
	spec := v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.1-10.6.255.254"}, ExcludeIPs: []string{"10.6.0.1-10.6.0.10"}, Gateway: ptr("10.6.0.1")}
	for b.Loop() {
		p, err := ParsePool(&spec, Set{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := NewAllocator(p.Usable); err != nil {
			b.Fatal(err)
		}
	}
}
