// Package forward makes the API server reachable at the same loopback
// address from inside a node's network namespace: it listens on 127.0.0.1 in
// the node namespace and relays each connection to the real server in the
// root namespace.
package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ListenInNetns opens a TCP listener on addr inside the network namespace at
// netnsPath (see InNetns).
func ListenInNetns(netnsPath, addr string) (net.Listener, error) {
	var ln net.Listener
	err := InNetns(netnsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("failed to listen on %s in %q: %w", addr, netnsPath, err)
		}
		return nil
	})
	return ln, err
}

// InNetns runs fn on an OS thread switched into the network namespace at
// netnsPath: sockets fn opens belong to that namespace. Only the calling OS
// thread switches namespace, and it is switched back before returning; if
// that fails the process exits, since the thread would otherwise serve the
// wrong namespace.
func InNetns(netnsPath string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("failed to open current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("failed to open network namespace %q: %w", netnsPath, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("failed to enter network namespace %q: %w", netnsPath, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		log.Printf("failed to return to the original network namespace: %v", err)
		os.Exit(2)
	}
	return ferr
}

// Serve relays every connection accepted on ln to target until ctx ends.
func Serve(ctx context.Context, ln net.Listener, target string) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("failed to accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			relay(conn, target)
		}()
	}
}

func relay(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		log.Printf("failed to dial %s: %v", target, err)
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}
