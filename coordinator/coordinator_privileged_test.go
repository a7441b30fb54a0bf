package coordinator_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/spindle-net/spindle/coordinator"
)

func TestPrivilegedOverlayPlusTwoUnderlayNICs(t *testing.T) {
	l := newLab(t)
	l.serveAgent(map[string]any{"mode": "auto", "tunePodRoutes": true}, map[string]string{coordinator.DefaultRouteNICAnnotation: "net1"})
	eth0 := l.conflist("overlay", "1.1.0", ptp())
	net1 := l.conflist("underlay-a", "1.1.0",
		macvlan("uplink0", []string{"10.10.0.11/24", "fd00:10::11/64"}, []string{"10.10.0.254", "fd00:10::fe"}, "0.0.0.0/0", "::/0"),
		l.coordinator(nil))
	net2 := l.conflist("underlay-b", "1.1.0",
		macvlan("uplink1", []string{"10.20.0.12/24", "fd00:20::12/64"}, []string{"10.20.0.254", "fd00:20::fe"}, "0.0.0.0/0", "::/0", "192.168.50.0/24"),
		l.coordinator(nil))

	l.mustAdd(eth0, "eth0")
	l.mustAdd(net1, "net1")
	l.mustAdd(net2, "net2")
	podTables := tables(t, l.pod)
	nodeTables := normaliseNode(tables(t, l.node))
	dump(t, "overlay: eth0 (ptp) + net1, net2 (macvlan), default-route-nic=net1 -- pod", podTables)
	dump(t, "overlay: eth0 (ptp) + net1, net2 (macvlan), default-route-nic=net1 -- node", nodeTables)
	if podTables != overlayPodTables {
		t.Errorf("pod tables after ADD:\n%s\nwant:\n%s", podTables, overlayPodTables)
	}
	if nodeTables != overlayNodeTables {
		t.Errorf("node tables after ADD:\n%s\nwant:\n%s", nodeTables, overlayNodeTables)
	}

	// Replies leave the NIC the request came in on: the lan's strict
	// rp_filter drops a reply from 10.20.0.12 that would come back on lan0.
	if err := ping(l.lan, "-I", "10.10.0.254", "10.20.0.12"); err != nil {
		t.Errorf("asymmetric request to net2: %v", err)
	}
	if err := ping(l.lan, "-I", "10.20.0.254", "10.10.0.11"); err != nil {
		t.Errorf("asymmetric request to net1: %v", err)
	}
	// The pod reaches its node over the overlay, also from its underlay
	// addresses (the node answers through table 500).
	for _, args := range [][]string{
		{"10.10.0.1"}, {"-I", "10.10.0.11", "10.10.0.1"}, {"-I", "10.20.0.12", "10.20.0.1"},
		{"fd00:10::1"}, {"-I", "fd00:10::11", "fd00:10::1"}, {"-I", "fd00:20::12", "fd00:20::1"},
	} {
		if err := ping(l.pod, args...); err != nil {
			t.Errorf("pod to node: %v", err)
		}
	}
	// The default route is net1's, per the annotation.
	if err := ping(l.pod, "-I", "10.10.0.11", "10.10.0.254"); err != nil {
		t.Errorf("pod to its default gateway: %v", err)
	}

	// Idempotent: repeating the coordinator changes nothing.
	for _, c := range []struct {
		list   *libcni.NetworkConfigList
		ifName string
	}{{net2, "net2"}, {net1, "net1"}} {
		if err := l.addCoordinatorOnly(c.list, c.ifName); err != nil {
			t.Fatalf("second ADD %s: %v\n%s", c.ifName, err, l.log())
		}
	}
	if again := tables(t, l.pod); again != podTables {
		t.Errorf("second ADD changed the pod tables:\nbefore:\n%s\nafter:\n%s", podTables, again)
	}
	if again := normaliseNode(tables(t, l.node)); again != nodeTables {
		t.Errorf("second ADD changed the node tables:\nbefore:\n%s\nafter:\n%s", nodeTables, again)
	}

	// CHECK passes, fails once a planned route is gone, passes again after
	// a repeated ADD restores it.
	if err := l.check(net1, "net1"); err != nil {
		t.Errorf("CHECK net1: %v", err)
	}
	if err := l.check(net2, "net2"); err != nil {
		t.Errorf("CHECK net2: %v", err)
	}
	sh(t, l.pod, "ip", "route", "del", "default", "via", "10.20.0.254", "dev", "net2", "table", "102")
	err := l.check(net2, "net2")
	if err == nil || !strings.Contains(err.Error(), "0.0.0.0/0 via 10.20.0.254 dev net2 table 102") {
		t.Errorf("CHECK net2 without its table-102 default route: got %v, want an error naming the route", err)
	}
	sh(t, l.pod, "ip", "route", "del", "10.96.0.0/12", "dev", "eth0")
	err = l.check(net1, "net1")
	if err == nil || !strings.Contains(err.Error(), "10.96.0.0/12 via 10.244.1.1 dev eth0") {
		t.Errorf("CHECK net1 without the service route: got %v, want an error naming the route", err)
	}
	if err := l.addCoordinatorOnly(net2, "net2"); err != nil {
		t.Fatalf("repair ADD: %v", err)
	}
	if err := l.check(net2, "net2"); err != nil {
		t.Errorf("CHECK net2 after repair: %v", err)
	}

	// DEL removes the node side; DEL is idempotent.
	for _, c := range []struct {
		list   *libcni.NetworkConfigList
		ifName string
	}{{net2, "net2"}, {net1, "net1"}, {net1, "net1"}} {
		if err := l.del(c.list, c.ifName); err != nil {
			t.Fatalf("DEL %s: %v\n%s", c.ifName, err, l.log())
		}
	}
	if got := sh(t, l.node, "ip", "route", "show", "table", "500"); got != "" {
		t.Errorf("node table 500 after DEL: %q, want empty", got)
	}
	if got := sh(t, l.node, "ip", "-6", "route", "show", "table", "500"); got != "" {
		t.Errorf("node IPv6 table 500 after DEL: %q, want empty", got)
	}
	for _, fam := range []string{"-4", "-6"} {
		if got := sh(t, l.node, "ip", fam, "rule"); strings.Contains(got, "lookup 500") {
			t.Errorf("node rules after DEL still look up table 500:\n%s", got)
		}
		if got := sh(t, l.pod, "ip", fam, "rule"); strings.Contains(got, "lookup 101") || strings.Contains(got, "lookup 102") {
			t.Errorf("pod rules after DEL still name net1/net2 tables:\n%s", got)
		}
	}
	if err := l.del(eth0, "eth0"); err != nil {
		t.Fatalf("DEL eth0: %v", err)
	}
	if got := normaliseNode(sh(t, l.node, "ip", "-o", "link", "show", "type", "veth")); strings.Contains(got, "<ptp-host-veth>") {
		t.Errorf("host veth still present after DEL: %s", got)
	}
}

const overlayPodTables = `# ip -4 rule
0:	from all lookup local
100:	from 10.244.1.2 lookup 100
101:	from 10.10.0.11 lookup 101
102:	from 10.20.0.12 lookup 102
32766:	from all lookup main
32767:	from all lookup default
# ip -6 rule
0:	from all lookup local
100:	from fd00:244::2 lookup 100
101:	from fd00:10::11 lookup 101
102:	from fd00:20::12 lookup 102
32766:	from all lookup main
# ip -4 route show table all
default via 10.244.1.1 dev eth0 table 100 proto static 
10.10.0.1 via 10.244.1.1 dev eth0 table 100 proto 77 src 10.244.1.2 
10.20.0.1 via 10.244.1.1 dev eth0 table 100 proto 77 src 10.244.1.2 
10.96.0.0/12 via 10.244.1.1 dev eth0 table 100 proto 77 src 10.244.1.2 
10.244.0.0/16 via 10.244.1.1 dev eth0 table 100 proto 77 src 10.244.1.2 
10.244.1.0/24 via 10.244.1.1 dev eth0 table 100 proto static 
10.244.1.1 dev eth0 table 100 proto static scope link 
169.254.0.0/16 via 10.244.1.1 dev eth0 table 100 proto 77 src 10.244.1.2 
default via 10.10.0.254 dev net1 table 101 proto static 
10.10.0.0/24 dev net1 table 101 proto static scope link src 10.10.0.11 
10.10.0.1 via 10.244.1.1 dev eth0 table 101 proto 77 src 10.10.0.11 
10.20.0.1 via 10.244.1.1 dev eth0 table 101 proto 77 src 10.10.0.11 
10.96.0.0/12 via 10.244.1.1 dev eth0 table 101 proto 77 src 10.10.0.11 
10.244.0.0/16 via 10.244.1.1 dev eth0 table 101 proto 77 src 10.10.0.11 
10.244.1.1 dev eth0 table 101 proto 77 scope link src 10.10.0.11 
169.254.0.0/16 via 10.244.1.1 dev eth0 table 101 proto 77 src 10.10.0.11 
default via 10.20.0.254 dev net2 table 102 proto static 
10.10.0.1 via 10.244.1.1 dev eth0 table 102 proto 77 src 10.20.0.12 
10.20.0.0/24 dev net2 table 102 proto static scope link src 10.20.0.12 
10.20.0.1 via 10.244.1.1 dev eth0 table 102 proto 77 src 10.20.0.12 
10.96.0.0/12 via 10.244.1.1 dev eth0 table 102 proto 77 src 10.20.0.12 
10.244.0.0/16 via 10.244.1.1 dev eth0 table 102 proto 77 src 10.20.0.12 
10.244.1.1 dev eth0 table 102 proto 77 scope link src 10.20.0.12 
169.254.0.0/16 via 10.244.1.1 dev eth0 table 102 proto 77 src 10.20.0.12 
192.168.50.0/24 via 10.20.0.254 dev net2 table 102 proto static 
default via 10.10.0.254 dev net1 proto static 
10.10.0.0/24 dev net1 proto kernel scope link src 10.10.0.11 
10.10.0.1 via 10.244.1.1 dev eth0 proto 77 src 10.244.1.2 
10.20.0.0/24 dev net2 proto kernel scope link src 10.20.0.12 
10.20.0.1 via 10.244.1.1 dev eth0 proto 77 src 10.244.1.2 
10.96.0.0/12 via 10.244.1.1 dev eth0 proto 77 src 10.244.1.2 
10.244.0.0/16 via 10.244.1.1 dev eth0 proto 77 src 10.244.1.2 
10.244.1.0/24 via 10.244.1.1 dev eth0 src 10.244.1.2 
10.244.1.1 dev eth0 scope link src 10.244.1.2 
169.254.0.0/16 via 10.244.1.1 dev eth0 proto 77 src 10.244.1.2 
# ip -6 route show table all
fd00:10::1 via fd00:244::1 dev eth0 table 100 proto 77 metric 1024 pref medium
fd00:20::1 via fd00:244::1 dev eth0 table 100 proto 77 metric 1024 pref medium
fd00:96::/108 via fd00:244::1 dev eth0 table 100 proto 77 metric 1024 pref medium
fd00:244::1 dev eth0 table 100 proto static metric 1024 pref medium
fd00:244::/64 via fd00:244::1 dev eth0 table 100 proto static metric 1024 pref medium
default via fd00:244::1 dev eth0 table 100 proto static metric 1024 pref medium
fd00:10::1 via fd00:244::1 dev eth0 table 101 proto 77 metric 1024 pref medium
fd00:10::/64 dev net1 table 101 proto static metric 1024 pref medium
fd00:20::1 via fd00:244::1 dev eth0 table 101 proto 77 metric 1024 pref medium
fd00:96::/108 via fd00:244::1 dev eth0 table 101 proto 77 metric 1024 pref medium
fd00:244::1 dev eth0 table 101 proto 77 metric 1024 pref medium
fd00:244::/64 via fd00:244::1 dev eth0 table 101 proto 77 metric 1024 pref medium
default via fd00:10::fe dev net1 table 101 proto static metric 1024 pref medium
fd00:10::1 via fd00:244::1 dev eth0 table 102 proto 77 metric 1024 pref medium
fd00:20::1 via fd00:244::1 dev eth0 table 102 proto 77 metric 1024 pref medium
fd00:20::/64 dev net2 table 102 proto static metric 1024 pref medium
fd00:96::/108 via fd00:244::1 dev eth0 table 102 proto 77 metric 1024 pref medium
fd00:244::1 dev eth0 table 102 proto 77 metric 1024 pref medium
fd00:244::/64 via fd00:244::1 dev eth0 table 102 proto 77 metric 1024 pref medium
default via fd00:20::fe dev net2 table 102 proto static metric 1024 pref medium
fd00:10::1 via fd00:244::1 dev eth0 proto 77 metric 1024 pref medium
fd00:10::/64 dev net1 proto kernel metric 256 pref medium
fd00:20::1 via fd00:244::1 dev eth0 proto 77 metric 1024 pref medium
fd00:20::/64 dev net2 proto kernel metric 256 pref medium
fd00:96::/108 via fd00:244::1 dev eth0 proto 77 metric 1024 pref medium
fd00:244::1 dev eth0 src fd00:244::2 metric 1024 pref medium
fd00:244::/64 via fd00:244::1 dev eth0 src fd00:244::2 metric 1024 pref medium
default via fd00:10::fe dev net1 proto static metric 1024 pref medium
`

const overlayNodeTables = `# ip -4 rule
0:	from all lookup local
1000:	from all lookup 500
32766:	from all lookup main
32767:	from all lookup default
# ip -6 rule
0:	from all lookup local
1000:	from all lookup 500
32766:	from all lookup main
# ip -4 route show table all
10.10.0.11 dev <ptp-host-veth> table 500 proto 77 scope link 
10.20.0.12 dev <ptp-host-veth> table 500 proto 77 scope link 
10.10.0.0/24 dev uplink0 proto kernel scope link src 10.10.0.1 
10.20.0.0/24 dev uplink1 proto kernel scope link src 10.20.0.1 
10.244.1.2 dev <ptp-host-veth> scope host 
# ip -6 route show table all
fd00:10::11 via <pod-eth0-link-local> dev <ptp-host-veth> table 500 proto 77 metric 1024 pref medium
fd00:20::12 via <pod-eth0-link-local> dev <ptp-host-veth> table 500 proto 77 metric 1024 pref medium
fd00:10::/64 dev uplink0 proto kernel metric 256 pref medium
fd00:20::/64 dev uplink1 proto kernel metric 256 pref medium
fd00:244::1 dev <ptp-host-veth> proto kernel metric 256 pref medium
fd00:244::2 dev <ptp-host-veth> metric 1024 pref medium
`

func TestPrivilegedUnderlayOnly(t *testing.T) {
	for _, cniVersion := range []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(cniVersion, func(t *testing.T) { testUnderlayOnly(t, cniVersion) })
	}
}

func testUnderlayOnly(t *testing.T, cniVersion string) {
	l := newLab(t)
	eth0 := l.conflist("underlay-a", cniVersion,
		macvlan("uplink0", []string{"10.10.0.21/24", "fd00:10::21/64"}, []string{"10.10.0.254", "fd00:10::fe"}, "0.0.0.0/0", "::/0"),
		l.coordinator(map[string]any{"vethLinkAddress": "169.254.200.1"}))
	net1 := l.conflist("underlay-b", cniVersion,
		macvlan("uplink1", []string{"10.20.0.22/24", "fd00:20::22/64"}, []string{"10.20.0.254", "fd00:20::fe"}, "0.0.0.0/0", "::/0"),
		l.coordinator(map[string]any{"podMACPrefix": "0a:1b", "txQueueLen": 2000}))
	l.mustAdd(eth0, "eth0")
	l.mustAdd(net1, "net1")

	podTables := tables(t, l.pod)
	nodeTables := tables(t, l.node)
	if cniVersion == "1.1.0" {
		dump(t, "underlay: eth0, net1 (macvlan) -- pod", podTables)
		dump(t, "underlay: eth0, net1 (macvlan) -- node", nodeTables)
	}
	wantNode := strings.ReplaceAll(underlayNodeTables, "<host-veth>", coordinator.HostVethName("lab-container-1"))
	if podTables != underlayPodTables {
		t.Errorf("pod tables after ADD:\n%s\nwant:\n%s", podTables, underlayPodTables)
	}
	if nodeTables != wantNode {
		t.Errorf("node tables after ADD:\n%s\nwant:\n%s", nodeTables, wantNode)
	}

	// The pod reaches its node through veth0 (macvlan cannot reach its
	// parent), and the node reaches the pod's underlay addresses.
	if got := sh(t, l.pod, "ip", "route", "get", "10.10.0.1"); !strings.Contains(got, "dev veth0") {
		t.Errorf("route to the node: %s, want dev veth0", got)
	}
	for _, args := range [][]string{{"10.10.0.1"}, {"fd00:10::1"}, {"-I", "10.20.0.22", "10.20.0.1"}, {"10.10.0.254"}, {"-I", "10.20.0.22", "10.20.0.254"}} {
		if err := ping(l.pod, args...); err != nil {
			t.Errorf("pod: %v", err)
		}
	}
	for _, dst := range []string{"10.10.0.21", "10.20.0.22", "fd00:10::21", "fd00:20::22"} {
		if err := ping(l.node, dst); err != nil {
			t.Errorf("node to pod: %v", err)
		}
	}
	// podMACPrefix and txQueueLen on net1.
	link := sh(t, l.pod, "ip", "-o", "link", "show", "net1")
	if !strings.Contains(link, "link/ether 0a:1b:0a:14:00:16") || !strings.Contains(link, "qlen 2000") {
		t.Errorf("net1: %s, want MAC 0a:1b:0a:14:00:16 and qlen 2000", link)
	}
	if got := sh(t, l.pod, "ip", "-4", "-o", "addr", "show", "dev", "veth0"); !strings.Contains(got, "169.254.200.1/32") {
		t.Errorf("veth0 addresses: %s, want vethLinkAddress 169.254.200.1/32", got)
	}

	if cniVersion != "0.3.1" {
		if err := l.check(eth0, "eth0"); err != nil {
			t.Errorf("CHECK eth0: %v", err)
		}
		if err := l.check(net1, "net1"); err != nil {
			t.Errorf("CHECK net1: %v", err)
		}
		hostVeth := coordinator.HostVethName("lab-container-1")
		sh(t, l.node, "ip", "route", "del", "10.20.0.22", "dev", hostVeth, "table", "500")
		if err := l.check(net1, "net1"); err == nil || !strings.Contains(err.Error(), "10.20.0.22/32 dev "+hostVeth+" table 500") {
			t.Errorf("CHECK net1 without its node route: got %v, want an error naming the route", err)
		}
	}

	for _, c := range []struct {
		list   *libcni.NetworkConfigList
		ifName string
	}{{net1, "net1"}, {eth0, "eth0"}, {eth0, "eth0"}} {
		if err := l.del(c.list, c.ifName); err != nil {
			t.Fatalf("DEL %s: %v\n%s", c.ifName, err, l.log())
		}
	}
	if got := sh(t, l.node, "ip", "-o", "link", "show", "type", "veth"); strings.Contains(got, coordinator.HostVethName("lab-container-1")) {
		t.Errorf("host veth still present after DEL: %s", got)
	}
	for _, fam := range []string{"-4", "-6"} {
		if got := sh(t, l.node, "ip", fam, "route", "show", "table", "500"); got != "" {
			t.Errorf("node table 500 (%s) after DEL: %q, want empty", fam, got)
		}
		if got := sh(t, l.node, "ip", fam, "rule"); strings.Contains(got, "lookup 500") {
			t.Errorf("node rules after DEL still look up table 500:\n%s", got)
		}
	}
}

func TestPrivilegedIPConflictAndGatewayDetection(t *testing.T) {
	detect := map[string]any{"detectIPConflict": true, "detectGateway": true}
	for _, tc := range []struct {
		name     string
		lanAddr  string
		addrs    []string
		gws      []string
		wantCode uint
		wantMsg  string
	}{
		{name: "ipv4 conflict", lanAddr: "10.10.0.31/24", addrs: []string{"10.10.0.31/24"}, gws: []string{"10.10.0.254"},
			wantCode: coordinator.ErrCodeIPConflict, wantMsg: "IP address 10.10.0.31 is already used by <lan0>"},
		{name: "ipv6 conflict", lanAddr: "fd00:10::33/64", addrs: []string{"10.10.0.33/24", "fd00:10::33/64"}, gws: []string{"10.10.0.254", "fd00:10::fe"},
			wantCode: coordinator.ErrCodeIPConflict, wantMsg: "IP address fd00:10::33 is already used by <lan0>"},
		{name: "gateway unreachable", addrs: []string{"10.10.0.34/24"}, gws: []string{"10.10.0.253"},
			wantCode: coordinator.ErrCodeGatewayUnreachable, wantMsg: "gateway 10.10.0.253 is unreachable from eth0"},
		{name: "free address, reachable gateways", addrs: []string{"10.10.0.35/24", "fd00:10::35/64"}, gws: []string{"10.10.0.254", "fd00:10::fe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			if tc.lanAddr != "" {
				sh(t, l.lan, "ip", "addr", "add", tc.lanAddr, "dev", "lan0", "nodad")
			}
			list := l.conflist("underlay-a", "1.1.0", macvlan("uplink0", tc.addrs, tc.gws, "0.0.0.0/0"), l.coordinator(detect))
			err := l.add(list, "eth0")
			defer func() {
				if err := l.del(list, "eth0"); err != nil {
					t.Errorf("DEL: %v", err)
				}
			}()
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("ADD: %v", err)
				}
				return
			}
			var cniErr *types.Error
			if !errors.As(err, &cniErr) {
				t.Fatalf("ADD: got %v, want a CNI error with code %d", err, tc.wantCode)
			}
			dump(t, "detection: "+tc.name, cniErr.Error())
			want := strings.ReplaceAll(tc.wantMsg, "<lan0>", l.lanMAC["lan0"])
			if cniErr.Code != tc.wantCode || !strings.Contains(cniErr.Msg, want) {
				t.Errorf("ADD: got code %d %q, want code %d and %q", cniErr.Code, cniErr.Msg, tc.wantCode, want)
			}
		})
	}
}

func TestPrivilegedGratuitousAnnouncementsUpdatePeers(t *testing.T) {
	l := newLab(t)
	// macvlan alone first: the kernel announces the address when macvlan
	// brings the link up (arp_notify), so the stale entries are planted
	// after it and only the coordinator's announcements can fix them.
	list := l.conflist("underlay-a", "1.1.0",
		macvlan("uplink0", []string{"10.10.0.41/24", "fd00:10::41/64"}, []string{"10.10.0.254", "fd00:10::fe"}, "0.0.0.0/0"))
	l.mustAdd(list, "eth0")
	defer func() {
		if err := l.execCoordinator("DEL", list, l.coordinator(nil), "eth0"); err != nil {
			t.Errorf("coordinator DEL: %v", err)
		}
		_ = l.del(list, "eth0")
	}()
	stale := "02:00:00:00:00:99"
	sh(t, l.lan, "ip", "neigh", "replace", "10.10.0.41", "lladdr", stale, "nud", "stale", "dev", "lan0")
	sh(t, l.lan, "ip", "-6", "neigh", "replace", "fd00:10::41", "lladdr", stale, "nud", "stale", "dev", "lan0")
	if err := l.execCoordinator("ADD", list, l.coordinator(nil), "eth0"); err != nil {
		t.Fatalf("coordinator ADD: %v\n%s", err, l.log())
	}
	podMAC := linkMAC(t, l.pod, "eth0")
	for _, ip := range []string{"10.10.0.41", "fd00:10::41"} {
		var got string
		// The announcement is sent before ADD returns; allow the peer's
		// kernel a moment to process it.
		for range 20 {
			got = sh(t, l.lan, "ip", "neigh", "show", ip, "dev", "lan0")
			if strings.Contains(got, podMAC) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(got, podMAC) {
			t.Errorf("peer's neighbour entry for %s: %q, want the pod's MAC %s", ip, got, podMAC)
		}
	}
}

const underlayPodTables = `# ip -4 rule
0:	from all lookup local
100:	from 10.10.0.21 lookup 100
101:	from 10.20.0.22 lookup 101
32766:	from all lookup main
32767:	from all lookup default
# ip -6 rule
0:	from all lookup local
100:	from fd00:10::21 lookup 100
101:	from fd00:20::22 lookup 101
32766:	from all lookup main
# ip -4 route show table all
default via 10.10.0.254 dev eth0 table 100 proto static 
10.10.0.0/24 dev eth0 table 100 proto static scope link src 10.10.0.21 
10.10.0.1 dev veth0 table 100 proto 77 scope link src 10.10.0.21 
10.20.0.1 dev veth0 table 100 proto 77 scope link src 10.10.0.21 
10.96.0.0/12 via 10.10.0.1 dev veth0 table 100 proto 77 src 10.10.0.21 
10.244.0.0/16 via 10.10.0.1 dev veth0 table 100 proto 77 src 10.10.0.21 
169.254.0.0/16 via 10.10.0.1 dev veth0 table 100 proto 77 src 10.10.0.21 
default via 10.20.0.254 dev net1 table 101 proto static 
10.10.0.1 dev veth0 table 101 proto 77 scope link src 10.20.0.22 
10.20.0.0/24 dev net1 table 101 proto static scope link src 10.20.0.22 
10.20.0.1 dev veth0 table 101 proto 77 scope link src 10.20.0.22 
10.96.0.0/12 via 10.10.0.1 dev veth0 table 101 proto 77 src 10.20.0.22 
10.244.0.0/16 via 10.10.0.1 dev veth0 table 101 proto 77 src 10.20.0.22 
169.254.0.0/16 via 10.10.0.1 dev veth0 table 101 proto 77 src 10.20.0.22 
default via 10.10.0.254 dev eth0 proto static 
10.10.0.0/24 dev eth0 proto kernel scope link src 10.10.0.21 
10.10.0.1 dev veth0 proto 77 scope link src 10.10.0.21 
10.20.0.0/24 dev net1 proto kernel scope link src 10.20.0.22 
10.20.0.1 dev veth0 proto 77 scope link src 10.10.0.21 
10.96.0.0/12 via 10.10.0.1 dev veth0 proto 77 src 10.10.0.21 
10.244.0.0/16 via 10.10.0.1 dev veth0 proto 77 src 10.10.0.21 
169.254.0.0/16 via 10.10.0.1 dev veth0 proto 77 src 10.10.0.21 
# ip -6 route show table all
fd00:10::1 via fe80::1 dev veth0 table 100 proto 77 metric 1024 pref medium
fd00:10::/64 dev eth0 table 100 proto static metric 1024 pref medium
fd00:20::1 via fe80::1 dev veth0 table 100 proto 77 metric 1024 pref medium
fd00:96::/108 via fe80::1 dev veth0 table 100 proto 77 metric 1024 pref medium
fd00:244::/64 via fe80::1 dev veth0 table 100 proto 77 metric 1024 pref medium
default via fd00:10::fe dev eth0 table 100 proto static metric 1024 pref medium
fd00:10::1 via fe80::1 dev veth0 table 101 proto 77 metric 1024 pref medium
fd00:20::1 via fe80::1 dev veth0 table 101 proto 77 metric 1024 pref medium
fd00:20::/64 dev net1 table 101 proto static metric 1024 pref medium
fd00:96::/108 via fe80::1 dev veth0 table 101 proto 77 metric 1024 pref medium
fd00:244::/64 via fe80::1 dev veth0 table 101 proto 77 metric 1024 pref medium
default via fd00:20::fe dev net1 table 101 proto static metric 1024 pref medium
fd00:10::1 via fe80::1 dev veth0 proto 77 metric 1024 pref medium
fd00:10::/64 dev eth0 proto kernel metric 256 pref medium
fd00:20::1 via fe80::1 dev veth0 proto 77 metric 1024 pref medium
fd00:20::/64 dev net1 proto kernel metric 256 pref medium
fd00:96::/108 via fe80::1 dev veth0 proto 77 metric 1024 pref medium
fd00:244::/64 via fe80::1 dev veth0 proto 77 metric 1024 pref medium
default via fd00:10::fe dev eth0 proto static metric 1024 pref medium
`

const underlayNodeTables = `# ip -4 rule
0:	from all lookup local
1000:	from all lookup 500
32766:	from all lookup main
32767:	from all lookup default
# ip -6 rule
0:	from all lookup local
1000:	from all lookup 500
32766:	from all lookup main
# ip -4 route show table all
10.10.0.21 dev <host-veth> table 500 proto 77 scope link 
10.20.0.22 dev <host-veth> table 500 proto 77 scope link 
10.10.0.0/24 dev uplink0 proto kernel scope link src 10.10.0.1 
10.20.0.0/24 dev uplink1 proto kernel scope link src 10.20.0.1 
# ip -6 route show table all
fd00:10::21 via fe80::2 dev <host-veth> table 500 proto 77 metric 1024 pref medium
fd00:20::22 via fe80::2 dev <host-veth> table 500 proto 77 metric 1024 pref medium
fd00:10::/64 dev uplink0 proto kernel metric 256 pref medium
fd00:20::/64 dev uplink1 proto kernel metric 256 pref medium
`

func TestPrivilegedGCRemovesTheNodeRuleOfAnEmptyTable(t *testing.T) {
	l := newLab(t)
	conf := l.coordinator(nil)
	conf["name"], conf["cniVersion"] = "underlay-a", "1.1.0"
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	gc := func() {
		t.Helper()
		err := l.inNode(func() error {
			return invoke.ExecPluginWithoutResult(context.Background(), filepath.Join(binDir, "coordinator"), stdin,
				&invoke.Args{Command: "GC", Path: binDir}, nil)
		})
		if err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	// A pod's route left in table 500 keeps the rule.
	sh(t, l.node, "ip", "rule", "add", "lookup", "500", "pref", "1000")
	sh(t, l.node, "ip", "route", "add", "10.10.0.99", "dev", "uplink0", "table", "500")
	gc()
	if got := sh(t, l.node, "ip", "rule"); !strings.Contains(got, "lookup 500") {
		t.Errorf("GC removed the rule of a table in use:\n%s", got)
	}
	sh(t, l.node, "ip", "route", "del", "10.10.0.99", "dev", "uplink0", "table", "500")
	gc()
	if got := sh(t, l.node, "ip", "rule"); strings.Contains(got, "lookup 500") {
		t.Errorf("GC left the rule of an empty table:\n%s", got)
	}
}
