package forward

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spindle-net/spindle/test/prereq"
)

func TestPrivilegedForwardFromNetns(t *testing.T) {
	prereq.Root(t)
	name := fmt.Sprintf("splfwdtest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}

	// The target: an echo server on root-namespace loopback.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()

	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	// Listening on the very address the target holds only works in another
	// namespace.
	ln, err := ListenInNetns("/run/netns/"+name, target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && got != before {
			t.Fatalf("thread %s left in %s (process namespace %s)", task.Name(), got, before)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, target.Addr().String()) }()

	// The same address reached from inside the namespace gets the echo.
	_, port, _ := net.SplitHostPort(target.Addr().String())
	cmd := exec.Command("ip", "netns", "exec", name, "bash", "-c",
		"exec 3<>/dev/tcp/127.0.0.1/"+port+"; echo ping >&3; head -n1 <&3")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ping" {
		t.Fatalf("relay from the namespace: %v: %q", err, out)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop")
	}
}
