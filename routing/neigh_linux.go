package routing

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ConflictError says that an address the pod is about to use answers from
// another machine.
type ConflictError struct {
	IP  net.IP
	MAC net.HardwareAddr
	Dev string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("IP address %s is already used by %s (probed on %s)", e.IP, e.MAC, e.Dev)
}

// GatewayUnreachableError says that a gateway did not answer ARP or NDP.
type GatewayUnreachableError struct {
	Gateway net.IP
	Dev     string
	Tries   int
}

func (e *GatewayUnreachableError) Error() string {
	return fmt.Sprintf("gateway %s is unreachable from %s: no answer to %d neighbour requests", e.Gateway, e.Dev, e.Tries)
}

// ProbeOptions tune the probes: each probe sends up to Attempts requests and
// waits Interval for an answer after each.
type ProbeOptions struct {
	Attempts int
	Interval time.Duration
}

// DefaultProbeOptions answer within about a second on a quiet network.
var DefaultProbeOptions = ProbeOptions{Attempts: 3, Interval: 300 * time.Millisecond}

// RunProbes runs the probes in the pod namespace. The first failing probe
// returns a *ConflictError or *GatewayUnreachableError.
func RunProbes(netnsPath string, probes []Probe, opt ProbeOptions) error {
	if len(probes) == 0 {
		return nil
	}
	if opt.Attempts <= 0 {
		opt = DefaultProbeOptions
	}
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, p := range probes {
			if err := runProbe(p, opt); err != nil {
				return err
			}
		}
		return nil
	})
}

// Announce sends a gratuitous ARP or an unsolicited neighbour advertisement
// for each announcement, from the pod namespace, so that peers replace any
// cached entry for the address.
func Announce(netnsPath string, anns []Announcement) error {
	if len(anns) == 0 {
		return nil
	}
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, a := range anns {
			l, err := netlink.LinkByName(a.Dev)
			if err != nil {
				return fmt.Errorf("failed to find link %q: %w", a.Dev, err)
			}
			mac := l.Attrs().HardwareAddr
			proto, frame := uint16(etherTypeARP), GratuitousARP(mac, a.IP)
			if a.IP.To4() == nil {
				proto, frame = etherTypeIPv6, UnsolicitedNA(mac, a.IP)
			}
			s, err := openPacketSocket(l.Attrs().Index, proto)
			if err != nil {
				return err
			}
			err = s.send(frame)
			s.close()
			if err != nil {
				return fmt.Errorf("failed to announce %s on %q: %w", a.IP, a.Dev, err)
			}
		}
		return nil
	})
}

func runProbe(p Probe, opt ProbeOptions) error {
	l, err := netlink.LinkByName(p.Dev)
	if err != nil {
		return fmt.Errorf("failed to find link %q: %w", p.Dev, err)
	}
	mac := l.Attrs().HardwareAddr
	v4 := p.IP.To4() != nil
	var (
		proto uint16
		frame []byte
		match func([]byte) (net.HardwareAddr, bool)
	)
	switch {
	case v4 && p.Kind == ProbeConflict:
		proto, frame = etherTypeARP, ARPProbe(mac, p.IP)
		match = func(b []byte) (net.HardwareAddr, bool) {
			a, err := parseARP(b)
			ok := err == nil && a.SenderIP.Equal(p.IP) && !bytes.Equal(a.SenderHW, mac)
			return a.SenderHW, ok
		}
	case v4:
		proto, frame = etherTypeARP, ARPRequest(mac, p.Src, p.IP)
		match = func(b []byte) (net.HardwareAddr, bool) {
			a, err := parseARP(b)
			return a.SenderHW, err == nil && a.Op == arpReply && a.SenderIP.Equal(p.IP)
		}
	case p.Kind == ProbeConflict:
		proto, frame = etherTypeIPv6, NeighborSolicitation(mac, nil, p.IP)
		match = func(b []byte) (net.HardwareAddr, bool) {
			n, err := parseNDP(b)
			ok := err == nil && n.Type == icmpv6NeighborAdvertisement && n.Target.Equal(p.IP) &&
				!bytes.Equal(n.LinkLayer, mac)
			return n.LinkLayer, ok
		}
	default:
		proto, frame = etherTypeIPv6, NeighborSolicitation(mac, p.Src, p.IP)
		match = func(b []byte) (net.HardwareAddr, bool) {
			n, err := parseNDP(b)
			return n.LinkLayer, err == nil && n.Type == icmpv6NeighborAdvertisement && n.Target.Equal(p.IP)
		}
	}
	s, err := openPacketSocket(l.Attrs().Index, proto)
	if err != nil {
		return err
	}
	defer s.close()
	buf := make([]byte, 1600)
	for range opt.Attempts {
		if err := s.send(frame); err != nil {
			return fmt.Errorf("failed to send probe for %s on %q: %w", p.IP, p.Dev, err)
		}
		deadline := time.Now().Add(opt.Interval)
		for {
			n, err := s.recv(buf, time.Until(deadline))
			if errors.Is(err, errTimeout) {
				break
			}
			if err != nil {
				return fmt.Errorf("failed to read probe answers on %q: %w", p.Dev, err)
			}
			if owner, ok := match(buf[:n]); ok {
				if p.Kind == ProbeConflict {
					return &ConflictError{IP: p.IP, MAC: owner, Dev: p.Dev}
				}
				return nil
			}
		}
	}
	if p.Kind == ProbeGateway {
		return &GatewayUnreachableError{Gateway: p.IP, Dev: p.Dev, Tries: opt.Attempts}
	}
	return nil
}

var errTimeout = errors.New("timeout")

type packetSocket struct {
	fd    int
	index int
	proto uint16
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPacketSocket(index int, proto uint16) (*packetSocket, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
	if err != nil {
		return nil, fmt.Errorf("failed to open packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("failed to bind packet socket to ifindex %d: %w", index, err)
	}
	return &packetSocket{fd: fd, index: index, proto: proto}, nil
}

func (s *packetSocket) close() { unix.Close(s.fd) }

func (s *packetSocket) send(frame []byte) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(s.proto), Ifindex: s.index, Halen: 6}
	copy(to.Addr[:], frame[0:6])
	for {
		err := unix.Sendto(s.fd, frame, 0, to)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// recv returns the next frame received (not sent) on the link, or
// errTimeout once wait has passed.
func (s *packetSocket) recv(buf []byte, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, errTimeout
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, fmt.Errorf("failed to set receive timeout: %w", err)
		}
		n, from, err := unix.Recvfrom(s.fd, buf, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EWOULDBLOCK):
			return 0, errTimeout
		case err != nil:
			return 0, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return n, nil
	}
}
