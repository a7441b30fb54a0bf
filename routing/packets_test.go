package routing

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}

func TestARPFrames(t *testing.T) {
	ip := net.ParseIP("10.6.0.5")
	for _, tc := range []struct {
		name     string
		frame    []byte
		senderIP string
	}{
		{"gratuitous", GratuitousARP(testMAC, ip), "10.6.0.5"},
		{"probe", ARPProbe(testMAC, ip), "0.0.0.0"},
		{"request", ARPRequest(testMAC, net.ParseIP("10.6.0.9"), ip), "10.6.0.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.frame
			if len(f) != 42 || !bytes.Equal(f[0:6], broadcastMAC) || !bytes.Equal(f[6:12], testMAC) || binary.BigEndian.Uint16(f[12:14]) != 0x0806 {
				t.Fatalf("bad Ethernet header % x", f[:14])
			}
			a, err := parseARP(f)
			if err != nil {
				t.Fatal(err)
			}
			if a.Op != arpRequest || !bytes.Equal(a.SenderHW, testMAC) || a.SenderIP.String() != tc.senderIP || !a.TargetIP.Equal(ip) {
				t.Errorf("parsed %+v", a)
			}
		})
	}
}

// checksumOK verifies the ICMPv6 checksum of an Ethernet/IPv6 frame.
func checksumOK(frame []byte) bool {
	h := frame[14:]
	src, dst := net.IP(h[8:24]), net.IP(h[24:40])
	icmp := append([]byte(nil), h[40:]...)
	sum := binary.BigEndian.Uint16(icmp[2:4])
	icmp[2], icmp[3] = 0, 0
	return icmpv6Checksum(src, dst, icmp) == sum
}

func TestNDPFrames(t *testing.T) {
	ip := net.ParseIP("fd00:10::21")
	t.Run("DAD solicitation", func(t *testing.T) {
		f := NeighborSolicitation(testMAC, nil, ip)
		if !bytes.Equal(f[0:6], net.HardwareAddr{0x33, 0x33, 0xff, 0x00, 0x00, 0x21}) {
			t.Errorf("destination MAC % x, want the solicited-node group's", f[0:6])
		}
		n, err := parseNDP(f)
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != icmpv6NeighborSolicitation || !n.SrcIP.Equal(net.IPv6unspecified) || !n.Target.Equal(ip) {
			t.Errorf("parsed %+v", n)
		}
		if len(f) != 14+40+24 {
			t.Errorf("DAD probe carries a link-layer option: %d bytes", len(f))
		}
		if !checksumOK(f) || f[14+7] != 255 {
			t.Error("bad checksum or hop limit")
		}
	})
	t.Run("solicitation with source", func(t *testing.T) {
		f := NeighborSolicitation(testMAC, net.ParseIP("fd00:10::5"), net.ParseIP("fd00:10::fe"))
		n, err := parseNDP(f)
		if err != nil || !bytes.Equal(n.LinkLayer, testMAC) || !checksumOK(f) {
			t.Errorf("parsed %+v, %v", n, err)
		}
		if got := net.IP(f[14+24 : 14+40]).String(); got != "ff02::1:ff00:fe" {
			t.Errorf("destination %s", got)
		}
	})
	t.Run("unsolicited advertisement", func(t *testing.T) {
		f := UnsolicitedNA(testMAC, ip)
		n, err := parseNDP(f)
		if err != nil {
			t.Fatal(err)
		}
		icmp := f[14+40:]
		if n.Type != icmpv6NeighborAdvertisement || icmp[4] != naFlagOverride || !n.Target.Equal(ip) || !bytes.Equal(n.LinkLayer, testMAC) {
			t.Errorf("parsed %+v flags %#x", n, icmp[4])
		}
		if !checksumOK(f) || !bytes.Equal(f[0:6], net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}) {
			t.Error("bad checksum or destination")
		}
	})
}

// A known ICMPv6 checksum: an echo request from ::1 to ::1 with identifier
// 0x1234 and sequence 1 (computed independently with a separate implementation of RFC 1071).
func TestICMPv6ChecksumKnownValue(t *testing.T) {
	icmp := []byte{128, 0, 0, 0, 0x12, 0x34, 0x00, 0x01}
	if got := icmpv6Checksum(net.IPv6loopback, net.IPv6loopback, icmp); got != 0x6d86 {
		t.Errorf("checksum %#04x, want 0x6d86", got)
	}
}

func FuzzParseFrames(f *testing.F) {
	f.Add(GratuitousARP(testMAC, net.ParseIP("10.0.0.1")))
	f.Add(UnsolicitedNA(testMAC, net.ParseIP("fd00::1")))
	f.Add(NeighborSolicitation(testMAC, net.ParseIP("fd00::2"), net.ParseIP("fd00::1")))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := parseARP(b); err == nil && (len(a.SenderHW) != 6 || len(a.SenderIP) != 4) {
			t.Fatalf("parseARP returned %+v", a)
		}
		if n, err := parseNDP(b); err == nil && (len(n.Target) != 16 || len(n.LinkLayer) != 6) {
			t.Fatalf("parseNDP returned %+v", n)
		}
	})
}
