package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockName is the lock file in the lab directory; `down` keeps it.
const lockName = ".lock"

// lock serialises commands that change the lab (up, down, node, daemons,
// install-cni). It waits up to timeout for another such command to finish.
func lock(ctx context.Context, labDir string, timeout time.Duration) (func(), error) {
	if err := os.MkdirAll(labDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create lab directory %q: %w", labDir, err)
	}
	path := filepath.Join(labDir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock %q: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("failed to lock %q: %w", path, err)
		}
		if !waited {
			fmt.Fprintf(os.Stderr, "lab: waiting for another lab command to finish (lock %s)\n", path)
			waited = true
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("failed to lock %q: another lab command held it for %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
