package agent

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// Reasons of the Events spindle-agent records. They are stable: alerts and
// scripts may match on them (docs/events.md lists them).
const (
	// EventAllocationFailed (Warning, on the pod): an interface got no
	// address; the message names every candidate pool and why it was
	// refused.
	EventAllocationFailed = "AllocationFailed"
	// EventWaitingForPool (Normal, on the pod): the pool the pod's
	// application gets from a SpiderSubnet is not carved yet; the pod
	// starts once it is.
	EventWaitingForPool = "WaitingForPool"
	// EventRequestedAddressHeld (Warning, on the pod): the fixed address or
	// MAC the pod asks for is held by another pod.
	EventRequestedAddressHeld = "RequestedAddressHeld"
	// EventPoolExhausted (Warning, on the pool): a pod found every
	// candidate pool full; recorded on each of them.
	EventPoolExhausted = "PoolExhausted"
	// EventAddressConflict (Warning, on the pod): the coordinator found the
	// pod's address answering from another machine; the address was
	// released and quarantined, or kept (a StatefulSet replica's).
	EventAddressConflict = "AddressConflict"
	// EventAddressRebound (Normal, on the pod): a StatefulSet replica or a
	// virtual machine's launcher pod took over the addresses of its
	// previous incarnation.
	EventAddressRebound = "AddressRebound"
)

// eventAction is the action of the agent's events (events.k8s.io).
const eventAction = "Allocate"

// startEvents sends the agent's events to the API server until ctx is
// done. Recording never blocks an allocation: the broadcaster queues them
// and drops what it cannot send.
func (a *Agent) startEvents(ctx context.Context, restCfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("failed to create the events client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(ctx.Done())
	a.recorder = b.NewRecorder(Scheme(), "spindle.spidernet.io/agent")
	return nil
}

func podRef(namespace, name, uid string) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: namespace, Name: name, UID: types.UID(uid)}
}

// poolRef refers to pool name with its UID from the agent's cache: `kubectl
// describe sp` finds a pool's events by UID, so an event without it would be
// invisible there.
func (a *Agent) poolRef(ctx context.Context, name string) *corev1.ObjectReference {
	ref := &corev1.ObjectReference{APIVersion: v2beta1.GroupVersion.String(), Kind: "SpiderIPPool", Name: name}
	if a.engine != nil {
		if _, pool, err := a.engine.Layout(ctx, name); err == nil && pool != nil {
			ref.UID = pool.UID
		}
	}
	return ref
}

func (a *Agent) event(regarding *corev1.ObjectReference, typ, reason, format string, args ...any) {
	if a.recorder == nil {
		return
	}
	a.recorder.Eventf(regarding, nil, typ, reason, eventAction, format, args...)
}

// addEvent records why an ADD failed on the pod, and on every pool that
// was full. Failures of the agent itself (not ready, the API server) are
// left to its log and metrics: they say nothing about the pod.
func (a *Agent) addEvent(ctx context.Context, req *nodeapi.Request, err error) {
	if req.PodNamespace == "" || req.PodName == "" {
		return
	}
	pod := podRef(req.PodNamespace, req.PodName, req.PodUID)
	msg := fmt.Sprintf("interface %s: %s", req.IfName, err.Error())
	e := nodeapi.AsErrorResponse(err)
	switch nodeapi.ReasonOf(err) {
	case nodeapi.ReasonAPI, nodeapi.ReasonInternal, nodeapi.ReasonNotOwned:
		return
	case nodeapi.ReasonFixedUnavailable:
		a.event(pod, corev1.EventTypeWarning, EventRequestedAddressHeld, "%s", msg)
		return
	case nodeapi.ReasonNoPool:
		if e.Code == nodeapi.CodeTryAgainLater {
			a.event(pod, corev1.EventTypeNormal, EventWaitingForPool, "%s", msg)
			return
		}
	case nodeapi.ReasonExhausted:
		for _, p := range e.Pools {
			a.event(a.poolRef(ctx, p), corev1.EventTypeWarning, EventPoolExhausted, "pod %s/%s found no free address for interface %s here (candidates: %s)",
				req.PodNamespace, req.PodName, req.IfName, strings.Join(e.Pools, ", "))
		}
	}
	a.event(pod, corev1.EventTypeWarning, EventAllocationFailed, "%s", msg)
}
