package topology

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/proc"
)

// StartNodeMounts starts the process holding node's private mount namespace
// (see PlanNodeMounts) under the process name name and waits until its
// mounts are in place. It returns the holder's pid; plugins and daemons enter
// the namespace through /proc/<pid>/ns/mnt.
func StartNodeMounts(ctx context.Context, c config.Config, node string, m proc.Manager, name string) (int, error) {
	mounts, err := Mounts()
	if err != nil {
		return 0, err
	}
	var targets []string
	for _, mt := range mounts {
		targets = append(targets, mt.Target)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	plan, err := PlanNodeMounts(c, node, exists, targets)
	if err != nil {
		return 0, err
	}
	aside := filepath.Join(c.NodeDir(node), "aside")
	dirs := AsideDirs(plan, aside)
	for _, o := range plan.Overlays {
		dirs = append(dirs, o.Work)
		dirs = append(dirs, o.MountPoints...)
	}
	for _, b := range plan.Binds {
		dirs = append(dirs, b[0])
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("failed to create %q: %w", d, err)
		}
	}
	ready := filepath.Join(c.NodeDir(node), "mounts.ready")
	_ = os.Remove(ready)
	log := filepath.Join(c.LogDir(), node+"-holder.log")
	pid, err := m.Start(proc.Spec{
		Name: name,
		// Slave propagation: pod namespaces mounted later under /run/netns
		// in the root mount namespace still show up in the node.
		Argv: []string{"unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", MountScript(plan, node, aside, ready)},
		Log:  log,
		Dir:  "/",
	})
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = proc.WaitReady(wctx, "mount namespace of "+node, pid, log, 50*time.Millisecond, func(context.Context) error {
		_, err := os.Stat(ready)
		return err
	})
	return pid, err
}
