package agent

import (
	"errors"
	"sort"
	"testing"

	"k8s.io/client-go/tools/events"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func TestAddEventsNameThePodAndTheFullPools(t *testing.T) {
	req := &nodeapi.Request{PodNamespace: "app", PodName: "web-0", PodUID: "u1", IfName: "net1"}
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"exhausted: the pod and each full pool", &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonExhausted, Pools: []string{"a", "b"},
			Msg: "failed to allocate IPv4 address", Details: `pool "a": 3/3 allocated; pool "b": 2/2 allocated`}, []string{
			`Warning AllocationFailed interface net1: failed to allocate IPv4 address: pool "a": 3/3 allocated; pool "b": 2/2 allocated`,
			"Warning PoolExhausted pod app/web-0 found no free address for interface net1 here (candidates: a, b)",
			"Warning PoolExhausted pod app/web-0 found no free address for interface net1 here (candidates: a, b)",
		}},
		{"no pool", &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Reason: nodeapi.ReasonNoPool, Msg: "no pool for net1 IPv4"},
			[]string{"Warning AllocationFailed interface net1: no pool for net1 IPv4"}},
		{"waiting for an application's pool", &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonNoPool, Msg: "pool not carved yet"},
			[]string{"Normal WaitingForPool interface net1: pool not carved yet"}},
		{"a fixed address held", &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonFixedUnavailable, Msg: "10.0.0.5 is held by pod app/other"},
			[]string{"Warning RequestedAddressHeld interface net1: 10.0.0.5 is held by pod app/other"}},
		{"the API server failing says nothing about the pod", &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonAPI, Msg: "timeout"}, nil},
		{"an internal error neither", errors.New("boom"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			a := &Agent{recorder: rec}
			a.addEvent(t.Context(), req, tc.err)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, e)
			}
			sort.Strings(got)
			sort.Strings(tc.want)
			if len(got) != len(tc.want) {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %q, want %q", got[i], tc.want[i])
				}
			}
		})
	}
}
