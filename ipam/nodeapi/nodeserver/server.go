// Package nodeserver serves the node protocol (package nodeapi) on the agent's
// unix socket: it decodes each request into its typed struct, calls the
// Backend and encodes the answer or the error with its CNI code.
package nodeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// Backend is what the socket server calls; the node agent implements it.
// Errors are *nodeapi.ErrorResponse (their code reaches the runtime) or wrap
// nodeapi.ErrNotFound (answered 404); anything else is an internal error.
type Backend interface {
	Add(ctx context.Context, req *nodeapi.Request) (*nodeapi.Result, error)
	Del(ctx context.Context, req *nodeapi.Request) error
	Check(ctx context.Context, req *nodeapi.Request) (*nodeapi.Result, error)
	GC(ctx context.Context, req *nodeapi.GCRequest) (*nodeapi.GCResult, error)
	Conflict(ctx context.Context, rep *nodeapi.ConflictReport) (*nodeapi.ConflictResult, error)
	Ready() error
	Coordinator(ctx context.Context) (*nodeapi.CoordinatorConfig, error)
	Pod(ctx context.Context, namespace, name string) (*nodeapi.PodInfo, error)
}

// Handler returns the HTTP handler of the plugin socket.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+nodeapi.PathAdd, func(w http.ResponseWriter, r *http.Request) {
		req := &nodeapi.Request{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.Add(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+nodeapi.PathDel, func(w http.ResponseWriter, r *http.Request) {
		req := &nodeapi.Request{}
		if !decode(w, r, req) {
			return
		}
		reply(w, struct{}{}, b.Del(r.Context(), req))
	})
	mux.HandleFunc("POST "+nodeapi.PathCheck, func(w http.ResponseWriter, r *http.Request) {
		req := &nodeapi.Request{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.Check(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+nodeapi.PathGC, func(w http.ResponseWriter, r *http.Request) {
		req := &nodeapi.GCRequest{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.GC(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+nodeapi.PathConflict, func(w http.ResponseWriter, r *http.Request) {
		rep := &nodeapi.ConflictReport{}
		if !decode(w, r, rep) {
			return
		}
		res, err := b.Conflict(r.Context(), rep)
		reply(w, res, err)
	})
	mux.HandleFunc("GET "+nodeapi.PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		if err := b.Ready(); err != nil {
			reply(w, nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "spindle-agent is not ready", Details: err.Error()})
			return
		}
		reply(w, map[string]bool{"ready": true}, nil)
	})
	mux.HandleFunc("GET "+nodeapi.PathCoordinator, func(w http.ResponseWriter, r *http.Request) {
		res, err := b.Coordinator(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("GET "+nodeapi.PathPods+"{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		res, err := b.Pod(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
		reply(w, res, err)
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		reply(w, nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf("failed to decode request %q", r.URL.Path), Details: err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	status := http.StatusOK
	if err != nil {
		status, v = nodeapi.StatusOf(err), nodeapi.AsErrorResponse(err)
	}
	body, merr := json.Marshal(v)
	if merr != nil {
		status, body = http.StatusInternalServerError, []byte(`{"code":999,"msg":"failed to encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// ListenUnix creates the directory of path, removes a stale socket and listens
// with mode 0600 so only root can talk to the agent.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("failed to create socket directory %q: %w", filepath.Dir(path), err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to remove stale socket %q: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %q: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("failed to restrict socket %q: %w", path, err)
	}
	return l, nil
}
