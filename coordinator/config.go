// Package coordinator implements the coordinator chained CNI plugin: it reads
// the previous plugin's result, the cluster-wide coordinator settings and the
// pod's annotations, and builds a routing plan that makes a multi-NIC pod's
// routing coherent. It never touches netlink itself: package routing
// inspects and applies.
package coordinator

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Mode says how the coordinator reaches the node from the pod.
type Mode string

// Modes.
const (
	// ModeUnderlay: the pod's NICs are underlay NICs (macvlan...); a veth
	// pair veth0 <-> host carries node and service traffic.
	ModeUnderlay Mode = "underlay"
	// ModeOverlay: the pod's first NIC belongs to an overlay CNI and carries
	// node and service traffic; the NIC being added is an extra one.
	ModeOverlay Mode = "overlay"
	// ModeAuto: underlay when the NIC being added is the first NIC or the
	// pod already has veth0, overlay otherwise.
	ModeAuto Mode = "auto"
	// ModeDisabled passes the previous result through untouched.
	ModeDisabled Mode = "disabled"
)

// Built-in defaults, used when neither the plugin configuration nor the
// agent's SpiderCoordinator settings give a value.
const (
	DefaultMode          = ModeAuto
	DefaultHostRuleTable = 500
	DefaultPodRPFilter   = 0
	DefaultAgentSocket   = "/var/run/spindle/agent.sock"
	DefaultHostLockFile  = "/var/run/spindle/coordinator.lock"
	// FirstNIC is the name of the pod's first NIC.
	FirstNIC = "eth0"
	// PodVethName is the pod end of the underlay veth pair.
	PodVethName = "veth0"
	// DefaultRouteNICAnnotation names the pod NIC that carries the default
	// route.
	DefaultRouteNICAnnotation = "ipam.spidernet.io/default-route-nic"
)

// DefaultHijackCIDR is routed over the host path unless configured.
var DefaultHijackCIDR = []string{"169.254.0.0/16"}

// Settings are the coordinator settings, as found in the plugin
// configuration and in the SpiderCoordinator "default" object served by the
// node agent. Unset (nil/empty) fields fall through to the next source. JSON
// names are those of SpiderCoordinator's spec.
type Settings struct {
	Mode               Mode     `json:"mode,omitempty"`
	PodDefaultRouteNIC string   `json:"podDefaultRouteNIC,omitempty"`
	TunePodRoutes      *bool    `json:"tunePodRoutes,omitempty"`
	HijackCIDR         []string `json:"hijackCIDR,omitempty"`
	HostRuleTable      *int     `json:"hostRuleTable,omitempty"`
	PodMACPrefix       string   `json:"podMACPrefix,omitempty"`
	PodRPFilter        *int     `json:"podRPFilter,omitempty"`
	TxQueueLen         *int     `json:"txQueueLen,omitempty"`
	VethLinkAddress    string   `json:"vethLinkAddress,omitempty"`
	VethMTU            *int     `json:"vethMTU,omitempty"`
	DetectIPConflict   *bool    `json:"detectIPConflict,omitempty"`
	DetectGateway      *bool    `json:"detectGateway,omitempty"`
	ServiceCIDR        []string `json:"serviceCIDR,omitempty"`
	OverlayPodCIDR     []string `json:"overlayPodCIDR,omitempty"`
}

// NetConf is the plugin configuration.
type NetConf struct {
	types.NetConf
	Settings
	LogFile     string `json:"logFile,omitempty"`
	LogLevel    string `json:"logLevel,omitempty"`
	AgentSocket string `json:"agentSocket,omitempty"`
	// HostLockFile serialises node-side changes between concurrent runs.
	HostLockFile string `json:"hostLockFile,omitempty"`
}

// Config is the effective, validated configuration.
type Config struct {
	Mode               Mode
	PodDefaultRouteNIC string
	TunePodRoutes      bool
	HijackCIDR         []*net.IPNet
	HostRuleTable      int
	// PodMACPrefix is nil or two bytes.
	PodMACPrefix net.HardwareAddr
	// PodRPFilter is -1 to leave rp_filter alone, else 0, 1 or 2.
	PodRPFilter      int
	TxQueueLen       int
	VethLinkAddress  *net.IPNet
	VethMTU          int
	DetectIPConflict bool
	DetectGateway    bool
	ServiceCIDR      []*net.IPNet
	OverlayPodCIDR   []*net.IPNet
}

// ParseNetConf unmarshals the plugin configuration. It does no I/O.
func ParseNetConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, invalidConfig("failed to parse network configuration: %v", err)
	}
	switch conf.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, invalidConfig("invalid field \"logLevel\": %q is not one of debug, info, warn, error", conf.LogLevel)
	}
	return conf, nil
}

// Merge returns settings where every field set in over wins over base.
func Merge(base, over Settings) Settings {
	out := base
	if over.Mode != "" {
		out.Mode = over.Mode
	}
	if over.PodDefaultRouteNIC != "" {
		out.PodDefaultRouteNIC = over.PodDefaultRouteNIC
	}
	if over.TunePodRoutes != nil {
		out.TunePodRoutes = over.TunePodRoutes
	}
	if len(over.HijackCIDR) > 0 {
		out.HijackCIDR = over.HijackCIDR
	}
	if over.HostRuleTable != nil {
		out.HostRuleTable = over.HostRuleTable
	}
	if over.PodMACPrefix != "" {
		out.PodMACPrefix = over.PodMACPrefix
	}
	if over.PodRPFilter != nil {
		out.PodRPFilter = over.PodRPFilter
	}
	if over.TxQueueLen != nil {
		out.TxQueueLen = over.TxQueueLen
	}
	if over.VethLinkAddress != "" {
		out.VethLinkAddress = over.VethLinkAddress
	}
	if over.VethMTU != nil {
		out.VethMTU = over.VethMTU
	}
	if over.DetectIPConflict != nil {
		out.DetectIPConflict = over.DetectIPConflict
	}
	if over.DetectGateway != nil {
		out.DetectGateway = over.DetectGateway
	}
	if len(over.ServiceCIDR) > 0 {
		out.ServiceCIDR = over.ServiceCIDR
	}
	if len(over.OverlayPodCIDR) > 0 {
		out.OverlayPodCIDR = over.OverlayPodCIDR
	}
	return out
}

// Resolve validates merged settings and fills in built-in defaults. Every
// error names the offending field.
func Resolve(s Settings) (*Config, error) {
	c := &Config{
		Mode:               s.Mode,
		PodDefaultRouteNIC: s.PodDefaultRouteNIC,
		TunePodRoutes:      true,
		HostRuleTable:      DefaultHostRuleTable,
		PodRPFilter:        DefaultPodRPFilter,
	}
	switch c.Mode {
	case "":
		c.Mode = DefaultMode
	case "disable":
		c.Mode = ModeDisabled
	case ModeUnderlay, ModeOverlay, ModeAuto, ModeDisabled:
	default:
		return nil, invalidConfig("invalid field \"mode\": %q is not one of underlay, overlay, auto, disabled", s.Mode)
	}
	if c.PodDefaultRouteNIC != "" && !validIfName(c.PodDefaultRouteNIC) {
		return nil, invalidConfig("invalid field \"podDefaultRouteNIC\": %q is not an interface name", c.PodDefaultRouteNIC)
	}
	if s.TunePodRoutes != nil {
		c.TunePodRoutes = *s.TunePodRoutes
	}
	hijack := s.HijackCIDR
	if len(hijack) == 0 {
		hijack = DefaultHijackCIDR
	}
	var err error
	if c.HijackCIDR, err = parseCIDRs("hijackCIDR", hijack); err != nil {
		return nil, err
	}
	if c.ServiceCIDR, err = parseCIDRs("serviceCIDR", s.ServiceCIDR); err != nil {
		return nil, err
	}
	if c.OverlayPodCIDR, err = parseCIDRs("overlayPodCIDR", s.OverlayPodCIDR); err != nil {
		return nil, err
	}
	if s.HostRuleTable != nil {
		c.HostRuleTable = *s.HostRuleTable
		if c.HostRuleTable < 1 || c.HostRuleTable >= 252 && c.HostRuleTable <= 255 || c.HostRuleTable > 1<<31-1 {
			return nil, invalidConfig("invalid field \"hostRuleTable\": %d is not a usable route table (1-251 or 256 and above)", c.HostRuleTable)
		}
		if c.HostRuleTable >= tableBase && c.HostRuleTable < tableBase+maxNICNumber {
			return nil, invalidConfig("invalid field \"hostRuleTable\": %d collides with the per-NIC tables %d-%d", c.HostRuleTable, tableBase, tableBase+maxNICNumber-1)
		}
	}
	if s.PodMACPrefix != "" {
		if c.PodMACPrefix, err = parseMACPrefix(s.PodMACPrefix); err != nil {
			return nil, err
		}
	}
	if s.PodRPFilter != nil {
		c.PodRPFilter = *s.PodRPFilter
		if c.PodRPFilter < -1 || c.PodRPFilter > 2 {
			return nil, invalidConfig("invalid field \"podRPFilter\": %d is not -1 (leave alone), 0, 1 or 2", c.PodRPFilter)
		}
	}
	if s.TxQueueLen != nil {
		c.TxQueueLen = *s.TxQueueLen
		if c.TxQueueLen < 0 {
			return nil, invalidConfig("invalid field \"txQueueLen\": %d is negative", c.TxQueueLen)
		}
	}
	if s.VethMTU != nil {
		c.VethMTU = *s.VethMTU
		if c.VethMTU != 0 && (c.VethMTU < 576 || c.VethMTU > 65535) {
			return nil, invalidConfig("invalid field \"vethMTU\": %d is outside 576-65535 (0: the pod's first NIC's MTU)", c.VethMTU)
		}
	}
	if s.VethLinkAddress != "" {
		ip, n, err := net.ParseCIDR(s.VethLinkAddress)
		if err != nil {
			ip = net.ParseIP(s.VethLinkAddress)
			if ip == nil {
				return nil, invalidConfig("invalid field \"vethLinkAddress\": %q is not an IP address", s.VethLinkAddress)
			}
		} else if ones, _ := n.Mask.Size(); ip.To4() != nil && ones != 32 {
			return nil, invalidConfig("invalid field \"vethLinkAddress\": %q must be a single address", s.VethLinkAddress)
		}
		if ip.To4() == nil || !ip.IsLinkLocalUnicast() {
			return nil, invalidConfig("invalid field \"vethLinkAddress\": %q is not an IPv4 link-local address (169.254.0.0/16)", s.VethLinkAddress)
		}
		c.VethLinkAddress = &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)}
	}
	if s.DetectIPConflict != nil {
		c.DetectIPConflict = *s.DetectIPConflict
	}
	if s.DetectGateway != nil {
		c.DetectGateway = *s.DetectGateway
	}
	return c, nil
}

func parseCIDRs(field string, in []string) ([]*net.IPNet, error) {
	out := make([]*net.IPNet, 0, len(in))
	for _, s := range in {
		_, n, err := net.ParseCIDR(strings.TrimSpace(s))
		if err != nil {
			return nil, invalidConfig("invalid field %q: %q is not a CIDR", field, s)
		}
		if ip4 := n.IP.To4(); ip4 != nil {
			n = &net.IPNet{IP: ip4, Mask: n.Mask[len(n.Mask)-4:]}
		}
		out = append(out, n)
	}
	return out, nil
}

func parseMACPrefix(s string) (net.HardwareAddr, error) {
	var b [2]byte
	if n, err := fmt.Sscanf(s, "%02x:%02x", &b[0], &b[1]); err != nil || n != 2 || len(s) != 5 {
		return nil, invalidConfig("invalid field \"podMACPrefix\": %q is not two hex bytes like \"0a:1b\"", s)
	}
	if b[0]&1 == 1 {
		return nil, invalidConfig("invalid field \"podMACPrefix\": %q is a multicast prefix; the first byte must be even", s)
	}
	return net.HardwareAddr{b[0], b[1]}, nil
}

// validIfName accepts Linux interface names.
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n")
}

func invalidConfig(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, args...), "")
}
