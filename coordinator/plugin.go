package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/routing"
)

// CNI error codes of the coordinator (plugin-specific codes start at 100).
const (
	// ErrCodeIPConflict: an address of the pod answers from another MAC.
	// The IPAM side releases the address on this code.
	ErrCodeIPConflict uint = 150
	// ErrCodeGatewayUnreachable: a gateway did not answer ARP/NDP.
	ErrCodeGatewayUnreachable uint = 151
)

// agentTimeout bounds each request to the node agent.
const agentTimeout = 5 * time.Second

// Plugin is the coordinator CNI plugin. The zero value talks to the node
// agent named in the configuration.
type Plugin struct {
	// NewSource returns the settings source for a configuration; nil means
	// the node agent's unix socket.
	NewSource func(conf *NetConf) SettingsSource
	// Probes tunes IP conflict and gateway detection; zero means
	// routing.DefaultProbeOptions.
	Probes routing.ProbeOptions
	// Stderr receives logs when no logFile is configured; nil is os.Stderr.
	Stderr io.Writer
}

var plugin = &Plugin{}

// Add is the skel entry point for CNI ADD.
func Add(args *skel.CmdArgs) error { return plugin.Add(args) }

// Check is the skel entry point for CNI CHECK.
func Check(args *skel.CmdArgs) error { return plugin.Check(args) }

// Del is the skel entry point for CNI DEL.
func Del(args *skel.CmdArgs) error { return plugin.Del(args) }

// Status is the skel entry point for CNI STATUS.
func Status(args *skel.CmdArgs) error { return plugin.Status(args) }

// GC is the skel entry point for CNI GC.
func GC(args *skel.CmdArgs) error { return plugin.GC(args) }

// About is the plugin's version banner.
const About = "spindle coordinator: coherent routing for multi-NIC pods"

func (p *Plugin) source(conf *NetConf) SettingsSource {
	if p.NewSource != nil {
		return p.NewSource(conf)
	}
	socket := conf.AgentSocket
	if socket == "" {
		socket = DefaultAgentSocket
	}
	return NewAgentClient(socket, agentTimeout)
}

// k8sArgs are the CNI_ARGS kubelet and Multus pass.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
	K8S_POD_UID       types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
}

func podArgs(args string) (namespace, name string, err error) {
	a := k8sArgs{}
	a.IgnoreUnknown = true
	if err := types.LoadArgs(args, &a); err != nil {
		return "", "", invalidConfig("failed to parse CNI_ARGS %q: %v", args, err)
	}
	return string(a.K8S_POD_NAMESPACE), string(a.K8S_POD_NAME), nil
}

// podUIDArg returns K8S_POD_UID of CNI_ARGS ("" when absent or unreadable).
func podUIDArg(args string) string {
	a := k8sArgs{}
	a.IgnoreUnknown = true
	if err := types.LoadArgs(args, &a); err != nil {
		return ""
	}
	return string(a.K8S_POD_UID)
}

// run is one invocation: the parsed configuration and its logger.
type run struct {
	conf *NetConf
	log  *slog.Logger
	done func()
}

func (p *Plugin) start(args *skel.CmdArgs, cmd string) (*run, error) {
	conf, err := ParseNetConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	log, done := p.logger(conf)
	log = log.With("cmd", cmd, "containerID", args.ContainerID, "ifName", args.IfName, "netns", args.Netns)
	return &run{conf: conf, log: log, done: done}, nil
}

func (p *Plugin) logger(conf *NetConf) (*slog.Logger, func()) {
	level := slog.LevelInfo
	switch conf.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	var w io.Writer = os.Stderr
	if p.Stderr != nil {
		w = p.Stderr
	}
	done := func() {}
	var openErr error
	if conf.LogFile != "" {
		f, err := os.OpenFile(conf.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err == nil {
			w, done = f, func() { f.Close() }
		}
		openErr = err
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	if openErr != nil {
		log.Warn("logging to stderr", "error", fmt.Errorf("failed to open log file %q: %w", conf.LogFile, openErr))
	}
	return log, done
}

// config fetches cluster defaults and resolves the effective configuration.
func (p *Plugin) config(ctx context.Context, conf *NetConf) (*Config, SettingsSource, error) {
	src := p.source(conf)
	defs, err := src.Defaults(ctx)
	if err != nil {
		return nil, nil, types.NewError(types.ErrTryAgainLater, "failed to get coordinator defaults from the node agent", err.Error())
	}
	base := Settings{}
	if defs != nil {
		base = *defs
	}
	cfg, err := Resolve(Merge(base, conf.Settings))
	if err != nil {
		return nil, nil, err
	}
	return cfg, src, nil
}

func prevResult(conf *NetConf) (*current.Result, error) {
	if conf.RawPrevResult == nil {
		return nil, invalidConfig("missing prevResult: the coordinator must be chained after a plugin that returns a result")
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, invalidConfig("failed to parse prevResult: %v", err)
	}
	res, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, invalidConfig("failed to convert prevResult to version %s: %v", current.ImplementedSpecVersion, err)
	}
	return res, nil
}

// plan gathers everything and builds the plan for args.
func (p *Plugin) plan(ctx context.Context, args *skel.CmdArgs, conf *NetConf, cfg *Config, src SettingsSource, res *current.Result) (*Planned, error) {
	namespace, name, err := podArgs(args.Args)
	if err != nil {
		return nil, err
	}
	pod, err := src.Pod(ctx, namespace, name)
	if err != nil {
		return nil, types.NewError(types.ErrTryAgainLater, fmt.Sprintf("failed to get pod %s/%s from the node agent", namespace, name), err.Error())
	}
	podFacts, err := routing.InspectPod(args.Netns)
	if err != nil {
		return nil, err
	}
	// Of the node's links only the node ends of the pod's veths matter.
	var peers []int
	for _, l := range podFacts.Links {
		if l.PeerIndex != 0 {
			peers = append(peers, l.PeerIndex)
		}
	}
	hostFacts, err := routing.InspectHost(peers...)
	if err != nil {
		return nil, err
	}
	return BuildPlan(PlanInput{
		ContainerID: args.ContainerID, NetNS: args.Netns, IfName: args.IfName,
		Result: res, Config: cfg, Pod: pod, PodFacts: podFacts, HostFacts: hostFacts, HostLockFile: hostLockFile(conf),
	})
}

// serve runs one CNI command with its config parsed and its logger set up,
// and logs the command's failure once, here.
func (p *Plugin) serve(args *skel.CmdArgs, cmd string, do func(*run, *skel.CmdArgs) error) error {
	r, err := p.start(args, cmd)
	if err != nil {
		return err
	}
	defer r.done()
	if err := do(r, args); err != nil {
		r.log.Error(cmd+" failed", "error", err)
		return err
	}
	return nil
}

// Add implements CNI ADD.
func (p *Plugin) Add(args *skel.CmdArgs) error { return p.serve(args, "ADD", p.add) }

// prepare reads the previous result and the settings and plans the pod's
// routing, for ADD and CHECK; planned is nil in mode disabled.
func (p *Plugin) prepare(ctx context.Context, r *run, args *skel.CmdArgs) (res *current.Result, src SettingsSource, planned *Planned, err error) {
	if res, err = prevResult(r.conf); err != nil {
		return nil, nil, nil, err
	}
	cfg, src, err := p.config(ctx, r.conf)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Mode == ModeDisabled {
		return res, src, nil, nil
	}
	planned, err = p.plan(ctx, args, r.conf, cfg, src, res)
	return res, src, planned, err
}

func (p *Plugin) add(r *run, args *skel.CmdArgs) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*agentTimeout)
	defer cancel()
	res, src, planned, err := p.prepare(ctx, r, args)
	if err != nil {
		return err
	}
	if planned == nil {
		r.log.Info("mode disabled: passing the previous result through")
		return types.PrintResult(res, r.conf.CNIVersion)
	}
	// prepare: reading the settings, the pod and both namespaces, and
	// planning; what follows is probing and programming.
	r.log.Info("planned", "mode", planned.Mode, "defaultRouteNIC", planned.DefaultNIC,
		"podRoutes", len(planned.Plan.Pod.Routes), "hostRoutes", len(planned.Plan.Host.Routes), "prepare", time.Since(start))
	if err := routing.RunProbes(args.Netns, planned.Plan.Probes, p.Probes); err != nil {
		var conflict *routing.ConflictError
		var unreachable *routing.GatewayUnreachableError
		switch {
		case errors.As(err, &conflict):
			return p.conflictError(ctx, r, src, args, conflict)
		case errors.As(err, &unreachable):
			return types.NewError(ErrCodeGatewayUnreachable, unreachable.Error(), "")
		}
		return err
	}
	if err := routing.Apply(planned.Plan); err != nil {
		return err
	}
	if err := routing.Announce(args.Netns, planned.Plan.Announcements); err != nil {
		r.log.Warn("failed to announce addresses", "error", err)
	}
	res.Routes = planned.ResultRoutes
	if planned.MAC != nil {
		for _, itf := range res.Interfaces {
			if itf.Name == args.IfName && itf.Sandbox != "" {
				itf.Mac = planned.MAC.String()
			}
		}
	}
	return types.PrintResult(res, r.conf.CNIVersion)
}

// ConflictReporter is implemented by settings sources that can tell the
// IPAM side about an address the coordinator refused (the node agent).
type ConflictReporter interface {
	ReportConflict(ctx context.Context, rep *nodeapi.ConflictReport) (*nodeapi.ConflictResult, error)
}

// conflictError reports a detected address conflict to the node agent, so
// the address goes back to the pool and the runtime's retry gets another
// one, and returns the CNI error (code 150) naming the address and its
// owner. Reporting is best effort: the error is returned either way.
func (p *Plugin) conflictError(ctx context.Context, r *run, src SettingsSource, args *skel.CmdArgs, c *routing.ConflictError) error {
	details := "release the address and allocate another one"
	reporter, ok := src.(ConflictReporter)
	if !ok {
		return types.NewError(ErrCodeIPConflict, c.Error(), details)
	}
	namespace, name, _ := podArgs(args.Args)
	rep := &nodeapi.ConflictReport{
		PodNamespace: namespace, PodName: name, PodUID: podUIDArg(args.Args), ContainerID: args.ContainerID,
		IfName: args.IfName, Address: c.IP.String(), MAC: c.MAC.String(),
	}
	res, err := reporter.ReportConflict(ctx, rep)
	switch {
	case err != nil:
		r.log.Warn("failed to report the address conflict to the node agent", "address", rep.Address, "mac", rep.MAC, "error", err)
	case res.Action == nodeapi.ConflictReleased:
		details = "the address was released; the next attempt gets another one"
	case res.Action == nodeapi.ConflictKept:
		details = "the address is a StatefulSet replica's fixed address and is kept: free it on the network"
	}
	if err == nil {
		r.log.Info("reported the address conflict to the node agent", "address", rep.Address, "mac", rep.MAC, "action", res.Action)
	}
	return types.NewError(ErrCodeIPConflict, c.Error(), details)
}

// Check implements CNI CHECK: the pod and the node still have the planned
// state.
func (p *Plugin) Check(args *skel.CmdArgs) error { return p.serve(args, "CHECK", p.check) }

func (p *Plugin) check(r *run, args *skel.CmdArgs) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*agentTimeout)
	defer cancel()
	_, _, planned, err := p.prepare(ctx, r, args)
	if err != nil || planned == nil {
		return err
	}
	if err := routing.Check(planned.Plan); err != nil {
		return fmt.Errorf("failed to check interface %q: %w", args.IfName, err)
	}
	return nil
}

// Del implements CNI DEL. It is idempotent and succeeds when the pod
// namespace is already gone.
func (p *Plugin) Del(args *skel.CmdArgs) error { return p.serve(args, "DEL", p.del) }

func (p *Plugin) del(r *run, args *skel.CmdArgs) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*agentTimeout)
	defer cancel()
	cfg, err := p.cleanupConfig(ctx, r)
	if err != nil {
		return err
	}
	if cfg.Mode == ModeDisabled {
		return nil
	}
	var res *current.Result
	if r.conf.RawPrevResult != nil {
		if res, err = prevResult(r.conf); err != nil {
			r.log.Warn("ignoring unreadable prevResult", "error", err)
			res = nil
		}
	}
	var podFacts *routing.PodFacts
	if args.Netns != "" {
		if podFacts, err = routing.InspectPod(args.Netns); err != nil {
			if !errors.Is(err, routing.ErrNetNSNotFound) {
				r.log.Warn("pod namespace unreadable, cleaning the node side only", "error", err)
			}
			podFacts = nil
		}
	}
	t := BuildTeardown(TeardownInput{
		ContainerID: args.ContainerID, NetNS: args.Netns, IfName: args.IfName,
		Result: res, Config: cfg, PodFacts: podFacts, HostLockFile: hostLockFile(r.conf),
	})
	return routing.RunTeardown(t)
}

// cleanupConfig is the configuration for DEL and GC: without the agent they
// still clean up, with the local settings.
func (p *Plugin) cleanupConfig(ctx context.Context, r *run) (*Config, error) {
	cfg, _, err := p.config(ctx, r.conf)
	if err == nil {
		return cfg, nil
	}
	var terr *types.Error
	if !errors.As(err, &terr) || terr.Code != types.ErrTryAgainLater {
		return nil, err
	}
	r.log.Warn("node agent unavailable, cleaning up with local settings", "error", err)
	return Resolve(r.conf.Settings)
}

func hostLockFile(conf *NetConf) string {
	if conf.HostLockFile != "" {
		return conf.HostLockFile
	}
	return DefaultHostLockFile
}

// Status implements CNI STATUS: the plugin has no state of its own and is
// always ready.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	if _, err := ParseNetConf(args.StdinData); err != nil {
		return err
	}
	return nil
}

// GC implements CNI GC. Everything ADD creates on the node hangs off pod
// links and goes with them; what can outlive them is the node's
// "lookup hostRuleTable" rule, removed here once the table is empty.
func (p *Plugin) GC(args *skel.CmdArgs) error { return p.serve(args, "GC", p.gc) }

func (p *Plugin) gc(r *run, _ *skel.CmdArgs) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*agentTimeout)
	defer cancel()
	cfg, err := p.cleanupConfig(ctx, r)
	if err != nil {
		return err
	}
	t := &routing.Teardown{HostTable: cfg.HostRuleTable, HostLockFile: hostLockFile(r.conf)}
	for _, f := range families {
		t.HostRules = append(t.HostRules, routing.Rule{Family: f, Table: cfg.HostRuleTable, Priority: HostRulePriority})
	}
	return routing.RunTeardown(t)
}
