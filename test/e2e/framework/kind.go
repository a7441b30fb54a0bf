package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Kind is the offline kind cluster of test/kind (cluster.sh writes its env
// file, _out/kind/env). Its nodes are containers of a Docker engine that
// lives in a network namespace of its own (KIND_NETNS); the underlay is the
// engine's "kind" network, every node's eth0, whose gateway addresses are
// on the engine's bridge in that namespace.
type Kind struct {
	Facts
	// Docker runs the engine's docker CLI.
	Docker []string
	// Netns is the engine's network namespace.
	Netns  string
	client kubernetes.Interface

	mu sync.Mutex
	// stoppedConf is each stopped node's CNI configuration (cniConfig).
	stoppedConf map[string]string
}

// LoadKind reads the kind env file; a missing file means no kind cluster
// (nil, nil).
func LoadKind(envFile string, client kubernetes.Interface) (*Kind, error) {
	env, err := loadEnv(envFile)
	if err != nil || env == nil {
		return nil, err
	}
	fc, err := parseFacts("KIND_", env, envFile)
	if err != nil {
		return nil, err
	}
	k := &Kind{Facts: fc, Netns: env["KIND_NETNS"], client: client,
		Docker: []string{"docker", "-H", env["KIND_DOCKER_HOST"]}}
	if k.Netns == "" || env["KIND_DOCKER_HOST"] == "" {
		return nil, fmt.Errorf("failed to read %q: KIND_NETNS and KIND_DOCKER_HOST must be set (bash test/kind/cluster.sh up writes them)", envFile)
	}
	return k, nil
}

// Name implements Cluster.
func (k *Kind) Name() string { return "kind" }

func (k *Kind) docker(ctx context.Context, where string, cmd []string, args ...string) (string, string, error) {
	return run(ctx, where, cmd, append(slices.Clone(k.Docker), args...)...)
}

// ExecInNode implements Cluster with `docker exec` in the node's container.
func (k *Kind) ExecInNode(ctx context.Context, node string, cmd ...string) (string, string, error) {
	return k.docker(ctx, "node "+node, cmd, append([]string{"exec", node}, cmd...)...)
}

// nodePid is the machine's process id of the node container's init.
func (k *Kind) nodePid(ctx context.Context, node string) (int, error) {
	out, _, err := k.docker(ctx, "the engine", []string{"inspect", node}, "inspect", "-f", "{{.State.Pid}}", node)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("failed to find the process of node %s (docker inspect says %q): is the node running?", node, strings.TrimSpace(out))
	}
	return pid, nil
}

// NodeNetworkArgv implements Cluster: nsenter into the node container's
// network namespace, with this machine's tools.
func (k *Kind) NodeNetworkArgv(ctx context.Context, node string, cmd ...string) ([]string, error) {
	pid, err := k.nodePid(ctx, node)
	if err != nil {
		return nil, err
	}
	return append([]string{"nsenter", "-t", strconv.Itoa(pid), "--net", "--"}, cmd...), nil
}

// ExecInNodeNetwork implements Cluster.
func (k *Kind) ExecInNodeNetwork(ctx context.Context, node string, cmd ...string) (string, string, error) {
	argv, err := k.NodeNetworkArgv(ctx, node, cmd...)
	if err != nil {
		return "", "", err
	}
	return run(ctx, "the network of node "+node, cmd, argv...)
}

// GatewayArgv implements Cluster: the engine's namespace holds the kind
// network's bridge (GatewayIf) with both gateway addresses.
func (k *Kind) GatewayArgv(cmd ...string) []string {
	return append([]string{"ip", "netns", "exec", k.Netns}, cmd...)
}

// ExecInGateway implements Cluster.
func (k *Kind) ExecInGateway(ctx context.Context, cmd ...string) (string, string, error) {
	return run(ctx, "gateway netns "+k.Netns, cmd, k.GatewayArgv(cmd...)...)
}

// sandbox is a pod sandbox as `crictl pods -o json` lists it.
type sandbox struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Metadata struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// readySandboxes lists the ready pod sandboxes of namespace on node.
func (k *Kind) readySandboxes(ctx context.Context, node, namespace string) ([]sandbox, error) {
	out, _, err := k.ExecInNode(ctx, node, "crictl", "pods", "--namespace", namespace, "--state", "ready", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []sandbox `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("failed to parse crictl pods of node %s: %w", node, err)
	}
	var ready []sandbox
	for _, s := range list.Items {
		if s.Metadata.Namespace == namespace && s.State == "SANDBOX_READY" {
			ready = append(ready, s)
		}
	}
	return ready, nil
}

// podNetns returns the path, as this machine sees it, of the network
// namespace of the pod's ready sandbox (of exactly this pod when byUID).
func (k *Kind) podNetns(ctx context.Context, pod *corev1.Pod, byUID bool) (string, error) {
	node := pod.Spec.NodeName
	if node == "" {
		return "", fmt.Errorf("failed to find the sandbox of pod %s/%s: it is not scheduled", pod.Namespace, pod.Name)
	}
	sbs, err := k.readySandboxes(ctx, node, pod.Namespace)
	if err != nil {
		return "", err
	}
	id := ""
	for _, s := range sbs {
		if s.Metadata.Name == pod.Name && (!byUID || s.Metadata.UID == string(pod.UID)) {
			id = s.ID
		}
	}
	if id == "" {
		return "", fmt.Errorf("failed to find a ready sandbox of pod %s/%s (uid %s) on node %s", pod.Namespace, pod.Name, pod.UID, node)
	}
	out, _, err := k.ExecInNode(ctx, node, "crictl", "inspectp", "-o", "json", id)
	if err != nil {
		return "", err
	}
	var insp struct {
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct {
						Type string `json:"type"`
						Path string `json:"path"`
					} `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		return "", fmt.Errorf("failed to parse crictl inspectp %s on node %s: %w", id, node, err)
	}
	for _, n := range insp.Info.RuntimeSpec.Linux.Namespaces {
		if n.Type == "network" && n.Path != "" {
			pid, err := k.nodePid(ctx, node)
			if err != nil {
				return "", err
			}
			// /var/run is a symbolic link to /run on the node; through
			// /proc/PID/root an absolute link would leave the node.
			p := path.Clean(n.Path)
			if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
				p = "/run/" + rest
			}
			return fmt.Sprintf("/proc/%d/root%s", pid, p), nil
		}
	}
	return "", fmt.Errorf("sandbox %s of pod %s/%s on node %s has no network namespace path", id, pod.Namespace, pod.Name, node)
}

func (k *Kind) execInPod(ctx context.Context, pod *corev1.Pod, byUID bool, cmd []string) (string, string, error) {
	ns, err := k.podNetns(ctx, pod, byUID)
	if err != nil {
		return "", "", fmt.Errorf("failed to run %q in pod %s/%s: %w", strings.Join(cmd, " "), pod.Namespace, pod.Name, err)
	}
	return run(ctx, fmt.Sprintf("pod %s/%s", pod.Namespace, pod.Name), cmd, append([]string{"nsenter", "--net=" + ns, "--"}, cmd...)...)
}

// ExecInPod implements PodExecutor: this machine's tools in the network
// namespace of the pod's ready sandbox on its node.
func (k *Kind) ExecInPod(ctx context.Context, pod *corev1.Pod, cmd ...string) (string, string, error) {
	return k.execInPod(ctx, pod, false, cmd)
}

// ExecInPodIncarnation implements Cluster.
func (k *Kind) ExecInPodIncarnation(ctx context.Context, pod *corev1.Pod, cmd ...string) (string, string, error) {
	return k.execInPod(ctx, pod, true, cmd)
}

// PodSandboxes implements Cluster: "NAME UID" of every ready sandbox of the
// namespace on every node.
func (k *Kind) PodSandboxes(ctx context.Context, namespace string) ([]string, error) {
	var out []string
	for _, n := range k.Nodes {
		sbs, err := k.readySandboxes(ctx, n, namespace)
		if err != nil {
			return nil, err
		}
		for _, s := range sbs {
			out = append(out, s.Metadata.Name+" "+s.Metadata.UID)
		}
	}
	return out, nil
}

// NodeStop implements Cluster: `docker stop` of the node's container. It
// first notes the node's CNI configuration, which NodeStart waits for.
func (k *Kind) NodeStop(ctx context.Context, node string) error {
	conf, err := k.cniConfig(ctx, node)
	if err != nil {
		return err
	}
	k.mu.Lock()
	if k.stoppedConf == nil {
		k.stoppedConf = map[string]string{}
	}
	k.stoppedConf[node] = conf
	k.mu.Unlock()
	_, _, err = k.docker(ctx, "the engine", []string{"stop", node}, "stop", node)
	return err
}

// cniConfig is the file of /etc/cni/net.d the node's container runtime
// uses: the first .conf, .conflist or .json in lexical order ("" if none).
func (k *Kind) cniConfig(ctx context.Context, node string) (string, error) {
	out, _, err := k.ExecInNode(ctx, node, "ls", "-1", "/etc/cni/net.d")
	if err != nil {
		return "", err
	}
	var confs []string
	for _, name := range strings.Fields(out) {
		switch path.Ext(name) {
		case ".conf", ".conflist", ".json":
			confs = append(confs, name)
		}
	}
	slices.Sort(confs)
	if len(confs) == 0 {
		return "", nil
	}
	return confs[0], nil
}

// NodeStart implements Cluster: `docker start` of the node's container,
// then waits up to 3 minutes until the Node is Ready and the node's CNI
// configuration is the one NodeStop saw. multus-daemon removes its
// configuration when it stops; a Ready node whose Multus has not written
// it again yet starts pods with the default network only.
func (k *Kind) NodeStart(ctx context.Context, node string) error {
	if _, _, err := k.docker(ctx, "the engine", []string{"start", node}, "start", node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	k.mu.Lock()
	want, known := k.stoppedConf[node]
	k.mu.Unlock()
	var conf string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := k.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready := NodeReady(n)
		if !ready || !known {
			return ready, nil
		}
		conf, err = k.cniConfig(ctx, node)
		return err == nil && conf == want, nil
	})
	if err != nil {
		if known {
			return fmt.Errorf("failed to see node %s Ready with CNI configuration %q after docker start (it has %q): %w", node, want, conf, err)
		}
		return fmt.Errorf("failed to see node %s Ready after docker start: %w", node, err)
	}
	return nil
}
