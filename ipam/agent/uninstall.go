package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Uninstall is what the agent removes from its node when it stops because
// its DaemonSet was deleted (helm uninstall), never on a restart, an
// upgrade, a node drain or an eviction: the files the installation put on
// the node (the CNI plugins), which nothing else would remove.
type Uninstall struct {
	// DaemonSet is namespace/name of the agent's DaemonSet; empty: the
	// agent never removes anything.
	DaemonSet string
	// Files are absolute paths, as the agent sees them.
	Files []string
}

// parseUninstall checks the --daemonset and --remove-on-uninstall flags.
func parseUninstall(daemonSet, files string) (Uninstall, error) {
	u := Uninstall{DaemonSet: daemonSet}
	if daemonSet != "" {
		ns, name, ok := strings.Cut(daemonSet, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return u, fmt.Errorf("--daemonset %q: want namespace/name of the agent's DaemonSet", daemonSet)
		}
	}
	for _, f := range strings.Split(files, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !filepath.IsAbs(f) || filepath.Clean(f) != f || f == "/" {
			return u, fmt.Errorf("--remove-on-uninstall: %q is not a clean absolute file path", f)
		}
		u.Files = append(u.Files, f)
	}
	if len(u.Files) > 0 && daemonSet == "" {
		return u, errors.New("--remove-on-uninstall needs --daemonset: the agent removes the files only once its DaemonSet is deleted")
	}
	return u, nil
}

// uninstalling reports whether the DaemonSet is gone or being deleted.
// helm uninstall deletes the agent's ServiceAccount and RBAC right after
// its DaemonSet, usually before the agents get their SIGTERM, so an API
// server that no longer accepts the agent's credentials (401) or grants it
// nothing (403) counts as uninstalled too. Were that ever wrong (RBAC
// broken by hand at a restart), the next agent pod's init container copies
// the plugins again before the agent starts.
func (u Uninstall) uninstalling(ctx context.Context, c client.Reader) (bool, error) {
	ns, name, _ := strings.Cut(u.DaemonSet, "/")
	ds := &appsv1.DaemonSet{}
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ds)
	switch {
	case apierrors.IsNotFound(err), apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("failed to get DaemonSet %s: %w", u.DaemonSet, err)
	}
	return ds.DeletionTimestamp != nil, nil
}

// uninstallTimeout bounds the clean-up as the agent stops, well inside a
// pod's default termination grace period (30 s).
const uninstallTimeout = 10 * time.Second

// uninstallRetry is how often cleanUp asks again after an error.
const uninstallRetry = 500 * time.Millisecond

// cleanUp removes the files when the DaemonSet is being deleted and
// returns the paths it removed. A file already gone is not an error. An
// error reading the DaemonSet is retried until ctx is done (the agent may
// be stopping while its connection to the API server is being set up or
// torn down); the last one is returned.
func (u Uninstall) cleanUp(ctx context.Context, c client.Reader) ([]string, error) {
	if u.DaemonSet == "" || len(u.Files) == 0 {
		return nil, nil
	}
	var gone bool
	var lastErr error
	err := wait.PollUntilContextCancel(ctx, uninstallRetry, true, func(ctx context.Context) (bool, error) {
		gone, lastErr = u.uninstalling(ctx, c)
		return lastErr == nil, nil
	})
	if err != nil {
		return nil, errors.Join(lastErr, err)
	}
	if !gone {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, f := range u.Files {
		switch err := os.Remove(f); {
		case err == nil:
			removed = append(removed, f)
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("failed to remove %s: %w", f, err))
		}
	}
	return removed, errors.Join(errs...)
}
