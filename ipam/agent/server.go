package agent

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
	"strings"

	"github.com/spindle-net/spindle/ipam/client"
)

// Backend is what the socket server calls; *Agent implements it.
type Backend interface {
	Add(ctx context.Context, req *client.Request) (*client.Result, error)
	Del(ctx context.Context, req *client.Request) error
	Check(ctx context.Context, req *client.Request) (*client.Result, error)
	GC(ctx context.Context, req *client.GCRequest) (*client.GCResult, error)
	Conflict(ctx context.Context, rep *client.ConflictReport) (*client.ConflictResult, error)
	Ready() error
	Coordinator(ctx context.Context) (any, error)
	Pod(ctx context.Context, namespace, name string) (any, error)
}

// Handler returns the HTTP handler of the plugin socket.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+client.PathAdd, func(w http.ResponseWriter, r *http.Request) {
		req := &client.Request{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.Add(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+client.PathDel, func(w http.ResponseWriter, r *http.Request) {
		req := &client.Request{}
		if !decode(w, r, req) {
			return
		}
		reply(w, struct{}{}, b.Del(r.Context(), req))
	})
	mux.HandleFunc("POST "+client.PathCheck, func(w http.ResponseWriter, r *http.Request) {
		req := &client.Request{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.Check(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+client.PathGC, func(w http.ResponseWriter, r *http.Request) {
		req := &client.GCRequest{}
		if !decode(w, r, req) {
			return
		}
		res, err := b.GC(r.Context(), req)
		reply(w, res, err)
	})
	mux.HandleFunc("POST "+client.PathConflict, func(w http.ResponseWriter, r *http.Request) {
		rep := &client.ConflictReport{}
		if !decode(w, r, rep) {
			return
		}
		res, err := b.Conflict(r.Context(), rep)
		reply(w, res, err)
	})
	mux.HandleFunc("GET "+client.PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		if err := b.Ready(); err != nil {
			reply(w, nil, &client.ErrorResponse{Code: client.CodeTryAgainLater, Msg: "spindle-agent is not ready", Details: err.Error()})
			return
		}
		reply(w, map[string]bool{"ready": true}, nil)
	})
	mux.HandleFunc("GET "+client.PathCoordinator, func(w http.ResponseWriter, r *http.Request) {
		res, err := b.Coordinator(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("GET "+client.PathPods+"{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
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
		reply(w, nil, &client.ErrorResponse{Code: client.CodeInvalidConfig, Msg: fmt.Sprintf("failed to decode request %q", r.URL.Path), Details: err.Error()})
		return false
	}
	return true
}

// ErrNotFound is returned by Backend methods for absent objects (HTTP 404).
var ErrNotFound = errors.New("not found")

func reply(w http.ResponseWriter, v any, err error) {
	status := http.StatusOK
	if err != nil {
		e := AsErrorResponse(err)
		v = e
		switch {
		case errors.Is(err, ErrNotFound):
			status = http.StatusNotFound
		case e.Code == client.CodeInvalidConfig:
			status = http.StatusBadRequest
		case e.Code == client.CodeTryAgainLater:
			status = http.StatusServiceUnavailable
		default:
			status = http.StatusInternalServerError
		}
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

// AsErrorResponse converts any error into the protocol's error body; errors
// that are not already *client.ErrorResponse get code 999.
func AsErrorResponse(err error) *client.ErrorResponse {
	var e *client.ErrorResponse
	if errors.As(err, &e) {
		return e
	}
	return &client.ErrorResponse{Code: client.CodeInternal, Msg: err.Error()}
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

// trimDetails keeps error details readable in kubelet events.
func trimDetails(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}
