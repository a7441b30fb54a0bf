package agent

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/store"
)

// DefaultConflictQuarantine is how long an address released after a
// conflict report is not offered again by the agent that released it.
const DefaultConflictQuarantine = 10 * time.Minute

// Conflict handles the coordinator's report that an address of a pod's
// interface already answers from another machine. The claim must belong to
// that pod (UID) and interface. A StatefulSet replica's fixed address is
// kept (the pod stays refused until the conflict is resolved); any other
// claim is released (UID precondition) and the address quarantined, so the
// runtime's next ADD for the pod gets another address.
func (a *Agent) Conflict(ctx context.Context, rep *nodeapi.ConflictReport) (res *nodeapi.ConflictResult, err error) {
	addr, err := validateConflict(rep)
	if err != nil {
		return nil, err
	}
	if err := a.Ready(); err != nil {
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "spindle-agent is not ready", Details: err.Error()}
	}
	key := store.PodKey(rep.PodNamespace, rep.PodName)
	log := a.log.WithValues("pod", key, "interface", rep.IfName, "address", addr.String(), "mac", rep.MAC)
	defer func() {
		if err != nil {
			a.metrics.Failures.WithLabelValues("conflict", nodeapi.ReasonOf(err)).Inc()
			log.Info("conflict report failed", "error", err.Error())
		}
	}()
	unlock := a.podLocks.lock(key)
	defer unlock()

	held, err := a.podClaims(key)
	if err != nil {
		return nil, err
	}
	c := conflictClaim(held, rep, addr)
	if c == nil {
		return nil, fmt.Errorf("address %s is not held by interface %q of pod %q (uid %q): %w", addr, rep.IfName, key, rep.PodUID, nodeapi.ErrNotFound)
	}
	pod := podRef(rep.PodNamespace, rep.PodName, rep.PodUID)
	if a.cfg.EnableStatefulSet && c.Spec.OwnerKind == "StatefulSet" {
		a.metrics.AddressConflicts.WithLabelValues(nodeapi.ConflictKept).Inc()
		a.event(pod, corev1.EventTypeWarning, EventAddressConflict, "interface %s: %s answers from another machine (MAC %s); it is StatefulSet %s's fixed address, so it is kept and the pod waits until the other machine gives it up",
			rep.IfName, addr, rep.MAC, c.Spec.OwnerName)
		log.Info("address conflict on a StatefulSet replica's fixed address: keeping the claim; the pod is refused until the other machine gives the address up",
			"statefulset", c.Spec.OwnerName)
		return &nodeapi.ConflictResult{Action: nodeapi.ConflictKept}, nil
	}
	if err := a.engine.Release(ctx, []*v2beta1.SpiderIPClaim{c}); err != nil {
		return nil, err
	}
	until, err := a.engine.QuarantineClaim(ctx, c)
	if err != nil {
		return nil, err
	}
	a.seQueue.Add(key)
	a.metrics.AddressConflicts.WithLabelValues(nodeapi.ConflictReleased).Inc()
	a.event(pod, corev1.EventTypeWarning, EventAddressConflict, "interface %s: %s answers from another machine (MAC %s); released it and quarantined it in pool %s until %s, so the pod gets another address",
		rep.IfName, addr, rep.MAC, c.Spec.Pool, until.UTC().Format(time.RFC3339))
	log.Info("address conflict: released the address and quarantined it", "pool", c.Spec.Pool, "until", until.Format(time.RFC3339))
	return &nodeapi.ConflictResult{Action: nodeapi.ConflictReleased, QuarantinedUntil: until.UTC().Format(time.RFC3339)}, nil
}

func validateConflict(rep *nodeapi.ConflictReport) (netip.Addr, error) {
	addr, err := rep.Validate()
	if err != nil {
		return netip.Addr{}, invalid("%s", err.Error())
	}
	return addr, nil
}

// conflictClaim picks, among a pod's claims, the one for addr on the
// reported interface of the reported incarnation (pod UID, or the sandbox
// when the report has no UID).
func conflictClaim(claims []*v2beta1.SpiderIPClaim, rep *nodeapi.ConflictReport, addr netip.Addr) *v2beta1.SpiderIPClaim {
	for _, c := range claims {
		got, err := netip.ParseAddr(c.Spec.Address)
		if err != nil || got.Unmap() != addr || c.Spec.Interface != rep.IfName {
			continue
		}
		if rep.PodUID != "" && c.Spec.PodUID != rep.PodUID {
			continue
		}
		if rep.PodUID == "" && c.Spec.ContainerID != rep.ContainerID {
			continue
		}
		return c
	}
	return nil
}
