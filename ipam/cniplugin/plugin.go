package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// About is the banner the VERSION command prints (with the build version).
const About = "spiderpool IPAM CNI plugin (Spindle)"

// Plugin implements the CNI commands. Stdout receives the CNI result; nothing
// else is ever written there.
type Plugin struct {
	// Client, when set, overrides the socket from the configuration (tests).
	Client *nodeapi.Client
	// Print writes the result; defaults to types.PrintResult (stdout).
	Print func(types.Result, string) error
}

// Funcs returns the skel dispatch table.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

// Main runs the plugin as a CNI executable; about is what VERSION prints.
func Main(about string) {
	p := &Plugin{}
	skel.PluginMainFuncs(p.Funcs(), version.All, about)
}

func (p *Plugin) client(conf *NetConf) *nodeapi.Client {
	if p.Client != nil {
		return p.Client
	}
	return nodeapi.New(conf.IPAM.Socket)
}

func (p *Plugin) request(args *skel.CmdArgs) (*NetConf, *nodeapi.Request, error) {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return nil, nil, err
	}
	pa, err := ParseArgs(args.Args)
	if err != nil {
		return nil, nil, err
	}
	containerID := args.ContainerID
	if containerID == "" {
		containerID = pa.ContainerID
	}
	return conf, &nodeapi.Request{
		ContainerID:      containerID,
		Netns:            args.Netns,
		IfName:           args.IfName,
		PodNamespace:     pa.Namespace,
		PodName:          pa.Name,
		PodUID:           pa.UID,
		NetworkName:      conf.Name,
		DefaultIPv4Pools: conf.IPAM.DefaultIPv4Pools,
		DefaultIPv6Pools: conf.IPAM.DefaultIPv6Pools,
	}, nil
}

// Add allocates through the agent and prints the result.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, req, err := p.request(args)
	if err != nil {
		return err
	}
	res, err := p.client(conf).Add(context.Background(), req)
	if err != nil {
		return cniError(err)
	}
	result, err := ToCNIResult(res)
	if err != nil {
		return types.NewError(types.ErrInternal, "failed to convert the agent's answer into a CNI result", err.Error())
	}
	print := p.Print
	if print == nil {
		print = types.PrintResult
	}
	return print(result, conf.CNIVersion)
}

// Del releases through the agent. It fails (so the runtime retries) whenever
// the agent could not confirm the release.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, req, err := p.request(args)
	if err != nil {
		var te *types.Error
		// Without pod identity there is nothing this plugin could have
		// allocated; a DEL for it is a no-op by the CNI spec.
		if errors.As(err, &te) && te.Code == types.ErrInvalidEnvironmentVariables {
			return nil
		}
		return err
	}
	return cniError(p.client(conf).Del(context.Background(), req))
}

// Check verifies that the agent still holds the addresses of prevResult.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	conf, req, err := p.request(args)
	if err != nil {
		return err
	}
	res, err := p.client(conf).Check(context.Background(), req)
	if err != nil {
		return cniError(err)
	}
	if conf.RawPrevResult == nil {
		return nil
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "failed to parse prevResult", err.Error())
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "failed to convert prevResult", err.Error())
	}
	have := map[string]bool{}
	for _, ip := range res.IPs {
		have[ip.Address] = true
	}
	for _, ip := range prev.IPs {
		if !have[ip.Address.String()] {
			return types.NewError(types.ErrInternal, fmt.Sprintf("address %s of interface %q is no longer allocated to pod %s/%s", ip.Address.String(), req.IfName, req.PodNamespace, req.PodName), "")
		}
	}
	return nil
}

// GC forwards the runtime's list of valid attachments to the agent.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	req := &nodeapi.GCRequest{NetworkName: conf.Name, ValidAttachments: []nodeapi.Attachment{}}
	for _, a := range conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, nodeapi.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	_, err = p.client(conf).GC(context.Background(), req)
	return cniError(err)
}

// Status reports whether the agent is ready.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := LoadConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := p.client(conf).Healthz(context.Background()); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "spindle-agent is not ready", err.Error())
	}
	return nil
}

// cniError turns an agent error into a *types.Error keeping its code.
func cniError(err error) error {
	if err == nil {
		return nil
	}
	var e *nodeapi.ErrorResponse
	if errors.As(err, &e) {
		return types.NewError(e.Code, e.Msg, e.Details)
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}

// ToCNIResult converts the agent's answer into a CNI 1.0 result.
func ToCNIResult(res *nodeapi.Result) (*current.Result, error) {
	out := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, ip := range res.IPs {
		addr, ipnet, err := net.ParseCIDR(ip.Address)
		if err != nil {
			return nil, fmt.Errorf("failed to parse address %q: %w", ip.Address, err)
		}
		ipnet.IP = addr
		cfg := &current.IPConfig{Address: *ipnet}
		if ip.Gateway != "" {
			if cfg.Gateway = net.ParseIP(ip.Gateway); cfg.Gateway == nil {
				return nil, fmt.Errorf("failed to parse gateway %q", ip.Gateway)
			}
		}
		out.IPs = append(out.IPs, cfg)
	}
	for _, r := range res.Routes {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("failed to parse route destination %q: %w", r.Dst, err)
		}
		route := &types.Route{Dst: *dst}
		if r.GW != "" {
			if route.GW = net.ParseIP(r.GW); route.GW == nil {
				return nil, fmt.Errorf("failed to parse route gateway %q", r.GW)
			}
		}
		out.Routes = append(out.Routes, route)
	}
	return out, nil
}
