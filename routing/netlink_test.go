package routing

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestRetryDump(t *testing.T) {
	t.Run("interrupted dumps are retried", func(t *testing.T) {
		calls := 0
		got, err := retryDump("routes", func() ([]int, error) {
			calls++
			if calls < 3 {
				return []int{0}, netlink.ErrDumpInterrupted
			}
			return []int{1, 2}, nil
		})
		if err != nil || !slices.Equal(got, []int{1, 2}) || calls != 3 {
			t.Errorf("got %v, %v after %d calls", got, err, calls)
		}
	})
	t.Run("EINTR is retried", func(t *testing.T) {
		calls := 0
		_, err := retryDump("rules", func() ([]int, error) {
			calls++
			if calls == 1 {
				return nil, unix.EINTR
			}
			return nil, nil
		})
		if err != nil || calls != 2 {
			t.Errorf("got %v after %d calls", err, calls)
		}
	})
	t.Run("gives up and names what it listed", func(t *testing.T) {
		calls := 0
		_, err := retryDump("links", func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted })
		if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != dumpAttempts || err.Error() != "failed to list links: "+netlink.ErrDumpInterrupted.Error() {
			t.Errorf("got %v after %d calls", err, calls)
		}
	})
	t.Run("other errors are not retried", func(t *testing.T) {
		calls := 0
		_, err := retryDump("links", func() ([]int, error) { calls++; return nil, unix.EPERM })
		if !errors.Is(err, unix.EPERM) || calls != 1 {
			t.Errorf("got %v after %d calls", err, calls)
		}
	})
}

func TestRouteAndRuleMatching(t *testing.T) {
	have := Route{Table: 254, Dst: mustCIDR("0.0.0.0/0"), Gw: net.ParseIP("10.0.0.1"), Dev: "net1"}
	if !routeMatches(Route{Dst: mustCIDR("0.0.0.0/0"), Dev: "net1"}, have) {
		t.Error("a pattern without gateway must match any gateway")
	}
	if routeMatches(Route{Dst: mustCIDR("0.0.0.0/0"), Dev: "net1", Gw: net.ParseIP("10.0.0.2")}, have) {
		t.Error("a pattern with another gateway matched")
	}
	if routeMatches(Route{Table: 101, Dst: mustCIDR("0.0.0.0/0"), Dev: "net1"}, have) {
		t.Error("a pattern for another table matched")
	}
	if sameRoute(Route{Dst: mustCIDR("0.0.0.0/0"), Dev: "net1"}, have) {
		t.Error("a wanted route without gateway matched one with a gateway")
	}
	if !sameRoute(Route{Dst: mustCIDR("0.0.0.0/0"), Dev: "net1", Gw: net.ParseIP("10.0.0.1")}, have) {
		t.Error("identical route did not match")
	}
	all := Rule{Family: FamilyV4, Table: 500, Priority: 1000}
	if !sameRule(all, Rule{Family: FamilyV4, Src: mustCIDR("0.0.0.0/0"), Table: 500, Priority: 1000}) {
		t.Error("from all did not match a zero-length source")
	}
	if sameRule(all, Rule{Family: FamilyV4, Src: mustCIDR("10.0.0.1/32"), Table: 500, Priority: 1000}) {
		t.Error("from all matched a specific source")
	}
}

func TestSortRoutesPutsOnLinkRoutesFirst(t *testing.T) {
	rs := []Route{
		{Table: 100, Dst: mustCIDR("10.96.0.0/12"), Gw: net.ParseIP("10.0.0.1"), Dev: "veth0"},
		{Table: 254, Dst: mustCIDR("0.0.0.0/0"), Gw: net.ParseIP("10.0.0.254"), Dev: "eth0"},
		{Table: 100, Dst: mustCIDR("10.0.0.1/32"), Dev: "veth0"},
		{Table: 254, Dst: mustCIDR("fd00::1/128"), Dev: "veth0"},
	}
	SortRoutes(rs)
	var got []string
	for _, r := range rs {
		got = append(got, r.String())
	}
	want := []string{
		"10.0.0.1/32 dev veth0 table 100",
		"fd00::1/128 dev veth0 table 254",
		"10.96.0.0/12 via 10.0.0.1 dev veth0 table 100",
		"0.0.0.0/0 via 10.0.0.254 dev eth0 table 254",
	}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %q, want %q", got, want)
	}
}
