package framework

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// PodExecutor runs a command inside a pod (at least in its network
// namespace) and returns stdout and stderr. The lab implements it with
// `lab exec`; KubectlExecutor with `kubectl exec` for ordinary clusters.
type PodExecutor interface {
	ExecInPod(ctx context.Context, pod *corev1.Pod, cmd ...string) (stdout, stderr string, err error)
}

// KubectlExecutor runs commands with `kubectl exec` in the pod's first
// container; the pod image must contain the commands.
type KubectlExecutor struct {
	Kubectl    string
	Kubeconfig string
}

// ExecInPod implements PodExecutor.
func (k *KubectlExecutor) ExecInPod(ctx context.Context, pod *corev1.Pod, cmd ...string) (string, string, error) {
	args := []string{"--kubeconfig", k.Kubeconfig, "exec", "-n", pod.Namespace, pod.Name, "-c", pod.Spec.Containers[0].Name, "--"}
	c := exec.CommandContext(ctx, k.Kubectl, append(args, cmd...)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in pod %s/%s: %w: %s", strings.Join(cmd, " "), pod.Namespace, pod.Name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}
