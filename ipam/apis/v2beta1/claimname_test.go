package v2beta1

import (
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestClaimName(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"10.6.0.5", "10.6.0.5"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.255.255.255", "255.255.255.255"},
		{"fd00::5", "fd00-0000-0000-0000-0000-0000-0000-0005"},
		{"FD00::ABCD", "fd00-0000-0000-0000-0000-0000-0000-abcd"},
		{"::", "0000-0000-0000-0000-0000-0000-0000-0000"},
		{"fe80::1%eth0", "fe80-0000-0000-0000-0000-0000-0000-0001"},
		// An IPv4-mapped IPv6 address is an IPv6 address: it must not collide
		// with the IPv4 claim of 10.6.0.5.
		{"::ffff:10.6.0.5", "0000-0000-0000-0000-0000-ffff-0a06-0005"},
	}
	for _, tt := range tests {
		got := ClaimName(netip.MustParseAddr(tt.addr))
		if got != tt.want {
			t.Errorf("ClaimName(%s) = %q, want %q", tt.addr, got, tt.want)
		}
		if errs := validation.IsDNS1123Subdomain(got); len(errs) != 0 {
			t.Errorf("ClaimName(%s) = %q is not a valid object name: %v", tt.addr, got, errs)
		}
	}
	if got := ClaimName(netip.Addr{}); got != "" {
		t.Errorf("ClaimName(zero) = %q, want empty", got)
	}
}

func TestParseClaimName(t *testing.T) {
	good := map[string]string{
		"10.6.0.5": "10.6.0.5",
		"fd00-0000-0000-0000-0000-0000-0000-0005": "fd00::5",
		"0000-0000-0000-0000-0000-ffff-0a06-0005": "::ffff:10.6.0.5",
	}
	for name, want := range good {
		got, err := ParseClaimName(name)
		if err != nil {
			t.Errorf("ParseClaimName(%q): %v", name, err)
			continue
		}
		if got != netip.MustParseAddr(want) {
			t.Errorf("ParseClaimName(%q) = %s, want %s", name, got, want)
		}
	}
	bad := []string{
		"",
		"10.6.0.05",          // not canonical
		"010.6.0.5",          // not canonical
		"10.6.0",             // not an address
		"fd00::5",            // IPv6 must use the expanded dash form
		"fd00-0-0-0-0-0-0-5", // not expanded
		"FD00-0000-0000-0000-0000-0000-0000-0005",  // upper case
		"fd00-0000-0000-0000-0000-0000-0000-0005-", // trailing dash
		"fd00:0000-0000-0000-0000-0000-0000-0005",  // mixed separators
		"::ffff:10.6.0.5",
		"10.6.0.5%eth0",
		"pool-a",
	}
	for _, name := range bad {
		if addr, err := ParseClaimName(name); err == nil {
			t.Errorf("ParseClaimName(%q) = %s, want error", name, addr)
		}
	}
}

func FuzzClaimName(f *testing.F) {
	for _, s := range []string{"10.6.0.5", "fd00::5", "::ffff:1.2.3.4", "::", "fd00-0000-0000-0000-0000-0000-0000-0005", "1.2.3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Names: whatever parses must print back to the same name.
		if addr, err := ParseClaimName(s); err == nil {
			if got := ClaimName(addr); got != s {
				t.Fatalf("ClaimName(ParseClaimName(%q)) = %q", s, got)
			}
		}
		// Addresses: every address round-trips through its name.
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		name := ClaimName(addr)
		back, err := ParseClaimName(name)
		if err != nil {
			t.Fatalf("ParseClaimName(ClaimName(%s) = %q): %v", addr, name, err)
		}
		if back != addr.WithZone("") {
			t.Fatalf("round trip of %s gave %s", addr, back)
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) != 0 {
			t.Fatalf("ClaimName(%s) = %q is not a valid object name: %v", addr, name, errs)
		}
	})
}
