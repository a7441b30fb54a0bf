package routing

import "net"

// PodFacts is what the pod namespace looks like right now.
type PodFacts struct {
	Links []PodLink
	// Routes holds the unicast routes of every table but "local", with their
	// table and protocol.
	Routes []Route
	Rules  []Rule
}

// Link returns the link named name, or nil.
func (f *PodFacts) Link(name string) *PodLink {
	for i := range f.Links {
		if f.Links[i].Name == name {
			return &f.Links[i]
		}
	}
	return nil
}

// PodLink is one link in the pod namespace (loopback excluded).
type PodLink struct {
	Name  string
	Index int
	// Kind is the netlink link type: "veth", "macvlan", "bridge"...
	Kind string
	MAC  net.HardwareAddr
	MTU  int
	// PeerIndex is, for a veth, the ifindex of its peer (in the peer's
	// namespace).
	PeerIndex int
	// Addrs are the global-scope addresses.
	Addrs []*net.IPNet
	// LinkLocal are the IPv6 link-local addresses.
	LinkLocal []net.IP
}

// HostFacts is what the node namespace (where the plugin runs) looks like.
type HostFacts struct {
	// Addrs are the node's global-scope addresses, loopback ranges
	// excluded, each once.
	Addrs []HostAddr
	// Veths are the node's veth links that were asked for (InspectHost).
	Veths []HostLink
}

// HostAddr is one node address.
type HostAddr struct {
	// LinkIndex is the (first) link that carries the address.
	LinkIndex int
	Addr      *net.IPNet
}

// HostLink is one veth link of the node.
type HostLink struct {
	Name      string
	Index     int
	PeerIndex int
}
