package nodeapi

import (
	"errors"
	"fmt"
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

func TestReasonOf(t *testing.T) {
	cases := map[string]error{
		ReasonExhausted: &ErrorResponse{Code: CodeTryAgainLater, Reason: ReasonExhausted, Msg: "no candidate pool has a free address"},
		ReasonNoPool:    &ErrorResponse{Code: CodeInvalidConfig, Reason: ReasonNoPool, Msg: "failed to allocate IPv4 address"},
		ReasonNotOwned:  fmt.Errorf("add: %w", &ErrorResponse{Code: CodeInternal, Reason: ReasonNotOwned, Msg: "bound to another node"}),
		ReasonInvalid:   &ErrorResponse{Code: CodeInvalidConfig, Msg: "invalid request: missing podName"},
		ReasonAPI:       &ErrorResponse{Code: CodeTryAgainLater, Msg: "failed to get pod"},
		ReasonInternal:  errors.New("something else"),
	}
	for want, err := range cases {
		if got := ReasonOf(err); got != want {
			t.Errorf("ReasonOf(%v) = %q, want %q", err, got, want)
		}
	}
}
