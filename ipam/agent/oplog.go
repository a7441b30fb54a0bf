package agent

import (
	"time"

	"github.com/go-logr/logr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// Outcomes of a DEL in its log line.
const (
	delReleased = "released" // the addresses went back to their pools
	delKept     = "kept"     // the pod (or its StatefulSet) still needs them
	delNone     = "none"     // nothing was allocated to the interface
)

// opLine is the one line every CNI ADD and DEL leaves in the log at the
// default verbosity, success or failure.
type opLine struct {
	op        string // ADD or DEL
	req       *nodeapi.Request
	addresses []string
	pools     []string
	outcome   string // DEL only
	duration  time.Duration
	err       error
}

// withResult records what an ADD handed out.
func (l *opLine) withResult(res *nodeapi.Result) {
	if res == nil {
		return
	}
	for _, ip := range res.IPs {
		l.add(ip.Address, ip.Pool)
	}
}

// withClaims records the addresses a DEL concerned.
func (l *opLine) withClaims(claims []*v2beta1.SpiderIPClaim) {
	for _, c := range claims {
		l.add(c.Spec.Address, c.Spec.Pool)
	}
}

func (l *opLine) add(addr, pool string) {
	l.addresses = append(l.addresses, addr)
	for _, p := range l.pools {
		if p == pool {
			return
		}
	}
	l.pools = append(l.pools, pool)
}

// message and keysAndValues are the line's content.
func (l *opLine) message() string {
	if l.err != nil {
		return l.op + " failed"
	}
	return l.op
}

func (l *opLine) keysAndValues() []any {
	kv := []any{
		"pod", l.req.PodNamespace + "/" + l.req.PodName,
		"interface", l.req.IfName,
		"containerID", l.req.ContainerID,
		"addresses", nonNil(l.addresses),
		"pools", nonNil(l.pools),
	}
	if l.outcome != "" {
		kv = append(kv, "outcome", l.outcome)
	}
	return append(kv, "duration", l.duration.Round(time.Microsecond).String())
}

// log writes the line: Info on success, Error (with the error) on failure.
func (l *opLine) log(log logr.Logger) {
	if l.err != nil {
		log.Error(l.err, l.message(), l.keysAndValues()...)
		return
	}
	log.Info(l.message(), l.keysAndValues()...)
}

// nonNil renders an empty list as [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
