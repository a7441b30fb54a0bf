package framework

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Lab holds the lab facts of `_lab/env` and drives `bin/lab`.
type Lab struct {
	Facts
	Bin string
	// PodNetnsPrefix starts every pod network namespace name.
	PodNetnsPrefix string
}

// LoadLab reads the lab env file; a missing file means no lab (nil, nil).
func LoadLab(envFile, bin string) (*Lab, error) {
	env, err := loadEnv(envFile)
	if err != nil || env == nil {
		return nil, err
	}
	fc, err := parseFacts("LAB_", env, envFile)
	if err != nil {
		return nil, err
	}
	return &Lab{Facts: fc, Bin: bin, PodNetnsPrefix: env["LAB_POD_NETNS_PREFIX"]}, nil
}

// Name implements Cluster.
func (l *Lab) Name() string { return "lab" }

// Run runs `bin/lab ARGS...` and returns its combined output.
func (l *Lab) Run(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, l.Bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("failed to run lab %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ExecInPod runs cmd in the pod's network namespace with `lab exec`.
func (l *Lab) ExecInPod(ctx context.Context, pod *corev1.Pod, cmd ...string) (string, string, error) {
	args := append([]string{"exec", pod.Namespace + "/" + pod.Name, "--"}, cmd...)
	c := exec.CommandContext(ctx, l.Bin, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in pod %s/%s: %w: %s", strings.Join(cmd, " "), pod.Namespace, pod.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

// PodSandboxes implements Cluster: the lab's network namespaces of the
// namespace's pods, without the prefix and namespace ("NAME-...").
func (l *Lab) PodSandboxes(_ context.Context, namespace string) ([]string, error) {
	var out []string
	for _, n := range l.PodNetnses(namespace) {
		out = append(out, strings.TrimPrefix(n, l.PodNetnsPrefix+namespace+"-"))
	}
	return out, nil
}

// PodNetnses lists the pod network namespaces of a Kubernetes namespace that
// exist on this machine.
func (l *Lab) PodNetnses(namespace string) []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), l.PodNetnsPrefix+namespace+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// UnderlaySliceV4 returns an IPv4 range of n addresses inside the underlay
// subnet but outside the part the lab uses (its first /24); block selects
// which /24 (1-254) so concurrent specs can stay apart.
func (l *Facts) UnderlaySliceV4(block, n int) (start, end netip.Addr, err error) {
	base := l.UnderlayV4.Masked().Addr().As4()
	if l.UnderlayV4.Bits() > 16 || block < 1 || block > 254 || n < 1 || n > 250 {
		return start, end, fmt.Errorf("failed to pick underlay slice %d of %s: want a /16 underlay, block 1-254, 1-250 addresses", block, l.UnderlayV4)
	}
	base[2] += byte(block)
	base[3] = 10
	start = netip.AddrFrom4(base)
	base[3] = byte(10 + n - 1)
	return start, netip.AddrFrom4(base), nil
}

// NodeStop stops a node's shim; NodeStart restarts it and waits for Ready.
func (l *Lab) NodeStop(ctx context.Context, node string) error {
	_, err := l.Run(ctx, "node", "stop", node)
	return err
}

// NodeStart restarts a node's shim and waits until the node is Ready.
func (l *Lab) NodeStart(ctx context.Context, node string) error {
	_, err := l.Run(ctx, "node", "start", node)
	return err
}
