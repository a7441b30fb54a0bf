package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/spindle-net/spindle/test/lab/config"
)

// PodNetnsOf returns the name of the lab network namespace of this pod
// incarnation (namespace, name and UID).
func (l *Lab) PodNetnsOf(pod *corev1.Pod) string {
	return config.Config{Prefix: l.Env["LAB_PREFIX"]}.PodNetns(pod.Namespace, pod.Name, string(pod.UID))
}

// ExecInPodIncarnation runs cmd in the network namespace of exactly this pod
// (by UID). Unlike ExecInPod (`lab exec NS/POD`), which takes any Running
// sandbox of that name, it cannot land in the sandbox of an older pod of the
// same name that is still being torn down.
func (l *Lab) ExecInPodIncarnation(ctx context.Context, pod *corev1.Pod, cmd ...string) (string, string, error) {
	netns := l.PodNetnsOf(pod)
	path := filepath.Join("/run/netns", netns)
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("failed to find network namespace %q of pod %s/%s (uid %s): %w", netns, pod.Namespace, pod.Name, pod.UID, err)
	}
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + path, "--"}, cmd...)...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in pod %s/%s (netns %s): %w: %s", strings.Join(cmd, " "), pod.Namespace, pod.Name, netns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}
