package agent

import (
	"fmt"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// invalid is a request or configuration error (CNI code 7): retrying will
// not help until someone fixes the named object.
func invalid(msg string, args ...any) *nodeapi.ErrorResponse {
	return &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf(msg, args...)}
}
