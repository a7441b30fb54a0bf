// Package kubeapi starts a real API server (envtest: kube-apiserver and
// etcd binaries) with Spindle's CRDs for integration tests and benchmarks.
package kubeapi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ErrNoAssets is returned by Start when the control-plane binaries are absent.
var ErrNoAssets = errors.New("kube-apiserver/etcd binaries not found: set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, etcd and kubectl, or build them with `bash test/lab/tools/build-deps.sh k8s etcd`")

// RepoRoot returns the directory holding go.mod, searching upwards from the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("failed to find the repository root (go.mod)")
		}
		dir = parent
	}
}

// Assets returns a directory with kube-apiserver, etcd and kubectl: the
// KUBEBUILDER_ASSETS directory when set, otherwise a temporary directory of
// symlinks to the binaries build-deps.sh cached. The cleanup func removes
// the temporary directory.
func Assets(root string) (string, func(), error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return "", nil, fmt.Errorf("KUBEBUILDER_ASSETS=%q has no %s: %w", dir, b, ErrNoAssets)
			}
		}
		return dir, func() {}, nil
	}
	script := filepath.Join(root, "test/lab/tools/build-deps.sh")
	path := func(name string) string {
		out, err := exec.Command("bash", script, "path", name).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	k8s, etcd := path("k8s"), path("etcd")
	links := map[string]string{
		"kube-apiserver": filepath.Join(k8s, "kube-apiserver"),
		"kubectl":        filepath.Join(k8s, "kubectl"),
		"etcd":           filepath.Join(etcd, "etcd"),
	}
	for name, target := range links {
		if k8s == "" || etcd == "" {
			return "", nil, ErrNoAssets
		}
		if _, err := os.Stat(target); err != nil && name != "kubectl" {
			return "", nil, ErrNoAssets
		}
	}
	dir, err := os.MkdirTemp("", "spindle-envtest-assets-")
	if err != nil {
		return "", nil, err
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// Env is a running API server.
type Env struct {
	Config *rest.Config
	env    *envtest.Environment
	clean  func()
}

// Start starts etcd and kube-apiserver with the CRDs of charts/spindle/crds.
// The returned config has high client-side QPS limits. It returns
// ErrNoAssets when the binaries are missing.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, clean, err := Assets(root)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "charts/spindle/crds")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("max-requests-inflight", "2000")
	args.Set("max-mutating-requests-inflight", "1000")
	cfg, err := env.Start()
	if err != nil {
		clean()
		return nil, fmt.Errorf("failed to start envtest API server: %w", err)
	}
	cfg.QPS, cfg.Burst = 100000, 100000
	return &Env{Config: cfg, env: env, clean: clean}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error {
	defer e.clean()
	return e.env.Stop()
}

// Kubeconfig returns a kubeconfig of a cluster-admin user, for binaries
// started by tests.
func (e *Env) Kubeconfig() ([]byte, error) {
	u, err := e.env.AddUser(envtest.User{Name: "spindle-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to add envtest user: %w", err)
	}
	return u.KubeConfig()
}
