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

	"github.com/spindle-net/spindle/test/lab/config"
)

// Cluster is what specs need of the cluster under test beyond its API:
// commands in a pod's network namespace, on a node and on the underlay's
// gateway, and stopping a node. The lab (Lab) and the offline kind cluster
// (Kind) implement it.
type Cluster interface {
	// Name is "lab" or "kind".
	Name() string
	PodExecutor
	// ExecInPodIncarnation runs cmd in the network namespace of exactly
	// this pod (by UID), never in an older sandbox of the same name.
	ExecInPodIncarnation(ctx context.Context, pod *corev1.Pod, cmd ...string) (stdout, stderr string, err error)
	// PodSandboxes lists the live pod network namespaces of a Kubernetes
	// namespace, each named by a string that starts with its pod's name.
	PodSandboxes(ctx context.Context, namespace string) ([]string, error)
	// ExecInNode runs cmd on the node (its network and file system).
	ExecInNode(ctx context.Context, node string, cmd ...string) (stdout, stderr string, err error)
	// ExecInNodeNetwork runs cmd in the node's network namespace with the
	// test machine's tools (curl and the like, which a node may lack).
	ExecInNodeNetwork(ctx context.Context, node string, cmd ...string) (stdout, stderr string, err error)
	// NodeNetworkArgv is the command line that runs cmd as ExecInNodeNetwork
	// does, for commands that keep running (tcpdump).
	NodeNetworkArgv(ctx context.Context, node string, cmd ...string) ([]string, error)
	// ExecInGateway runs cmd where the underlay's gateway addresses live
	// (on the interface GatewayIf).
	ExecInGateway(ctx context.Context, cmd ...string) (stdout, stderr string, err error)
	// GatewayArgv is the command line that runs cmd as ExecInGateway does.
	GatewayArgv(cmd ...string) []string
	// NodeStop stops a node's kubelet and containers; NodeStart starts
	// them again and waits until the node is Ready and starts pods with
	// all their networks.
	NodeStop(ctx context.Context, node string) error
	NodeStart(ctx context.Context, node string) error
}

// Testbed is what a spec holds: the cluster's underlay facts and its powers.
type Testbed struct {
	*Facts
	Cluster
}

// Facts describe the nodes and the underlay every node is attached to, read
// from an env file whose keys start with Prefix (LAB_ or KIND_).
type Facts struct {
	Prefix     string
	Env        map[string]string
	APIServer  string
	Nodes      []string
	UnderlayIf string
	// GatewayIf is the gateway's interface on the underlay.
	GatewayIf  string
	UnderlayV4 netip.Prefix
	UnderlayV6 netip.Prefix
	GatewayV4  netip.Addr
	GatewayV6  netip.Addr
	// ServiceCIDR is the cluster's service CIDR as configured (IPv4 first
	// when there are two).
	ServiceCIDR string
}

// parseFacts reads the facts shared by every cluster from env.
func parseFacts(prefix string, env map[string]string, file string) (Facts, error) {
	fc := Facts{
		Prefix: prefix, Env: env, APIServer: env[prefix+"APISERVER"], UnderlayIf: env[prefix+"UNDERLAY_IF"],
		Nodes: strings.Fields(env[prefix+"NODES"]), ServiceCIDR: env[prefix+"SERVICE_CIDR"], GatewayIf: env[prefix+"GATEWAY_IF"],
	}
	if fc.GatewayIf == "" {
		fc.GatewayIf = fc.UnderlayIf
	}
	var err error
	for _, p := range []struct {
		key string
		dst *netip.Prefix
	}{{"UNDERLAY_V4", &fc.UnderlayV4}, {"UNDERLAY_V6", &fc.UnderlayV6}} {
		if *p.dst, err = netip.ParsePrefix(env[prefix+p.key]); err != nil {
			return fc, fmt.Errorf("failed to parse %s%s=%q in %q: %w", prefix, p.key, env[prefix+p.key], file, err)
		}
	}
	for _, a := range []struct {
		key string
		dst *netip.Addr
	}{{"GATEWAY_V4", &fc.GatewayV4}, {"GATEWAY_V6", &fc.GatewayV6}} {
		if *a.dst, err = netip.ParseAddr(env[prefix+a.key]); err != nil {
			return fc, fmt.Errorf("failed to parse %s%s=%q in %q: %w", prefix, a.key, env[prefix+a.key], file, err)
		}
	}
	return fc, nil
}

// loadEnv reads an env file; a missing file is (nil, nil).
func loadEnv(file string) (map[string]string, error) {
	data, err := readFileIfExists(file)
	if err != nil || data == nil {
		return nil, err
	}
	env, err := config.ParseEnv(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse env %q: %w", file, err)
	}
	return env, nil
}

// NodeEnv returns the per-node value <prefix>NODE_<i>_<suffix> of the named
// node ("" when unknown), e.g. NodeEnv("lab-node-1", "UNDERLAY_V4").
func (fc *Facts) NodeEnv(node, suffix string) string {
	for i := 1; ; i++ {
		name, ok := fc.Env[fmt.Sprintf("%sNODE_%d_NAME", fc.Prefix, i)]
		if !ok {
			return ""
		}
		if name == node {
			return fc.Env[fmt.Sprintf("%sNODE_%d_%s", fc.Prefix, i, suffix)]
		}
	}
}

func readFileIfExists(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read env %q: %w", file, err)
	}
	return data, nil
}

// run runs argv and returns its stdout and stderr; the error names what ran
// where.
func run(ctx context.Context, where string, cmd []string, argv ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in %s: %w: %s", strings.Join(cmd, " "), where, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}
