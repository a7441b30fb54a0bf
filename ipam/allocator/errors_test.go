package allocator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
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
		{&url.Error{Op: "Post", URL: "https://10.96.0.1:443/apis", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, nodeapi.CodeTryAgainLater},
		{fmt.Errorf("list claims: %w", syscall.ECONNRESET), nodeapi.CodeTryAgainLater},
		{fmt.Errorf("watch: %w", io.ErrUnexpectedEOF), nodeapi.CodeTryAgainLater},
		{context.DeadlineExceeded, nodeapi.CodeTryAgainLater},
		{errors.New("connection refused, said a message that is only text"), nodeapi.CodeInternal},
		{apierrors.NewForbidden(gr, "10.6.0.5", errors.New("rbac")), nodeapi.CodeInternal},
		{apierrors.NewBadRequest("nope"), nodeapi.CodeInternal},
	}
	for _, tc := range cases {
		e := APIError(tc.err, "failed to create SpiderIPClaim %q", "10.6.0.5")
		if e.Code != tc.code {
			t.Errorf("%v: code %d, want %d", tc.err, e.Code, tc.code)
		}
		if e.Msg != `failed to create SpiderIPClaim "10.6.0.5"` || e.Details == "" {
			t.Errorf("message %q details %q", e.Msg, e.Details)
		}
	}
}
