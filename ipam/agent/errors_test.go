package agent

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func TestAPIErrorCodes(t *testing.T) {
	gr := schema.GroupResource{Group: "spiderpool.spidernet.io", Resource: "spideripclaims"}
	cases := []struct {
		err  error
		code uint
	}{
		{apierrors.NewTimeoutError("slow", 1), nodeapi.CodeTryAgainLater},
		{apierrors.NewTooManyRequests("throttled", 1), nodeapi.CodeTryAgainLater},
		{apierrors.NewInternalError(errors.New("etcd")), nodeapi.CodeTryAgainLater},
		{apierrors.NewServiceUnavailable("down"), nodeapi.CodeTryAgainLater},
		{apierrors.NewConflict(gr, "10.6.0.5", errors.New("changed")), nodeapi.CodeTryAgainLater},
		{errors.New("dial tcp 10.96.0.1:443: connect: connection refused"), nodeapi.CodeTryAgainLater},
		{apierrors.NewForbidden(gr, "10.6.0.5", errors.New("rbac")), nodeapi.CodeInternal},
		{apierrors.NewBadRequest("nope"), nodeapi.CodeInternal},
	}
	for _, tc := range cases {
		e := apiError(tc.err, "failed to create SpiderIPClaim %q", "10.6.0.5")
		if e.Code != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, e.Code, tc.code)
		}
		if e.Msg != `failed to create SpiderIPClaim "10.6.0.5"` || e.Details == "" {
			t.Errorf("message %q details %q", e.Msg, e.Details)
		}
	}
}

func TestFailureReasons(t *testing.T) {
	cases := map[string]error{
		ReasonExhausted: &nodeapi.ErrorResponse{Code: 11, Msg: `failed to allocate IPv4 address for interface "eth0" of pod "a/b": no candidate pool has a free address`},
		ReasonNoPool:    &nodeapi.ErrorResponse{Code: 7, Msg: "failed to allocate IPv4 address", Details: `no pool for eth0 IPv4: pool "a": disabled`},
		ReasonNotOwned:  &nodeapi.ErrorResponse{Code: 999, Msg: `pod "a/b" is bound to node "n2", but this spindle-agent serves node "n1"`},
		ReasonInvalid:   invalid("invalid request: missing podName"),
		ReasonAPI:       apiError(apierrors.NewServiceUnavailable("x"), "failed to get pod %q", "a/b"),
		ReasonInternal:  errors.New("something else"),
	}
	for want, err := range cases {
		if got := reasonOf(err); got != want {
			t.Errorf("reasonOf(%v) = %q, want %q", err, got, want)
		}
	}
}
