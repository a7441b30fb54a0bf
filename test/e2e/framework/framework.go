// Package framework holds the helpers shared by the e2e specs: cluster
// clients, unique namespaces, NetworkAttachmentDefinitions, pods, the
// network-status annotation and running commands inside pods. It works
// against any cluster; facts of the underlay and node control come from the
// env file of the lab (_lab/env) or of the offline kind cluster
// (_out/kind/env) and are nil elsewhere.
package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Framework is what every spec uses to reach the cluster.
type Framework struct {
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	NAD        nadclient.Interface
	// Lab is set when the cluster is the lab (its env file matches the
	// kubeconfig's server); nil otherwise.
	Lab *Lab
	// Testbed is set when the cluster is the lab or the offline kind
	// cluster of test/kind (_out/kind/env matches the kubeconfig's server).
	Testbed *Testbed
	// Exec runs commands in pods; nil when no way to do so is known.
	Exec PodExecutor
	// PodImage is the image of test pods (the lab ignores it).
	PodImage string
}

// Timeouts used by the helpers.
var (
	PodStartTimeout  = 90 * time.Second
	PodDeleteTimeout = 90 * time.Second
)

// New connects to the cluster of kubeconfig and detects the lab from the
// env file under repoRoot (if any).
func New(kubeconfig, repoRoot string) (*Framework, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig %q: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	nc, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	f := &Framework{Kubeconfig: kubeconfig, Config: cfg, Client: cs, NAD: nc, PodImage: os.Getenv("E2E_POD_IMAGE")}
	if f.PodImage == "" {
		f.PodImage = "registry.k8s.io/pause:3.10"
	}
	if repoRoot != "" {
		lab, err := LoadLab(filepath.Join(repoRoot, "_lab", "env"), filepath.Join(repoRoot, "bin", "lab"))
		if err != nil {
			return nil, err
		}
		if lab != nil && lab.APIServer == cfg.Host {
			f.Lab = lab
			f.Exec = lab
			f.Testbed = &Testbed{Facts: &lab.Facts, Cluster: lab}
		}
		kind, err := LoadKind(filepath.Join(repoRoot, "_out", "kind", "env"), cs)
		if err != nil {
			return nil, err
		}
		if f.Testbed == nil && kind != nil && kind.APIServer == cfg.Host {
			f.Exec = kind
			f.Testbed = &Testbed{Facts: &kind.Facts, Cluster: kind}
		}
	}
	if f.Exec == nil && os.Getenv("E2E_KUBECTL") != "" {
		f.Exec = &KubectlExecutor{Kubectl: os.Getenv("E2E_KUBECTL"), Kubeconfig: kubeconfig}
	}
	return f, nil
}

// RepoRoot finds the repository root above dir (the directory with go.mod).
func RepoRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if d == "/" || d == "." {
			return ""
		}
	}
}

// RandSuffix returns n random lowercase hex characters.
func RandSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// Ctx returns a context bounded by d.
func Ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
