package plugin

import (
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Exit statuses of every subcommand.
const (
	ExitOK       = 0 // nothing wrong
	ExitFindings = 1 // findings, a refusal, or a failure talking to the cluster
	ExitUsage    = 2 // bad command line or input file
)

// exitError carries the exit status of a failed command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, msg: fmt.Sprintf(format, args...)}
}

func findingsErr(format string, args ...any) error {
	return &exitError{code: ExitFindings, msg: fmt.Sprintf(format, args...)}
}

// PodRef is a pod named NAMESPACE/NAME.
type PodRef struct{ Namespace, Name string }

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// ParsePodRef reads NAMESPACE/NAME, or NAME in defaultNamespace. Both parts
// must be valid object names (a namespace a DNS label, a pod name a DNS
// subdomain).
func ParsePodRef(s, defaultNamespace string) (PodRef, error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = defaultNamespace, s
	}
	if ns == "" {
		return PodRef{}, fmt.Errorf("pod %q: no namespace; write NAMESPACE/NAME or pass -n", s)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return PodRef{}, fmt.Errorf("pod %q: namespace %q is not a valid name: %s", s, ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return PodRef{}, fmt.Errorf("pod %q: name %q is not a valid pod name: %s", s, name, strings.Join(errs, "; "))
	}
	return PodRef{Namespace: ns, Name: name}, nil
}

// ParseAddress reads an IP address as written on the command line or in a
// claim (10.6.0.5, fd00::5, or a claim name such as
// fd00-0000-...-0005), returning it unmapped.
func ParseAddress(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("address %q: zones are not allowed", s)
		}
		return a.Unmap(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return netip.Addr{}, fmt.Errorf("address %q: give the address without prefix length (%s)", s, p.Addr())
	}
	if strings.Contains(s, "-") {
		if a, err := v2beta1.ParseClaimName(s); err == nil {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("address %q is not an IP address", s)
}
