package annotations

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Network is one network of a pod: a NetworkAttachmentDefinition and the pod
// interface it is attached as.
type Network struct {
	Namespace string
	Name      string
	// Interface is the pod interface. ParseNetworks fills in Multus' default
	// name, net<N> for the N-th (1-based) entry, when the entry names none.
	Interface string
}

// Ref returns "namespace/name", the form multusName entries are compared in.
func (n Network) Ref() string { return n.Namespace + "/" + n.Name }

// String returns the short form "namespace/name@interface".
func (n Network) String() string {
	s := n.Ref()
	if n.Interface != "" {
		s += "@" + n.Interface
	}
	return s
}

// DefaultInterfaceName is the name Multus gives the idx-th (0-based) entry of
// MultusNetworks when the entry names no interface.
func DefaultInterfaceName(idx int) string { return "net" + strconv.Itoa(idx+1) }

type networkJSON struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// ParseNetworks parses the MultusNetworks annotation in either of its forms:
// the comma-separated short form "name", "namespace/name",
// "namespace/name@interface", or the JSON list
// [{"name":"macvlan","namespace":"kube-system","interface":"data0"}] (other
// keys of the JSON form are ignored). Entries without a namespace are in
// podNamespace; entries without an interface get net<N>. An interface may
// not appear twice.
func ParseNetworks(value, podNamespace string) ([]Network, error) {
	nets, err := parseNetworkList(MultusNetworks, value, podNamespace)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]int, len(nets))
	for i := range nets {
		if nets[i].Interface == "" {
			nets[i].Interface = DefaultInterfaceName(i)
		}
		if j, dup := seen[nets[i].Interface]; dup {
			return nil, annotationError(MultusNetworks, networksWant,
				fmt.Errorf("entries %d and %d are both attached as interface %q", j, i, nets[i].Interface))
		}
		seen[nets[i].Interface] = i
	}
	return nets, nil
}

// ParseDefaultNetwork parses the MultusDefaultNetwork annotation: exactly one
// network in either form. Its Interface is left empty (the default network is
// the pod's first interface, eth0).
func ParseDefaultNetwork(value, podNamespace string) (Network, error) {
	nets, err := parseNetworkList(MultusDefaultNetwork, value, podNamespace)
	if err != nil {
		return Network{}, err
	}
	if len(nets) != 1 {
		return Network{}, annotationError(MultusDefaultNetwork, "one network such as kube-system/macvlan-conf",
			fmt.Errorf("%d networks given", len(nets)))
	}
	nets[0].Interface = ""
	return nets[0], nil
}

// FormatNetworks returns the short form of nets; ParseNetworks of the result
// returns nets.
func FormatNetworks(nets []Network) string {
	parts := make([]string, len(nets))
	for i, n := range nets {
		parts[i] = n.String()
	}
	return strings.Join(parts, ",")
}

const networksWant = `"namespace/name@interface" entries separated by commas, or a JSON list such as [{"name":"macvlan-conf","namespace":"kube-system","interface":"net1"}]`

func parseNetworkList(key, value, podNamespace string) ([]Network, error) {
	if strings.TrimSpace(value) == "" {
		return nil, annotationError(key, networksWant, errors.New("empty value"))
	}
	var nets []Network
	if strings.ContainsAny(value, `[{"`) {
		var raw []networkJSON
		if err := json.Unmarshal([]byte(value), &raw); err != nil {
			return nil, annotationError(key, networksWant, err)
		}
		for _, r := range raw {
			nets = append(nets, Network{Namespace: strings.TrimSpace(r.Namespace), Name: strings.TrimSpace(r.Name), Interface: strings.TrimSpace(r.Interface)})
		}
	} else {
		for _, item := range strings.Split(value, ",") {
			n, err := parseShortNetwork(item)
			if err != nil {
				return nil, annotationError(key, networksWant, err)
			}
			nets = append(nets, n)
		}
	}
	if len(nets) == 0 {
		return nil, annotationError(key, networksWant, errors.New("no network given"))
	}
	for i := range nets {
		n := &nets[i]
		if n.Namespace == "" {
			n.Namespace = podNamespace
		}
		if err := validObjectName("name", n.Name); err != nil {
			return nil, annotationError(key, networksWant, fmt.Errorf("entry %d: %w", i, err))
		}
		if err := validObjectName("namespace", n.Namespace); err != nil {
			return nil, annotationError(key, networksWant, fmt.Errorf("entry %d: %w", i, err))
		}
		if n.Interface != "" {
			if err := ValidInterfaceName(n.Interface); err != nil {
				return nil, annotationError(key, networksWant, fmt.Errorf("entry %d: %w", i, err))
			}
		}
	}
	return nets, nil
}

func parseShortNetwork(item string) (Network, error) {
	var n Network
	rest := strings.TrimSpace(item)
	if ns, name, ok := strings.Cut(rest, "/"); ok {
		n.Namespace, rest = strings.TrimSpace(ns), name
		if strings.Contains(rest, "/") {
			return Network{}, fmt.Errorf("entry %q has more than one '/'", item)
		}
	}
	if name, iface, ok := strings.Cut(rest, "@"); ok {
		rest, n.Interface = name, strings.TrimSpace(iface)
		if strings.Contains(iface, "@") {
			return Network{}, fmt.Errorf("entry %q has more than one '@'", item)
		}
		if n.Interface == "" {
			return Network{}, fmt.Errorf("entry %q has an empty interface after '@'", item)
		}
	}
	n.Name = strings.TrimSpace(rest)
	return n, nil
}

// validObjectName accepts Kubernetes object names: lower-case alphanumerics,
// '-' and '.', starting and ending with an alphanumeric, at most 253 bytes.
func validObjectName(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > 253 {
		return fmt.Errorf("%s %q is longer than 253 characters", what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' && c != '.' || i == 0 || i == len(s)-1) {
			return fmt.Errorf("%s %q is not a valid object name (lower-case letters, digits, '-' and '.')", what, s)
		}
	}
	return nil
}
