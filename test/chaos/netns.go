package main

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/spindle-net/spindle/test/lab/forward"
)

// readAddrs returns the global addresses configured on the named interfaces
// inside the network namespace at path (interfaces that do not exist are
// skipped).
func readAddrs(path string, ifNames []string) ([]AddrOn, error) {
	var out []AddrOn
	err := forward.InNetns(path, func() error {
		for _, name := range ifNames {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				continue // not there (a single-NIC pod has no net2)
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				return fmt.Errorf("failed to read addresses of %s in %q: %w", name, path, err)
			}
			for _, a := range addrs {
				ipn, ok := a.(*net.IPNet)
				if !ok {
					continue
				}
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap().IsGlobalUnicast() {
					out = append(out, AddrOn{If: name, Addr: ip.Unmap()})
				}
			}
		}
		return nil
	})
	return out, err
}
