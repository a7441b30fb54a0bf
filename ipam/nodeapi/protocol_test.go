package nodeapi

import (
	"testing"
)

func FuzzConflictReportValidate(f *testing.F) {
	f.Add("ns", "p", "net1", "u1", "", "10.0.0.1")
	f.Add("ns", "p", "net1", "", "c1", "fd00::1")
	f.Add("", "p", "eth0", "u1", "c1", "::ffff:10.0.0.1")
	f.Add("ns", "p", "eth0", "u1", "c1", "10.0.0.1/24")
	f.Fuzz(func(t *testing.T, ns, name, ifName, uid, containerID, address string) {
		rep := &ConflictReport{PodNamespace: ns, PodName: name, IfName: ifName, PodUID: uid, ContainerID: containerID, Address: address}
		addr, err := rep.Validate()
		if err != nil {
			return
		}
		if ns == "" || name == "" || ifName == "" || (uid == "" && containerID == "") || !addr.IsValid() || addr.Is4In6() {
			t.Fatalf("accepted %+v as %v", rep, addr)
		}
	})
}
