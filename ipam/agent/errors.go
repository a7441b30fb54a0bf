package agent

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// invalid is a request or configuration error (CNI code 7): retrying will
// not help until someone fixes the named object.
func invalid(msg string, args ...any) *nodeapi.ErrorResponse {
	return &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf(msg, args...)}
}

// apiError classifies a failed API call: transient failures (timeouts,
// throttling, server errors, conflicts, a missing CRD during an upgrade) are
// CNI code 11 so the runtime retries; the rest are internal errors.
func apiError(err error, msg string, args ...any) *nodeapi.ErrorResponse {
	code := nodeapi.CodeInternal
	switch {
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err),
		apierrors.IsUnexpectedServerError(err), isNetworkError(err):
		code = nodeapi.CodeTryAgainLater
	}
	return &nodeapi.ErrorResponse{Code: code, Msg: fmt.Sprintf(msg, args...), Details: nodeapi.TrimDetails(err.Error())}
}

func isNetworkError(err error) bool {
	if apierrors.ReasonForError(err) != "" && !apierrors.IsUnexpectedServerError(err) {
		return false
	}
	s := err.Error()
	for _, m := range []string{"connection refused", "connection reset", "i/o timeout", "EOF", "context deadline exceeded", "TLS handshake", "no such host", "http2:", "broken pipe"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
