package cniplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/spindle-net/spindle/ipam/inline"
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
	// ReadFile reads ipam.resolvConf; defaults to os.ReadFile (tests).
	ReadFile func(string) ([]byte, error)
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

func (p *Plugin) request(args *skel.CmdArgs, withInline bool) (*NetConf, *nodeapi.Request, error) {
	conf, err := loadConf(args.StdinData, withInline)
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
	r := &nodeapi.Request{
		ContainerID:      containerID,
		Netns:            args.Netns,
		IfName:           args.IfName,
		PodNamespace:     pa.Namespace,
		PodName:          pa.Name,
		PodUID:           pa.UID,
		NetworkName:      conf.Name,
		DefaultIPv4Pools: conf.IPAM.DefaultIPv4Pools,
		DefaultIPv6Pools: conf.IPAM.DefaultIPv6Pools,
	}
	if conf.IPAM.Inline != nil {
		r.InlineIPv4Pools, r.InlineIPv6Pools = conf.IPAM.Inline.Families()
	}
	return conf, r, nil
}

// Add allocates through the agent and prints the result.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, req, err := p.request(args, true)
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
	dns, err := p.dns(conf)
	if err != nil {
		return err
	}
	if dns != nil {
		result.DNS = *dns
	}
	print := p.Print
	if print == nil {
		print = types.PrintResult
	}
	return print(result, conf.CNIVersion)
}

// dns is the result's dns field the configuration gives: its "dns" object,
// else its "resolvConf" file read now; nil when it gives none (the pools'
// spec.dns, which the agent answers with, then applies).
func (p *Plugin) dns(conf *NetConf) (*types.DNS, error) {
	if d := conf.IPAM.DNS; !d.Empty() {
		return &types.DNS{Nameservers: d.Nameservers, Domain: d.Domain, Search: d.Search, Options: d.Options}, nil
	}
	if conf.IPAM.ResolvConf == "" {
		return nil, nil
	}
	readFile := p.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	data, err := readFile(conf.IPAM.ResolvConf)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("failed to read ipam.resolvConf %q of network %q", conf.IPAM.ResolvConf, conf.Name),
			err.Error()+"; create the file on every node or remove resolvConf from the configuration")
	}
	d := inline.ParseResolvConf(data)
	return &types.DNS{Nameservers: d.Nameservers, Domain: d.Domain, Search: d.Search, Options: d.Options}, nil
}

// Del releases through the agent. It fails (so the runtime retries) whenever
// the agent could not confirm the release.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, req, err := p.request(args, false)
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
	conf, req, err := p.request(args, true)
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
	conf, err := loadConf(args.StdinData, false)
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
	conf, err := loadConf(args.StdinData, false)
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
	if d := res.DNS; d != nil {
		out.DNS = types.DNS{Nameservers: d.Nameservers, Domain: d.Domain, Search: d.Search, Options: d.Options}
	}
	return out, nil
}
