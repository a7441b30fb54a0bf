package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// labOptions place the benchmark's lab beside any other lab on the machine:
// its own directory, network namespace prefix and ports.
type labOptions struct {
	repo, dir      string
	prefix         string
	nodes, maxPods int
	cniWorkers     int

	apiserverPort, etcdPort, controllerManagerPort, schedulerPort int
	// Ports of spindle-controller, which runs in the root network
	// namespace (the agents listen inside their nodes' namespaces).
	metricsPort, healthPort, webhookPort int

	agentArgs, controllerArgs string
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

func (o labOptions) bin(name string) string { return filepath.Join(o.repo, "bin", name) }

func (o labOptions) kubeconfig() string { return filepath.Join(o.dir, "kubeconfig") }

// upArgs are the arguments of `lab up`: the lab's size and ports, the agent
// on every node and the controller once, with the controller's ports and
// certificate directory moved to the benchmark's own, and its metrics in
// plain HTTP on loopback for the benchmark to read without a token.
func (o labOptions) upArgs() ([]string, error) {
	ctrl, err := overrideFlags(splitArgs(o.controllerArgs), map[string]string{
		"leader-elect":              "false",
		"metrics-bind-address":      "127.0.0.1:" + strconv.Itoa(o.metricsPort),
		"metrics-secure":            "false",
		"health-probe-bind-address": "127.0.0.1:" + strconv.Itoa(o.healthPort),
		"webhook-host":              "127.0.0.1",
		"webhook-port":              strconv.Itoa(o.webhookPort),
		"webhook-url":               "https://127.0.0.1:" + strconv.Itoa(o.webhookPort),
		"webhook-cert-dir":          filepath.Join(o.dir, "webhook-certs"),
	}, []string{"leader-elect", "metrics-bind-address", "metrics-secure", "health-probe-bind-address", "webhook-host", "webhook-port", "webhook-url", "webhook-cert-dir"},
		"metrics-addr", "health-addr")
	if err != nil {
		return nil, err
	}
	agent := append([]string{"agent=" + o.bin("spindle-agent")}, splitArgs(o.agentArgs)...)
	controller := append([]string{"controller=" + o.bin("spindle-controller")}, ctrl...)
	return []string{
		"--nodes", strconv.Itoa(o.nodes), "--max-pods", strconv.Itoa(o.maxPods), "--cni-workers", strconv.Itoa(o.cniWorkers), "--prefix", o.prefix,
		"--apiserver-port", strconv.Itoa(o.apiserverPort), "--etcd-port", strconv.Itoa(o.etcdPort),
		"--controller-manager-port", strconv.Itoa(o.controllerManagerPort), "--scheduler-port", strconv.Itoa(o.schedulerPort),
		"--node-daemon", strings.Join(agent, ","), "--cluster-daemon", strings.Join(controller, ","),
	}, nil
}

// run runs `bin/lab --dir DIR ARGS...` with the lab's prefix also in the
// environment, so that even `down` of a lab whose state is gone removes
// only this lab's namespaces.
func (o labOptions) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, o.bin("lab"), append([]string{"--dir", o.dir}, args...)...)
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "LAB_PREFIX="+o.prefix, "LAB_DIR="+o.dir)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// An interrupted benchmark still tears its lab down: `down` gets its
	// own time, not the cancelled context's.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("failed to run %s %s (lab %s): %w", o.bin("lab"), strings.Join(args, " "), o.dir, err)
	}
	return nil
}

// check fails early, with what to do, when the lab cannot be started.
func (o labOptions) check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the subnet benchmark starts a lab, which needs root (network and mount namespaces): run it as root")
	}
	for _, b := range []string{"lab", "spindle-agent", "spindle-controller", "cni/spiderpool", "cni/coordinator"} {
		if _, err := os.Stat(o.bin(b)); err != nil {
			return fmt.Errorf("failed to find %s: run make build first", o.bin(b))
		}
	}
	return nil
}

// up starts a fresh lab, removing what an interrupted earlier run left.
func (o labOptions) up(ctx context.Context) error {
	if err := o.run(ctx, "down"); err != nil {
		return fmt.Errorf("failed to remove the benchmark lab of an earlier run: %w", err)
	}
	args, err := o.upArgs()
	if err != nil {
		return err
	}
	return o.run(ctx, append([]string{"up"}, args...)...)
}

// down tears the lab down; it runs even after ctx was cancelled.
func (o labOptions) down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return o.run(ctx, "down")
}
