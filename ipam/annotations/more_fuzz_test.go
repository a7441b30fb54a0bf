package annotations

import (
	"strings"
	"testing"
)

func FuzzParseDefaultNetwork(f *testing.F) {
	for _, s := range []string{"macvlan", "other/macvlan", `[{"name":"m","namespace":"x"}]`, `{"name":"m"}`, "a/b/c", "", "m@eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseDefaultNetwork(s, "pod-ns")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if n.Name == "" || n.Namespace == "" {
			t.Fatalf("ParseDefaultNetwork(%q) = %+v: accepted without a name or namespace", s, n)
		}
	})
}

func FuzzParseIPNumber(f *testing.F) {
	for _, s := range []string{"3", "+1", "+0", "0", "-1", " 2 ", "+", "99999999999999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseIPNumber(s)
		if err != nil {
			if !strings.Contains(err.Error(), PoolIPNumber) {
				t.Fatalf("ParseIPNumber(%q): %v does not name the annotation", s, err)
			}
			return
		}
		if n.N < 0 || (!n.Flexible && n.N == 0) {
			t.Fatalf("ParseIPNumber(%q) = %+v", s, n)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"0a:58:0a:f4:00:05", "0A-58-0A-F4-00-05", "01:00:5e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "0a58.0af4.0005", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mac, err := ParseMAC(OVNMACAddress, s)
		if err != nil {
			return
		}
		if len(mac) != 6 || mac[0]&1 == 1 {
			t.Fatalf("ParseMAC(%q) = %v: not a unicast Ethernet address", s, mac)
		}
	})
}
