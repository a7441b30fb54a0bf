package nodeapi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name, in string
		status   int
		body     string
		wantErr  string
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello trailing", status: 200, body: "hello"},
		{name: "until close", in: "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"code\":11}", status: 503, body: `{"code":11}`},
		{name: "bad status line", in: "SSH-2.0\r\n\r\n", wantErr: "malformed status line"},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: "bad content-length"},
		{name: "chunked refused", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: "transfer-encoding"},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantErr: "EOF"},
		{name: "huge length", in: "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n{}", wantErr: "exceeds the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil || status != tc.status || string(body) != tc.body {
				t.Fatalf("got %d %q %v", status, body, err)
			}
		})
	}
}

func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
	f.Add("HTTP/1.0 500 x\r\n\r\nboom")
	// A huge Content-Length made the plugin panic (makeslice: len out of
	// range) instead of failing with try-again-later.
	f.Add("HTTP/1.0 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n{}")
	f.Add("HTTP/1.0 200 OK\r\nContent-Length: 8000000000\r\n\r\n{}")
	f.Fuzz(func(t *testing.T, in string) {
		status, body, err := readResponse(bufio.NewReader(strings.NewReader(in)))
		if err == nil && (status < 0 || len(body) > len(in)) {
			t.Fatalf("status %d body %d bytes from %d input bytes", status, len(body), len(in))
		}
	})
}

func TestUnreachableAgentIsTryAgainLater(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "missing.sock"))
	_, err := c.Add(context.Background(), &Request{})
	var e *ErrorResponse
	if !errors.As(err, &e) || e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, "missing.sock") {
		t.Fatalf("got %#v", err)
	}
}

func TestNonJSONErrorBodyIsReported(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		conn.Write([]byte("HTTP/1.0 502 Bad Gateway\r\n\r\nupstream exploded")) //nolint:errcheck
		conn.Close()
	}()
	err = New(sock).Healthz(context.Background())
	var e *ErrorResponse
	if !errors.As(err, &e) || e.Code != CodeInternal || !strings.Contains(e.Error(), "HTTP 502") || !strings.Contains(e.Error(), "upstream exploded") {
		t.Fatalf("got %#v", err)
	}
}

// An answer the plugin cannot decode leaves the allocation unknown: it is
// try-again-later (the runtime retries; ADD is idempotent), not error 999.
func TestUndecodableAnswerIsTryAgainLater(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		_, _ = conn.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	}()
	_, err = New(sock).Add(context.Background(), &Request{})
	var e *ErrorResponse
	if !errors.As(err, &e) || e.Code != CodeTryAgainLater || !strings.Contains(e.Msg, "failed to decode answer") {
		t.Fatalf("got %#v", err)
	}
}
