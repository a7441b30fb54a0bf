package migrate

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func TestParseAllocatedIPs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Record
		err      string
	}{
		{name: "empty", in: ""},
		{name: "empty object", in: "{}"},
		{name: "current shape", in: `{"10.6.0.7":{"pod":"ns1/b","podUid":"u2"},"10.6.0.5":{"pod":"ns1/a","podUid":"u1","interface":"net1"}}`,
			want: []Record{
				{Address: netip.MustParseAddr("10.6.0.5"), Pool: "p", Namespace: "ns1", Name: "a", UID: "u1", Interface: "net1", Source: "SpiderIPPool p"},
				{Address: netip.MustParseAddr("10.6.0.7"), Pool: "p", Namespace: "ns1", Name: "b", UID: "u2", Source: "SpiderIPPool p"},
			}},
		{name: "older shape", in: `{"fd00::5":{"namespace":"ns2","pod":"c","interface":"eth0","node":"n1","containerID":"abc"}}`,
			want: []Record{{Address: netip.MustParseAddr("fd00::5"), Pool: "p", Namespace: "ns2", Name: "c", Interface: "eth0", ContainerID: "abc", Source: "SpiderIPPool p"}}},
		{name: "not JSON", in: `10.6.0.5`, err: `SpiderIPPool "p": status.allocatedIPs is not a JSON object`},
		{name: "bad key", in: `{"10.6.0":{"pod":"a/b"}}`, err: `status.allocatedIPs key "10.6.0" is not an IP address`},
		{name: "prefix key", in: `{"10.6.0.5/24":{"pod":"a/b"}}`, err: `key "10.6.0.5/24" is not an IP address`},
		{name: "pod without namespace", in: `{"10.6.0.5":{"pod":"b"}}`, err: `status.allocatedIPs["10.6.0.5"]: pod "b" is not a pod reference of the form namespace/name`},
		{name: "pod with two slashes", in: `{"10.6.0.5":{"pod":"a/b/c"}}`, err: `not a pod reference`},
		{name: "namespace and ref", in: `{"10.6.0.5":{"namespace":"a","pod":"a/b"}}`, err: `pod "a/b" is not a pod name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAllocatedIPs("p", tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestOffsetAddr(t *testing.T) {
	for _, tc := range []struct{ rng, off, want, err string }{
		{"10.6.0.0/16", "0", "10.6.0.0", ""},
		{"10.6.0.0/16", "5", "10.6.0.5", ""},
		{"10.6.3.9/16", "258", "10.6.1.2", ""}, // the range is masked first
		{"10.6.0.0/16", "65535", "10.6.255.255", ""},
		{"10.6.0.0/16", "65536", "", "outside range 10.6.0.0/16"},
		{"255.255.255.0/24", "300", "", "outside range"},
		{"fd00::/64", "18446744073709551615", "fd00::ffff:ffff:ffff:ffff", ""},
		{"fd00::/120", "256", "", "outside range"},
		{"10.6.0.0/16", "-1", "", "not a non-negative decimal"},
		{"10.6.0.0/16", "+1", "", "not a non-negative decimal"},
		{"10.6.0.0/16", "0x10", "", "not a non-negative decimal"},
		{"10.6.0.0/16", "", "", "not a non-negative decimal"},
		{"10.6.0.0", "1", "", `range "10.6.0.0" is not a CIDR`},
	} {
		got, err := OffsetAddr(tc.rng, tc.off)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("OffsetAddr(%q, %q) err = %v, want %q", tc.rng, tc.off, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("OffsetAddr(%q, %q) = %v, %v; want %s", tc.rng, tc.off, got, err, tc.want)
		}
	}
}

func TestParseWhereaboutsAllocations(t *testing.T) {
	got, err := ParseWhereaboutsAllocations("IPPool ns/x", "10.7.0.0/24", map[string]WhereaboutsAllocation{
		"12": {ID: "c2", PodRef: "ns1/b", IfName: "net1"},
		"10": {ID: "c1", PodRef: "ns1/a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Address: netip.MustParseAddr("10.7.0.10"), Namespace: "ns1", Name: "a", ContainerID: "c1", Source: "IPPool ns/x"},
		{Address: netip.MustParseAddr("10.7.0.12"), Namespace: "ns1", Name: "b", Interface: "net1", ContainerID: "c2", Source: "IPPool ns/x"},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	_, err = ParseWhereaboutsAllocations("IPPool ns/x", "10.7.0.0/24", map[string]WhereaboutsAllocation{"3": {PodRef: "nobody"}})
	if err == nil || !strings.Contains(err.Error(), `IPPool ns/x: spec.allocations["3"]: podref "nobody" is not a pod reference`) {
		t.Fatalf("err = %v", err)
	}
	_, err = ParseWhereaboutsAllocations("IPPool ns/x", "10.7.0.0/24", map[string]WhereaboutsAllocation{"256": {PodRef: "a/b"}})
	if err == nil || !strings.Contains(err.Error(), `spec.allocations["256"]: offset 256 is outside range 10.7.0.0/24`) {
		t.Fatalf("err = %v", err)
	}
}

func TestReservationAddr(t *testing.T) {
	for name, want := range map[string]string{
		"10.7.0.10":          "10.7.0.10",
		"fd00--5":            "fd00::5",
		"0--5":               "::5",
		"fd00-1-2-3-4-5-6-7": "fd00:1:2:3:4:5:6:7",
		"fd00--0":            "fd00::",
	} {
		got, err := ReservationAddr(name)
		if err != nil || got.String() != want {
			t.Errorf("ReservationAddr(%q) = %v, %v; want %s", name, got, err, want)
		}
	}
	for _, name := range []string{"", "10.7.0", "web-0", "fd00--5%eth0"} {
		if _, err := ReservationAddr(name); err == nil {
			t.Errorf("ReservationAddr(%q) accepted", name)
		}
	}
	if _, err := ReservationRecord("wb", "10.7.0.10", "nobody", "", ""); err == nil || !strings.Contains(err.Error(), "OverlappingRangeIPReservation wb/10.7.0.10: spec.podref") {
		t.Errorf("err = %v", err)
	}
}

func TestEndpointRecords(t *testing.T) {
	se := &v2beta1.SpiderEndpoint{}
	se.Namespace, se.Name = "ns1", "web-0"
	se.Status.Current = v2beta1.PodIPAllocation{UID: "u1", Node: "n1", ContainerID: "c1", IPs: []v2beta1.IPAllocationDetail{
		{Interface: "net1", IPv4: ptr.To("10.6.0.5/16"), IPv4Pool: ptr.To("p4"), IPv6: ptr.To("fd00::5/64"), IPv6Pool: ptr.To("p6")},
		{Interface: "net2"},
	}}
	got, err := EndpointRecords(se)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Address.String() != "10.6.0.5" || got[0].Pool != "p4" || got[0].Interface != "net1" || got[0].UID != "u1" ||
		got[1].Address.String() != "fd00::5" || got[1].Pool != "p6" {
		t.Fatalf("got %+v", got)
	}
	se.Status.Current.IPs[1].IPv4 = ptr.To("10.6.0/16")
	if _, err := EndpointRecords(se); err == nil || !strings.Contains(err.Error(), "SpiderEndpoint ns1/web-0: status.current.ips[1].ipv4") {
		t.Fatalf("err = %v", err)
	}
}

func TestMerge(t *testing.T) {
	a := netip.MustParseAddr("10.6.0.5")
	got := Merge([]Record{
		{Address: a, Namespace: "n", Name: "p", UID: "u", Pool: "pool", Source: "SpiderIPPool pool"},
		{Address: a, Namespace: "n", Name: "p", Interface: "net1", Pool: "pool", Source: "SpiderEndpoint n/p"},
		{Address: a, Namespace: "n", Name: "other", Source: "SpiderIPPool other"},
	})
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if got[0].Name != "other" || got[1].UID != "u" || got[1].Interface != "net1" || got[1].Source != "SpiderIPPool pool, SpiderEndpoint n/p" {
		t.Fatalf("got %+v", got)
	}
}

// FuzzParseAllocatedIPs: any input either fails with an error naming the
// pool or yields valid, ordered records that round-trip.
func FuzzParseAllocatedIPs(f *testing.F) {
	for _, s := range []string{
		"", "{}", `{"10.6.0.5":{"pod":"ns/a","podUid":"u"}}`, `{"fd00::5":{"namespace":"n","pod":"a","interface":"eth0"}}`,
		`{"10.6.0.5":{"pod":"a"}}`, `{"::ffff:10.6.0.5":{"pod":"a/b"}}`, `[]`, `{"10.6.0.5":null}`, `{"10.6.0.5":{"pod":7}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := ParseAllocatedIPs("p", in)
		if err != nil {
			if !strings.Contains(err.Error(), `SpiderIPPool "p"`) {
				t.Fatalf("error does not name the pool: %v", err)
			}
			return
		}
		for i, r := range rs {
			if !r.Address.IsValid() || r.Address.Is4In6() || r.Namespace == "" || r.Name == "" || strings.Contains(r.Name, "/") {
				t.Fatalf("invalid record %+v", r)
			}
			if i > 0 && rs[i-1].Address.Compare(r.Address) > 0 {
				t.Fatalf("records out of order: %v", rs)
			}
		}
		// What was accepted is accepted again when written back in the
		// current shape.
		back := map[string]map[string]string{}
		for _, r := range rs {
			back[r.Address.String()] = map[string]string{"pod": r.PodKey(), "podUid": r.UID}
		}
		raw, _ := json.Marshal(back)
		again, err := ParseAllocatedIPs("p", string(raw))
		if err != nil || len(again) > len(rs) {
			t.Fatalf("round trip of %s: %v (%d records, had %d)", raw, err, len(again), len(rs))
		}
	})
}

// FuzzOffsetAddr: an accepted offset gives an address inside the range, at
// exactly that distance from its first address.
func FuzzOffsetAddr(f *testing.F) {
	for _, s := range [][2]string{{"10.6.0.0/16", "5"}, {"fd00::/64", "18446744073709551615"}, {"10.6.0.0/16", "-1"},
		{"0.0.0.0/0", "4294967295"}, {"::/0", "340282366920938463463374607431768211456"}, {"10.6.0.0/33", "1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rng, off string) {
		a, err := OffsetAddr(rng, off)
		if err != nil {
			return
		}
		p := netip.MustParsePrefix(rng).Masked()
		if !p.Contains(a) {
			t.Fatalf("OffsetAddr(%q, %q) = %v, outside %v", rng, off, a, p)
		}
		if off == "0" && a != p.Addr() {
			t.Fatalf("offset 0 of %v is %v", p, a)
		}
	})
}

// FuzzParseWhereaboutsAllocations: records come out inside the range with a
// namespace and a name, or the error names the IPPool and the offset.
func FuzzParseWhereaboutsAllocations(f *testing.F) {
	f.Add("10.7.0.0/24", "10", "ns/a", "net1")
	f.Add("fd00::/64", "65536", "ns/b", "")
	f.Add("10.7.0.0/24", "256", "ns/a", "")
	f.Add("10.7.0.0/24", "1", "a", "")
	f.Fuzz(func(t *testing.T, rng, off, podref, ifname string) {
		rs, err := ParseWhereaboutsAllocations("IPPool ns/x", rng, map[string]WhereaboutsAllocation{off: {PodRef: podref, IfName: ifname}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "IPPool ns/x: spec.allocations[") {
				t.Fatalf("error does not name the object and entry: %v", err)
			}
			return
		}
		if len(rs) != 1 || !netip.MustParsePrefix(rng).Masked().Contains(rs[0].Address) || rs[0].Namespace == "" || rs[0].Name == "" {
			t.Fatalf("got %+v", rs)
		}
	})
}

// FuzzReservationAddr: an accepted name is an address whose own reservation
// name parses back to it.
func FuzzReservationAddr(f *testing.F) {
	for _, s := range []string{"10.7.0.10", "fd00--5", "0--5", "web-0", "", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		a, err := ReservationAddr(name)
		if err != nil {
			return
		}
		if !a.IsValid() || a.Zone() != "" {
			t.Fatalf("ReservationAddr(%q) = %v", name, a)
		}
	})
}
