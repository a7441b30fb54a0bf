package nodeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one call to the agent. An ADD that needs more than
// this is reported as try-again-later so the runtime retries.
const DefaultTimeout = 90 * time.Second

// Client talks to the agent over its unix socket. It speaks plain HTTP/1.0
// (one request per connection) with the standard library's net package only,
// which keeps the plugin binary small and quick to start.
type Client struct {
	// Socket is the agent's unix socket path.
	Socket string
	// Timeout bounds one call; zero means DefaultTimeout.
	Timeout time.Duration
	// OnSend, when set, is called just before the request is written; the
	// benchmark uses it to measure the plugin's own start-up overhead.
	OnSend func()
}

// New returns a client for the socket (DefaultSocket when empty).
func New(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Client{Socket: socket}
}

// Add asks the agent to allocate addresses for one interface of a pod.
func (c *Client) Add(ctx context.Context, req *Request) (*Result, error) {
	res := &Result{}
	if err := c.Do(ctx, "POST", PathAdd, req, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Del asks the agent to release the addresses of one interface of a pod.
func (c *Client) Del(ctx context.Context, req *Request) error {
	return c.Do(ctx, "POST", PathDel, req, nil)
}

// Check asks the agent whether the allocation for the interface is intact.
func (c *Client) Check(ctx context.Context, req *Request) (*Result, error) {
	res := &Result{}
	if err := c.Do(ctx, "POST", PathCheck, req, res); err != nil {
		return nil, err
	}
	return res, nil
}

// GC asks the agent to release allocations of attachments the runtime no
// longer knows.
func (c *Client) GC(ctx context.Context, req *GCRequest) (*GCResult, error) {
	res := &GCResult{}
	if err := c.Do(ctx, "POST", PathGC, req, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Conflict reports an address of a pod's interface that another machine
// already uses.
func (c *Client) Conflict(ctx context.Context, rep *ConflictReport) (*ConflictResult, error) {
	res := &ConflictResult{}
	if err := c.Do(ctx, "POST", PathConflict, rep, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Coordinator returns the cluster's coordinator defaults (empty when there is
// no SpiderCoordinator "default").
func (c *Client) Coordinator(ctx context.Context) (*CoordinatorConfig, error) {
	res := &CoordinatorConfig{}
	if err := c.Do(ctx, "GET", PathCoordinator, nil, res); err != nil {
		return nil, err
	}
	return res, nil
}

// Pod returns a pod's annotations and the current allocation of each of its
// interfaces. A pod the agent does not know is an error matching ErrNotFound.
func (c *Client) Pod(ctx context.Context, namespace, name string) (*PodInfo, error) {
	res := &PodInfo{}
	if err := c.Do(ctx, "GET", PodPath(namespace, name), nil, res); err != nil {
		return nil, err
	}
	return res, nil
}

// PodPath is the path of GET pod: PathPods + namespace/name, each escaped as a
// path segment.
func PodPath(namespace, name string) string {
	return PathPods + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// Healthz returns nil when the agent is ready to serve allocations.
func (c *Client) Healthz(ctx context.Context) error {
	return c.Do(ctx, "GET", PathHealthz, nil, nil)
}

// Do performs one call. A non-2xx answer is returned as *ErrorResponse; a
// failure to reach the agent is an *ErrorResponse with CodeTryAgainLater.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("failed to encode request %q: %w", path, err)
		}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return &ErrorResponse{Code: CodeTryAgainLater, Msg: fmt.Sprintf("failed to reach spindle-agent at %q (is the agent running on this node?)", c.Socket), Details: err.Error()}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s %s HTTP/1.0\r\nHost: spindle-agent\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&hdr, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	hdr.WriteString("\r\n")
	hdr.Write(body)
	if c.OnSend != nil {
		c.OnSend()
	}
	if _, err := conn.Write(hdr.Bytes()); err != nil {
		return &ErrorResponse{Code: CodeTryAgainLater, Msg: fmt.Sprintf("failed to send request %s to spindle-agent", path), Details: err.Error()}
	}
	status, payload, err := readResponse(bufio.NewReader(conn))
	if err != nil {
		return &ErrorResponse{Code: CodeTryAgainLater, Msg: fmt.Sprintf("failed to read answer to %s from spindle-agent", path), Details: err.Error()}
	}
	if status < 200 || status > 299 {
		e := &ErrorResponse{}
		if json.Unmarshal(payload, e) != nil || e.Msg == "" {
			e = &ErrorResponse{Code: codeOf(status), Msg: fmt.Sprintf("spindle-agent answered %s with HTTP %d", path, status), Details: TrimDetails(string(payload))}
		}
		if e.Code == 0 {
			e.Code = codeOf(status)
		}
		e.Status = status
		return e
	}
	if out == nil || len(payload) == 0 {
		return nil
	}
	if err := json.Unmarshal(payload, out); err != nil {
		// Whatever the agent did, its answer is unknown: the runtime
		// retries (ADD is idempotent).
		return &ErrorResponse{Code: CodeTryAgainLater, Msg: fmt.Sprintf("failed to decode answer to %s from spindle-agent", path), Details: TrimDetails(err.Error())}
	}
	return nil
}

// MaxAnswerBytes bounds the body of an answer from the agent (its answers
// are a few kilobytes); a larger one is refused rather than buffered.
const MaxAnswerBytes = 4 << 20

// readResponse parses an HTTP/1.x response whose body is delimited by
// Content-Length or by the end of the connection.
func readResponse(r *bufio.Reader) (int, []byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, err
	}
	status, err := parseStatusLine(line)
	if err != nil {
		return 0, nil, err
	}
	length := -1
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			if length, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("bad content-length %q", v)
			}
			if length > MaxAnswerBytes {
				return 0, nil, fmt.Errorf("content-length %d exceeds the limit of %d bytes", length, MaxAnswerBytes)
			}
		case "transfer-encoding":
			return 0, nil, errors.New("unexpected transfer-encoding " + strings.TrimSpace(v))
		}
	}
	if length >= 0 {
		body := make([]byte, length)
		_, err := io.ReadFull(r, body)
		return status, body, err
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxAnswerBytes+1))
	if err == nil && len(body) > MaxAnswerBytes {
		return 0, nil, fmt.Errorf("answer exceeds the limit of %d bytes", MaxAnswerBytes)
	}
	return status, body, err
}

func parseStatusLine(line string) (int, error) {
	// "HTTP/1.0 200 OK"
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return 0, fmt.Errorf("malformed status line %q", strings.TrimSpace(line))
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("malformed status line %q", strings.TrimSpace(line))
	}
	return code, nil
}
