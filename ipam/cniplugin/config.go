// Package cniplugin is the spiderpool IPAM CNI plugin: it parses the network
// configuration and CNI_ARGS, forwards the request to the node agent over its
// unix socket and prints the CNI result. It holds no allocation logic.
package cniplugin

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// PluginType is the ipam.type this plugin answers to.
const PluginType = "spiderpool"

// NetConf is the part of the network configuration the plugin reads.
type NetConf struct {
	types.PluginConf
	// IPAM shadows PluginConf.IPAM with this plugin's fields.
	IPAM *IPAMConf `json:"ipam"`
}

// IPAMConf is the "ipam" object.
type IPAMConf struct {
	Type string `json:"type"`
	// DefaultIPv4Pools / DefaultIPv6Pools are candidate pools used when
	// neither the pod nor its namespace names any.
	DefaultIPv4Pools []string `json:"default_ipv4_ippool,omitempty"`
	DefaultIPv6Pools []string `json:"default_ipv6_ippool,omitempty"`
	// Socket is the agent's unix socket; "ipam_unix_socket_path" is accepted
	// as an alias so existing configurations keep working.
	Socket       string `json:"socket,omitempty"`
	SocketCompat string `json:"ipam_unix_socket_path,omitempty"`
	// DNS and ResolvConf fill the result's dns field: DNS as written,
	// else the nameserver, domain, search and options lines of the file
	// ResolvConf on the node.
	DNS        *inline.DNS `json:"dns,omitempty"`
	ResolvConf string      `json:"resolvConf,omitempty"`

	// Inline is the network's own ranges (host-local, whereabouts or
	// kube-ipam form); nil when the configuration carries none.
	Inline *inline.Config `json:"-"`
}

// LoadConf parses and validates the network configuration from stdin. It does
// no I/O. Errors are *types.Error with code 7 (invalid network config).
func LoadConf(data []byte) (*NetConf, error) {
	return loadConf(data, true)
}

// loadConf is LoadConf; without withInline the inline ranges are not read
// (DEL, GC and STATUS need none, and must work for a configuration whose
// ranges ADD refused).
func loadConf(data []byte, withInline bool) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to parse network configuration", err.Error())
	}
	if conf.IPAM == nil {
		return nil, invalidConf(`missing "ipam" object; set "ipam": {"type": "spiderpool"}`)
	}
	if conf.IPAM.Type != PluginType {
		return nil, invalidConf(fmt.Sprintf("ipam.type is %q, want %q", conf.IPAM.Type, PluginType))
	}
	var raw struct {
		IPAM json.RawMessage `json:"ipam"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "failed to parse network configuration", err.Error())
	}
	if withInline {
		in, err := inline.Parse(raw.IPAM)
		if err != nil {
			return nil, invalidConf(fmt.Sprintf("network %q (its NetworkAttachmentDefinition's spec.config): %v", conf.Name, err))
		}
		conf.IPAM.Inline = in
	}
	if conf.IPAM.ResolvConf != "" && !strings.HasPrefix(conf.IPAM.ResolvConf, "/") {
		return nil, invalidConf(fmt.Sprintf("network %q: ipam.resolvConf %q must be an absolute path of a file on the node", conf.Name, conf.IPAM.ResolvConf))
	}
	if conf.IPAM.Socket == "" {
		conf.IPAM.Socket = conf.IPAM.SocketCompat
	}
	if conf.IPAM.Socket == "" {
		conf.IPAM.Socket = nodeapi.DefaultSocket
	}
	if !strings.HasPrefix(conf.IPAM.Socket, "/") {
		return nil, invalidConf(fmt.Sprintf("ipam.socket %q must be an absolute path", conf.IPAM.Socket))
	}
	for _, f := range []struct {
		key   string
		pools []string
	}{{"default_ipv4_ippool", conf.IPAM.DefaultIPv4Pools}, {"default_ipv6_ippool", conf.IPAM.DefaultIPv6Pools}} {
		for i, p := range f.pools {
			if msg := validPoolName(p); msg != "" {
				return nil, invalidConf(fmt.Sprintf("ipam.%s[%d] %q is not a valid SpiderIPPool name: %s", f.key, i, p, msg))
			}
		}
	}
	return conf, nil
}

func invalidConf(msg string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "invalid spiderpool ipam configuration", msg)
}

// validPoolName checks a DNS-1123 subdomain without importing apimachinery.
func validPoolName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 253 {
		return "must be at most 253 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '-' || c == '.') && i > 0 && i < len(s)-1 {
			continue
		}
		return "must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric character"
	}
	return ""
}

// PodArgs are the Kubernetes facts the runtime passes in CNI_ARGS.
type PodArgs struct {
	Namespace   string
	Name        string
	UID         string
	ContainerID string
}

// ParseArgs reads K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID and
// K8S_POD_INFRA_CONTAINER_ID from CNI_ARGS ("K=V;K=V"). Unknown keys are
// ignored. Namespace and name are required.
func ParseArgs(args string) (*PodArgs, error) {
	pa := &PodArgs{}
	for _, kv := range strings.Split(args, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "failed to parse CNI_ARGS", fmt.Sprintf("element %q is not KEY=VALUE", kv))
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			pa.Namespace = v
		case "K8S_POD_NAME":
			pa.Name = v
		case "K8S_POD_UID":
			pa.UID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			pa.ContainerID = v
		}
	}
	if pa.Namespace == "" || pa.Name == "" {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "missing K8S_POD_NAMESPACE or K8S_POD_NAME in CNI_ARGS",
			"the spiderpool IPAM plugin serves Kubernetes pods only; the container runtime (or Multus) must pass them")
	}
	return pa, nil
}
