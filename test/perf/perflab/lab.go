package perflab

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LabOptions place the benchmark's lab beside any other lab on the machine:
// its own directory, network namespace prefix and ports.
type LabOptions struct {
	Repo, Dir      string
	Prefix         string
	Nodes, MaxPods int
	CNIWorkers     int

	APIServerPort, EtcdPort, ControllerManagerPort, SchedulerPort int
	// Ports of spindle-controller, which runs in the root network
	// namespace (the agents listen inside their nodes' namespaces).
	MetricsPort, HealthPort, WebhookPort int

	AgentArgs, ControllerArgs string
}

// OwnLab returns the options of a lab of a benchmark's own: under
// _out/<name>, with network namespace prefix prefix, dual-stack agents, the
// Makefile's controller arguments, and ports derived from slot (1-9) so
// that programs with different slots never share one (slot 7: API server
// 27443, etcd 23379, controller manager 27257, scheduler 27259, controller
// metrics 5741, health 5740, webhook 9463).
func OwnLab(repo, name, prefix string, slot, nodes, maxPods, cniWorkers int) LabOptions {
	return LabOptions{Repo: repo, Dir: filepath.Join(repo, "_out", name), Prefix: prefix, Nodes: nodes, MaxPods: maxPods, CNIWorkers: cniWorkers,
		APIServerPort: 20443 + 1000*slot, EtcdPort: 16379 + 1000*slot, ControllerManagerPort: 20257 + 1000*slot, SchedulerPort: 20259 + 1000*slot,
		MetricsPort: 5671 + 10*slot, HealthPort: 5670 + 10*slot, WebhookPort: 9393 + 10*slot,
		AgentArgs: "--enable-ipv4=true,--enable-ipv6=true", ControllerArgs: DefaultControllerArgs}
}

// DefaultControllerArgs are the Makefile's LAB_CONTROLLER_ARGS, for runs
// without make; the benchmark moves the ports either way.
const DefaultControllerArgs = "--leader-elect=false,--webhook-host=127.0.0.1,--webhook-manage-configurations=true"

// AddFlags registers the lab's flags on fs with the defaults in o (Repo
// set), so that every benchmark sizes and places its lab the same way.
func (o *LabOptions) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Dir, "dir", o.Dir, "directory of the benchmark's lab")
	fs.StringVar(&o.Prefix, "prefix", o.Prefix, "network namespace prefix of the benchmark's lab")
	fs.IntVar(&o.Nodes, "nodes", o.Nodes, "lab nodes")
	fs.IntVar(&o.MaxPods, "max-pods", o.MaxPods, "pod capacity of every lab node")
	fs.IntVar(&o.CNIWorkers, "cni-workers", o.CNIWorkers, "pods every lab node sets up at once (all nodes share this machine's CPUs)")
	fs.IntVar(&o.APIServerPort, "apiserver-port", o.APIServerPort, "API server port")
	fs.IntVar(&o.EtcdPort, "etcd-port", o.EtcdPort, "etcd client port (the peer port is the next one)")
	fs.IntVar(&o.ControllerManagerPort, "controller-manager-port", o.ControllerManagerPort, "kube-controller-manager port")
	fs.IntVar(&o.SchedulerPort, "scheduler-port", o.SchedulerPort, "kube-scheduler port")
	fs.IntVar(&o.MetricsPort, "controller-metrics-port", o.MetricsPort, "spindle-controller metrics port")
	fs.IntVar(&o.HealthPort, "controller-health-port", o.HealthPort, "spindle-controller health probe port")
	fs.IntVar(&o.WebhookPort, "controller-webhook-port", o.WebhookPort, "spindle-controller webhook port")
	fs.StringVar(&o.AgentArgs, "agent-args", o.AgentArgs, "spindle-agent arguments, comma-separated (make passes LAB_AGENT_ARGS)")
	fs.StringVar(&o.ControllerArgs, "controller-args", o.ControllerArgs, "spindle-controller arguments, comma-separated (make passes LAB_CONTROLLER_ARGS); its ports and certificate directory are replaced by the benchmark's")
}

// EnvFile is the lab's env file (framework.LoadLab reads it).
func (o LabOptions) EnvFile() string { return filepath.Join(o.Dir, "env") }

// LogDir holds the lab's logs, one per process and node.
func (o LabOptions) LogDir() string { return filepath.Join(o.Dir, "logs") }

// MetricsURL is spindle-controller's /metrics, in plain HTTP.
func (o LabOptions) MetricsURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", o.MetricsPort)
}

// splitArgs splits a comma-separated daemon argument list (the Makefile's
// LAB_AGENT_ARGS and LAB_CONTROLLER_ARGS), dropping empty entries.
func splitArgs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// flagName returns the name of a --name=value or --name argument.
func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name
}

// overrideFlags returns args with every --name[=value] whose name is a key
// of set (or in drop) removed, and --name=value appended for each key of
// set, in the order of order. Values must not contain commas: the result is
// joined into a lab daemon spec.
func overrideFlags(args []string, set map[string]string, order []string, drop ...string) ([]string, error) {
	if len(order) != len(set) {
		return nil, fmt.Errorf("failed to override flags: order %v does not list the %d flags to set", order, len(set))
	}
	var out []string
	for _, a := range args {
		n := flagName(a)
		if _, ok := set[n]; ok || slices.Contains(drop, n) {
			continue
		}
		out = append(out, a)
	}
	for _, n := range order {
		v, ok := set[n]
		if !ok {
			return nil, fmt.Errorf("failed to override flags: %q is in the order but not set", n)
		}
		if strings.Contains(v, ",") {
			return nil, fmt.Errorf("failed to override flag --%s: value %q contains a comma, which ends a lab daemon argument", n, v)
		}
		out = append(out, "--"+n+"="+v)
	}
	return out, nil
}

func (o LabOptions) Bin(name string) string { return filepath.Join(o.Repo, "bin", name) }

func (o LabOptions) Kubeconfig() string { return filepath.Join(o.Dir, "kubeconfig") }

// upArgs are the arguments of `lab up`: the lab's size and ports, the agent
// on every node and the controller once, with the controller's ports and
// certificate directory moved to the benchmark's own, and its metrics in
// plain HTTP on loopback for the benchmark to read without a token.
func (o LabOptions) upArgs() ([]string, error) {
	ctrl, err := overrideFlags(splitArgs(o.ControllerArgs), map[string]string{
		"leader-elect":              "false",
		"metrics-bind-address":      "127.0.0.1:" + strconv.Itoa(o.MetricsPort),
		"metrics-secure":            "false",
		"health-probe-bind-address": "127.0.0.1:" + strconv.Itoa(o.HealthPort),
		"webhook-host":              "127.0.0.1",
		"webhook-port":              strconv.Itoa(o.WebhookPort),
		"webhook-url":               "https://127.0.0.1:" + strconv.Itoa(o.WebhookPort),
		"webhook-cert-dir":          filepath.Join(o.Dir, "webhook-certs"),
	}, []string{"leader-elect", "metrics-bind-address", "metrics-secure", "health-probe-bind-address", "webhook-host", "webhook-port", "webhook-url", "webhook-cert-dir"},
		"metrics-addr", "health-addr")
	if err != nil {
		return nil, err
	}
	agent := append([]string{"agent=" + o.Bin("spindle-agent")}, splitArgs(o.AgentArgs)...)
	controller := append([]string{"controller=" + o.Bin("spindle-controller")}, ctrl...)
	return []string{
		"--nodes", strconv.Itoa(o.Nodes), "--max-pods", strconv.Itoa(o.MaxPods), "--cni-workers", strconv.Itoa(o.CNIWorkers), "--prefix", o.Prefix,
		"--apiserver-port", strconv.Itoa(o.APIServerPort), "--etcd-port", strconv.Itoa(o.EtcdPort),
		"--controller-manager-port", strconv.Itoa(o.ControllerManagerPort), "--scheduler-port", strconv.Itoa(o.SchedulerPort),
		"--node-daemon", strings.Join(agent, ","), "--cluster-daemon", strings.Join(controller, ","),
	}, nil
}

// run runs `bin/lab --dir DIR ARGS...` with the lab's prefix also in the
// environment, so that even `down` of a lab whose state is gone removes
// only this lab's namespaces.
func (o LabOptions) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, o.Bin("lab"), append([]string{"--dir", o.Dir}, args...)...)
	cmd.Dir = o.Repo
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+o.Prefix, "LAB_DIR="+o.Dir)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// An interrupted benchmark still tears its lab down: `down` gets its
	// own time, not the cancelled context's.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("failed to run %s %s (lab %s): %w", o.Bin("lab"), strings.Join(args, " "), o.Dir, err)
	}
	return nil
}

// Check fails early, with what to do, when the lab cannot be started.
func (o LabOptions) Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmark starts a lab, which needs root (network and mount namespaces): run it as root")
	}
	for _, b := range []string{"lab", "spindle-agent", "spindle-controller", "cni/spiderpool", "cni/coordinator"} {
		if _, err := os.Stat(o.Bin(b)); err != nil {
			return fmt.Errorf("failed to find %s: run make build first", o.Bin(b))
		}
	}
	return nil
}

// Up starts a fresh lab, removing what an interrupted earlier run left.
func (o LabOptions) Up(ctx context.Context) error {
	if err := o.run(ctx, "down"); err != nil {
		return fmt.Errorf("failed to remove the benchmark lab of an earlier run: %w", err)
	}
	args, err := o.upArgs()
	if err != nil {
		return err
	}
	return o.run(ctx, append([]string{"up"}, args...)...)
}

// Down tears the lab down; it runs even after ctx was cancelled.
func (o LabOptions) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return o.run(ctx, "down")
}
