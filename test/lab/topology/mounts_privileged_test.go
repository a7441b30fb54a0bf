package topology

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/proc"
	"github.com/spindle-net/spindle/test/prereq"
)

// TestPrivilegedNodeMounts starts a node mount namespace for real and checks
// what a node sees: its own private directories, the host's files elsewhere,
// and network namespaces created afterwards in the root mount namespace; and
// that the host sees none of it.
func TestPrivilegedNodeMounts(t *testing.T) {
	prereq.Root(t)
	for _, d := range config.NodePrivateDirs {
		if _, err := os.Stat(d); err == nil {
			prereq.Missing(t, "%s exists on this host; the test checks it stays absent", d)
		}
	}
	c := config.Default("/nonexistent")
	c.Dir = t.TempDir()
	c.Prefix = "spt"
	m := proc.Manager{LabDir: c.Dir, PidDir: filepath.Join(c.Dir, "pids")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// /run/netns must be a mount before the node starts, as in the lab.
	before := fmt.Sprintf("spt-before-%d", os.Getpid())
	if err := AddNetns(ctx, before); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DelNetns(context.Background(), before) })

	node := "lab-node-1"
	pid, err := StartNodeMounts(ctx, c, node, m, "holder")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop("holder", 5*time.Second) })
	if err := os.WriteFile(filepath.Join(c.NodeFS(node, "/etc/cni/net.d")+".probe"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	after := fmt.Sprintf("spt-after-%d", os.Getpid())
	if err := AddNetns(ctx, after); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DelNetns(context.Background(), after) })

	inNode := func(script string) string {
		t.Helper()
		out, err := exec.Command("nsenter", "--mount=/proc/"+strconv.Itoa(pid)+"/ns/mnt", "--", "sh", "-euc", script).CombinedOutput()
		if err != nil {
			t.Fatalf("in node: %q: %v: %s", script, err, out)
		}
		return string(out)
	}
	inNode("touch /run/spindle/agent.sock /etc/cni/written-by-node")
	if _, err := os.Stat(filepath.Join(c.NodeFS(node, "/run/spindle"), "agent.sock")); err != nil {
		t.Errorf("file written to the node's /run/spindle is not in its backing directory: %v", err)
	}
	if got := inNode("ls /etc/cni"); !strings.Contains(got, "net.d.probe") {
		t.Errorf("node's /etc/cni does not show the backing directory: %q", got)
	}
	if got := inNode("cat /etc/hostname >/dev/null && echo host-etc-visible"); !strings.Contains(got, "host-etc-visible") {
		t.Errorf("host /etc is hidden in the node: %q", got)
	}
	if got := inNode("ls /run/netns"); !strings.Contains(got, before) || !strings.Contains(got, after) {
		t.Errorf("node's /run/netns = %q; want both %s and %s (the latter created after the node)", got, before, after)
	}
	inNode("ip netns exec " + after + " true")

	for _, d := range config.NodePrivateDirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s appeared on the host", d)
		}
	}
	mounts, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range mounts {
		if strings.HasPrefix(mt.Target, c.Dir) || mt.FSType == "overlay" && mt.Source == "lab-"+node {
			t.Errorf("mount %s leaked into the root mount namespace", mt.Target)
		}
	}
}
