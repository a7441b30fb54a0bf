package allocator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// APIError classifies a failed API call: transient failures (timeouts,
// throttling, server errors, conflicts, a missing CRD during an upgrade) are
// CNI code 11 so the runtime retries; the rest are internal errors.
func APIError(err error, msg string, args ...any) *nodeapi.ErrorResponse {
	code := nodeapi.CodeInternal
	switch {
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err),
		apierrors.IsUnexpectedServerError(err), isNetworkError(err):
		code = nodeapi.CodeTryAgainLater
	}
	return &nodeapi.ErrorResponse{Code: code, Msg: fmt.Sprintf(msg, args...), Details: nodeapi.TrimDetails(err.Error())}
}

// isNetworkError tells a failure to reach the API server (refused, reset,
// timed out, cut off mid-answer, name resolution) from an answer of the
// API server. client-go returns the former as *url.Error, which is a
// net.Error; the helpers of apimachinery recognise what the transports
// return without one.
func isNetworkError(err error) bool {
	if apierrors.ReasonForError(err) != "" && !apierrors.IsUnexpectedServerError(err) {
		return false // the API server answered
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) || utilnet.IsProbableEOF(err)
}
