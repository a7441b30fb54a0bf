package routing

import (
	"encoding/binary"
	"errors"
	"net"
)

// Frame building and parsing for ARP and NDP, pure so it is unit-tested.

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	arpRequest = 1
	arpReply   = 2

	icmpv6NeighborSolicitation  = 135
	icmpv6NeighborAdvertisement = 136
	protoICMPv6                 = 58

	naFlagSolicited = 0x40
	naFlagOverride  = 0x20
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func ethernet(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	copy(b[14:], payload)
	return b
}

// arpFrame builds an Ethernet ARP frame.
func arpFrame(op uint16, dst, sha net.HardwareAddr, spa net.IP, tha net.HardwareAddr, tpa net.IP) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:4], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], op)
	copy(p[8:14], sha)
	copy(p[14:18], ip4OrZero(spa))
	copy(p[18:24], tha)
	copy(p[24:28], ip4OrZero(tpa))
	return ethernet(dst, sha, etherTypeARP, p)
}

func ip4OrZero(ip net.IP) net.IP {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4
	}
	return net.IPv4zero.To4()
}

// GratuitousARP is a broadcast ARP request whose sender and target are ip.
func GratuitousARP(mac net.HardwareAddr, ip net.IP) []byte {
	return arpFrame(arpRequest, broadcastMAC, mac, ip, make(net.HardwareAddr, 6), ip)
}

// ARPProbe asks who has ip without claiming any address (sender 0.0.0.0).
func ARPProbe(mac net.HardwareAddr, ip net.IP) []byte {
	return arpFrame(arpRequest, broadcastMAC, mac, net.IPv4zero, make(net.HardwareAddr, 6), ip)
}

// ARPRequest asks who has target, from src.
func ARPRequest(mac net.HardwareAddr, src, target net.IP) []byte {
	return arpFrame(arpRequest, broadcastMAC, mac, src, make(net.HardwareAddr, 6), target)
}

// arpPacket is the part of an ARP frame the probes look at.
type arpPacket struct {
	Op       uint16
	SenderHW net.HardwareAddr
	SenderIP net.IP
	TargetIP net.IP
}

func parseARP(frame []byte) (arpPacket, error) {
	if len(frame) < 14+28 || binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return arpPacket{}, errors.New("not an ARP frame")
	}
	p := frame[14:]
	if binary.BigEndian.Uint16(p[2:4]) != 0x0800 || p[4] != 6 || p[5] != 4 {
		return arpPacket{}, errors.New("not an Ethernet/IPv4 ARP packet")
	}
	return arpPacket{
		Op:       binary.BigEndian.Uint16(p[6:8]),
		SenderHW: net.HardwareAddr(append([]byte(nil), p[8:14]...)),
		SenderIP: net.IP(append([]byte(nil), p[14:18]...)),
		TargetIP: net.IP(append([]byte(nil), p[24:28]...)),
	}, nil
}

// solicitedNode returns the solicited-node multicast address of ip.
func solicitedNode(ip net.IP) net.IP {
	ip16 := ip.To16()
	return net.IP{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, ip16[13], ip16[14], ip16[15]}
}

// multicastMAC maps an IPv6 multicast address to its Ethernet address.
func multicastMAC(ip net.IP) net.HardwareAddr {
	ip16 := ip.To16()
	return net.HardwareAddr{0x33, 0x33, ip16[12], ip16[13], ip16[14], ip16[15]}
}

func ipv6Frame(dstMAC, srcMAC net.HardwareAddr, src, dst net.IP, icmp []byte) []byte {
	binary.BigEndian.PutUint16(icmp[2:4], 0)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))
	h := make([]byte, 40+len(icmp))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(icmp)))
	h[6] = protoICMPv6
	h[7] = 255
	copy(h[8:24], src.To16())
	copy(h[24:40], dst.To16())
	copy(h[40:], icmp)
	return ethernet(dstMAC, srcMAC, etherTypeIPv6, h)
}

func icmpv6Checksum(src, dst net.IP, icmp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i : i+2]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.To16())
	add(dst.To16())
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(icmp)))
	l[7] = protoICMPv6
	add(l[:])
	add(icmp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// NeighborSolicitation asks for target. With a nil src it is a duplicate
// address detection probe (source ::, no link-layer option).
func NeighborSolicitation(mac net.HardwareAddr, src, target net.IP) []byte {
	icmp := make([]byte, 24, 32)
	icmp[0] = icmpv6NeighborSolicitation
	copy(icmp[8:24], target.To16())
	if src == nil {
		src = net.IPv6unspecified
	} else {
		icmp = append(icmp, 1, 1)
		icmp = append(icmp, mac...)
	}
	dst := solicitedNode(target)
	return ipv6Frame(multicastMAC(dst), mac, src, dst, icmp)
}

// UnsolicitedNA announces that ip is at mac to all nodes, overriding cached
// entries.
func UnsolicitedNA(mac net.HardwareAddr, ip net.IP) []byte {
	icmp := make([]byte, 24, 32)
	icmp[0] = icmpv6NeighborAdvertisement
	icmp[4] = naFlagOverride
	copy(icmp[8:24], ip.To16())
	icmp = append(icmp, 2, 1)
	icmp = append(icmp, mac...)
	allNodes := net.ParseIP("ff02::1")
	return ipv6Frame(multicastMAC(allNodes), mac, ip, allNodes, icmp)
}

// ndpPacket is the part of a neighbour solicitation/advertisement the
// probes look at.
type ndpPacket struct {
	Type      uint8
	SrcMAC    net.HardwareAddr
	SrcIP     net.IP
	Target    net.IP
	LinkLayer net.HardwareAddr
}

func parseNDP(frame []byte) (ndpPacket, error) {
	if len(frame) < 14+40+24 || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 {
		return ndpPacket{}, errors.New("not an IPv6 frame")
	}
	h := frame[14:]
	if h[6] != protoICMPv6 {
		return ndpPacket{}, errors.New("not ICMPv6")
	}
	icmp := h[40:]
	if icmp[0] != icmpv6NeighborSolicitation && icmp[0] != icmpv6NeighborAdvertisement {
		return ndpPacket{}, errors.New("not a neighbour discovery message")
	}
	p := ndpPacket{
		Type:   icmp[0],
		SrcMAC: net.HardwareAddr(append([]byte(nil), frame[6:12]...)),
		SrcIP:  net.IP(append([]byte(nil), h[8:24]...)),
		Target: net.IP(append([]byte(nil), icmp[8:24]...)),
	}
	for opts := icmp[24:]; len(opts) >= 8; {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			break
		}
		if (opts[0] == 1 || opts[0] == 2) && l >= 8 {
			p.LinkLayer = net.HardwareAddr(append([]byte(nil), opts[2:8]...))
		}
		opts = opts[l:]
	}
	if p.LinkLayer == nil {
		p.LinkLayer = p.SrcMAC
	}
	return p, nil
}
