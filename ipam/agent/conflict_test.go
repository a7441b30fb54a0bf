package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func TestConflictClaimMatchesHolder(t *testing.T) {
	claim := func(addr, ifName, uid, containerID string) *v2beta1.SpiderIPClaim {
		return &v2beta1.SpiderIPClaim{Spec: v2beta1.IPClaimSpec{Address: addr, Interface: ifName, PodUID: uid, ContainerID: containerID}}
	}
	claims := []*v2beta1.SpiderIPClaim{
		claim("10.0.0.5", "eth0", "u1", "c1"),
		claim("10.0.0.6", "net1", "u1", "c1"),
		claim("fd00::6", "net1", "u1", "c1"),
	}
	for _, tc := range []struct {
		name string
		rep  nodeapi.ConflictReport
		want string
	}{
		{"address of the interface", nodeapi.ConflictReport{IfName: "net1", PodUID: "u1", Address: "10.0.0.6"}, "10.0.0.6"},
		{"IPv6 in another notation", nodeapi.ConflictReport{IfName: "net1", PodUID: "u1", Address: "fd00:0::6"}, "fd00::6"},
		{"other interface", nodeapi.ConflictReport{IfName: "eth0", PodUID: "u1", Address: "10.0.0.6"}, ""},
		{"other incarnation", nodeapi.ConflictReport{IfName: "net1", PodUID: "u2", Address: "10.0.0.6"}, ""},
		{"no UID: same sandbox", nodeapi.ConflictReport{IfName: "net1", ContainerID: "c1", Address: "10.0.0.6"}, "10.0.0.6"},
		{"no UID: other sandbox", nodeapi.ConflictReport{IfName: "net1", ContainerID: "c2", Address: "10.0.0.6"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.rep
			rep.PodNamespace, rep.PodName = "ns", "p"
			addr, err := validateConflict(&rep)
			if err != nil {
				t.Fatal(err)
			}
			got := conflictClaim(claims, &rep, addr)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("matched claim %s, want none", got.Spec.Address)
			case tc.want != "" && (got == nil || got.Spec.Address != tc.want):
				t.Fatalf("matched %v, want %s", got, tc.want)
			}
		})
	}
}

func TestValidateConflict(t *testing.T) {
	for _, tc := range []struct {
		rep  nodeapi.ConflictReport
		want string
	}{
		{nodeapi.ConflictReport{PodName: "p", IfName: "net1", PodUID: "u", Address: "10.0.0.1"}, "podNamespace, podName and ifName are required"},
		{nodeapi.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", Address: "10.0.0.1"}, "podUID or containerID is required"},
		{nodeapi.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", PodUID: "u", Address: "10.0.0.1/24"}, `address "10.0.0.1/24"`},
	} {
		_, err := validateConflict(&tc.rep)
		var e *nodeapi.ErrorResponse
		if !errors.As(err, &e) || e.Code != nodeapi.CodeInvalidConfig || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("validateConflict(%+v) = %v, want code 7 mentioning %q", tc.rep, err, tc.want)
		}
	}
}
