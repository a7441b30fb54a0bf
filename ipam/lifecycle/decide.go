// Package lifecycle is the one decision of whether an allocation (the claims
// and SpiderEndpoint made for a pod) is kept or released, and why: its pod is
// gone, finished, stuck terminating, replaced by a pod of the same name, or a
// StatefulSet replica whose StatefulSet is gone (or that opted out of
// keeping addresses across scale-down and was scaled away); or it is alive,
// a StatefulSet replica waiting for its next incarnation, or still within its
// grace period.
//
// A KubeVirt virtual machine keeps its launcher pods' addresses while the
// VirtualMachine (or, for a VirtualMachineInstance without one, the
// instance) exists: across instance restarts, launcher pod replacement and
// live migration, whatever the launcher pod's name.
//
// A StatefulSet keeps the addresses of every ordinal it ever ran for its
// whole life: a replica scaled away gets them back when the StatefulSet is
// scaled up again. ReleaseOnScaleDown on the StatefulSet or on a pool of the
// allocation gives them back to the pool at scale-down instead.
//
// Decide is pure. The controller's garbage collector, the agent's periodic
// pass, CNI DEL and CNI GC all feed it fresh reads and act on its answer with
// store.DeleteExact, so an address a live pod uses is never freed.
package lifecycle

import (
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Reason says why an allocation is collected (or kept).
type Reason string

// Reasons for collecting an allocation. They are the values of the reason
// label of the collection metric.
const (
	ReasonPodDeleted               Reason = "PodDeleted"
	ReasonPodUIDMismatch           Reason = "PodUIDMismatch"
	ReasonPodSucceeded             Reason = "PodSucceeded"
	ReasonPodFailed                Reason = "PodFailed"
	ReasonPodEvicted               Reason = "PodEvicted"
	ReasonTerminatingOnReadyNode   Reason = "TerminatingOnReadyNode"
	ReasonTerminatingOnNotReady    Reason = "TerminatingOnNotReadyNode"
	ReasonStatefulSetScaledDown    Reason = "StatefulSetScaledDown"
	ReasonStatefulSetDeleted       Reason = "StatefulSetDeleted"
	ReasonStatefulSetWithinOrdinal Reason = "StatefulSetWithinReplicas" // kept
	ReasonStatefulSetOrdinalHeld   Reason = "StatefulSetOrdinalHeld"    // kept: scaled away, held for scale-up
	ReasonPodAlive                 Reason = "PodAlive"                  // kept
	ReasonTerminatingWithinGrace   Reason = "TerminatingWithinGrace"    // kept
	ReasonTerminatingDisabled      Reason = "TerminatingCollectionDisabled"
	ReasonUnknownHolder            Reason = "UnknownHolder" // kept: no pod UID recorded
	ReasonSandboxDeleted           Reason = "SandboxDeleted"
	ReasonVirtualMachineDeleted    Reason = "VirtualMachineDeleted"
	ReasonVirtualMachineExists     Reason = "VirtualMachineExists" // kept
)

// KubeVirt's kinds: a launcher pod's controller is the
// VirtualMachineInstance, whose controller (of the same name) is the
// VirtualMachine, in API group KubeVirtGroup.
const (
	KubeVirtGroup              = "kubevirt.io"
	KindVirtualMachineInstance = "VirtualMachineInstance"
	KindVirtualMachine         = "VirtualMachine"
	KindStatefulSet            = "StatefulSet"
)

// ReleaseOnScaleDown, set to "true" on a StatefulSet or on a SpiderIPPool,
// releases a replica's addresses when its StatefulSet is scaled below its
// ordinal, instead of holding them until the StatefulSet is scaled up again
// or deleted.
const ReleaseOnScaleDown = "spindle.spidernet.io/release-on-scale-down"

// ReleasesOnScaleDown reports whether annotations opt out of holding
// addresses across scale-down.
func ReleasesOnScaleDown(annotations map[string]string) bool {
	b, _ := strconv.ParseBool(annotations[ReleaseOnScaleDown])
	return b
}

// Holder is the pod an allocation (claims and SpiderEndpoint) was made for,
// as recorded in the allocation.
type Holder struct {
	Namespace, Name string
	UID             types.UID
	// OwnerKind and OwnerName are the pod's controller at allocation time.
	OwnerKind, OwnerName string
}

// Config holds the collection switches.
type Config struct {
	// TerminatingDelay is added to a terminating pod's deletion deadline
	// (deletionTimestamp, which already includes the grace period) before
	// its addresses are collected.
	TerminatingDelay time.Duration
	// CollectTerminatingOnReadyNode and CollectTerminatingOnNotReadyNode
	// enable collecting pods stuck terminating on Ready and on NotReady (or
	// missing) nodes.
	CollectTerminatingOnReadyNode    bool
	CollectTerminatingOnNotReadyNode bool
	// IgnoreStatefulSets treats StatefulSet pods like any other pod (no
	// address kept for a replica's next incarnation); set it when the agents
	// run without StatefulSet support.
	IgnoreStatefulSets bool
}

// Input is everything the decision needs. Pod, Node and StatefulSet are nil
// when they do not exist.
type Input struct {
	Holder      Holder
	Pod         *corev1.Pod
	Node        *corev1.Node
	StatefulSet *appsv1.StatefulSet
	Now         time.Time
	Config      Config
	// SandboxDeleted is set for a CNI DEL: the runtime has torn down the
	// holder's sandbox, so a terminating holder releases at once instead of
	// waiting for its deadline.
	SandboxDeleted bool
	// PoolReleasesOnScaleDown is set when a pool of the allocation carries
	// ReleaseOnScaleDown.
	PoolReleasesOnScaleDown bool
	// VirtualMachine and VirtualMachineInstance are the objects named
	// after the holder's VirtualMachineInstance owner (nil when they do not
	// exist, or KubeVirt is not installed).
	VirtualMachine, VirtualMachineInstance *metav1.PartialObjectMetadata
}

// Decision is the outcome for one holder.
type Decision struct {
	Collect bool
	Reason  Reason
	// RequeueAfter is set when the allocation is kept now but may have to be
	// collected later without any event (a terminating pod's deadline).
	RequeueAfter time.Duration
}

// Decide says whether the allocation of in.Holder must be collected.
func Decide(in Input) Decision {
	h := in.Holder
	if in.Config.IgnoreStatefulSets && h.OwnerKind == KindStatefulSet {
		h.OwnerKind = ""
	}
	if h.UID == "" {
		return Decision{Reason: ReasonUnknownHolder}
	}
	pod := in.Pod
	if h.OwnerKind == KindVirtualMachineInstance && h.OwnerName != "" {
		return decideVirtualMachine(&in)
	}
	if pod != nil && pod.UID != h.UID {
		// Same name, different pod: the holder is gone. A StatefulSet replica
		// within its ordinals keeps its addresses for the new incarnation.
		if keep, r := statefulSetKeeps(h, &in, pod); keep {
			return Decision{Reason: r}
		}
		return Decision{Collect: true, Reason: ReasonPodUIDMismatch}
	}
	if pod == nil {
		if keep, r := statefulSetKeeps(h, &in, nil); keep {
			return Decision{Reason: r}
		} else if r != "" {
			return Decision{Collect: true, Reason: r}
		}
		return Decision{Collect: true, Reason: ReasonPodDeleted}
	}

	// The holder is the live pod object.
	stsKeep, stsReason := statefulSetKeeps(h, &in, pod)
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		if stsKeep {
			return Decision{Reason: stsReason}
		}
		switch {
		case pod.Status.Phase == corev1.PodSucceeded:
			return Decision{Collect: true, Reason: ReasonPodSucceeded}
		case pod.Status.Reason == "Evicted":
			return Decision{Collect: true, Reason: ReasonPodEvicted}
		default:
			return Decision{Collect: true, Reason: ReasonPodFailed}
		}
	}
	if pod.DeletionTimestamp == nil {
		return Decision{Reason: ReasonPodAlive}
	}
	if stsKeep {
		return Decision{Reason: stsReason}
	}
	if in.SandboxDeleted {
		return Decision{Collect: true, Reason: ReasonSandboxDeleted}
	}
	deadline := pod.DeletionTimestamp.Add(in.Config.TerminatingDelay)
	if in.Now.Before(deadline) {
		return Decision{Reason: ReasonTerminatingWithinGrace, RequeueAfter: deadline.Sub(in.Now) + time.Second}
	}
	if NodeReady(in.Node) {
		if !in.Config.CollectTerminatingOnReadyNode {
			return Decision{Reason: ReasonTerminatingDisabled}
		}
		return Decision{Collect: true, Reason: ReasonTerminatingOnReadyNode}
	}
	if !in.Config.CollectTerminatingOnNotReadyNode {
		return Decision{Reason: ReasonTerminatingDisabled}
	}
	return Decision{Collect: true, Reason: ReasonTerminatingOnNotReady}
}

// decideVirtualMachine decides for a launcher pod's allocation: alive while
// its pod runs, kept for the next launcher pod while the virtual machine
// exists, released when it is gone.
func decideVirtualMachine(in *Input) Decision {
	pod := in.Pod
	if pod != nil && pod.UID == in.Holder.UID && pod.DeletionTimestamp == nil &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		return Decision{Reason: ReasonPodAlive}
	}
	live := func(m *metav1.PartialObjectMetadata) bool { return m != nil && m.DeletionTimestamp == nil }
	if live(in.VirtualMachine) || live(in.VirtualMachineInstance) {
		return Decision{Reason: ReasonVirtualMachineExists}
	}
	return Decision{Collect: true, Reason: ReasonVirtualMachineDeleted}
}

// statefulSetKeeps says whether the holder is a StatefulSet replica whose
// addresses stay reserved for it: its ordinal is wanted, or it was scaled
// away and neither the StatefulSet nor a pool opted out of holding. When the
// holder is a StatefulSet pod that is no longer wanted it returns the reason
// (scaled down or StatefulSet deleted); for other holders the reason is "".
// pod is the live pod of the holder's name, if any: a pod controlled by
// something else than the StatefulSet means the name was taken over.
func statefulSetKeeps(h Holder, in *Input, pod *corev1.Pod) (bool, Reason) {
	sts := in.StatefulSet
	if h.OwnerKind != "StatefulSet" || h.OwnerName == "" {
		return false, ""
	}
	ordinal, ok := Ordinal(h.OwnerName, h.Name)
	if !ok {
		return false, ""
	}
	if sts == nil || sts.DeletionTimestamp != nil {
		return false, ReasonStatefulSetDeleted
	}
	if pod != nil {
		if ref := controllerOf(pod); ref == nil || ref.Kind != "StatefulSet" || ref.Name != sts.Name || (ref.UID != "" && ref.UID != sts.UID) {
			return false, ""
		}
	}
	start, replicas := int64(0), int64(1)
	if sts.Spec.Ordinals != nil {
		start = int64(sts.Spec.Ordinals.Start)
	}
	if sts.Spec.Replicas != nil {
		replicas = int64(*sts.Spec.Replicas)
	}
	if ordinal < start || ordinal >= start+replicas {
		if ReleasesOnScaleDown(sts.Annotations) || in.PoolReleasesOnScaleDown {
			return false, ReasonStatefulSetScaledDown
		}
		return true, ReasonStatefulSetOrdinalHeld
	}
	return true, ReasonStatefulSetWithinOrdinal
}

func controllerOf(pod *corev1.Pod) *struct {
	Kind, Name string
	UID        types.UID
} {
	for _, r := range pod.OwnerReferences {
		if r.Controller != nil && *r.Controller {
			return &struct {
				Kind, Name string
				UID        types.UID
			}{r.Kind, r.Name, r.UID}
		}
	}
	return nil
}

// Ordinal returns the ordinal of the StatefulSet pod podName of set setName
// ("web-2" of "web" is 2).
func Ordinal(setName, podName string) (int64, bool) {
	if !strings.HasPrefix(podName, setName+"-") {
		return 0, false
	}
	s := podName[len(setName)+1:]
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// NodeReady reports whether the node exists and its Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	if n == nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Explain says a collection reason in words, for Events and logs.
func (r Reason) Explain() string {
	switch r {
	case ReasonPodDeleted:
		return "the pod no longer exists"
	case ReasonPodUIDMismatch:
		return "a different pod now has this name"
	case ReasonPodSucceeded:
		return "the pod has succeeded"
	case ReasonPodFailed:
		return "the pod has failed"
	case ReasonPodEvicted:
		return "the pod was evicted"
	case ReasonTerminatingOnReadyNode:
		return "the pod is still terminating past its grace period on a Ready node"
	case ReasonTerminatingOnNotReady:
		return "the pod is still terminating past its grace period on a NotReady node"
	case ReasonStatefulSetScaledDown:
		return "the StatefulSet was scaled below this pod's ordinal and releases addresses on scale-down"
	case ReasonStatefulSetOrdinalHeld:
		return "the StatefulSet was scaled below this pod's ordinal; its addresses are held until it is scaled up again or deleted"
	case ReasonStatefulSetDeleted:
		return "the pod's StatefulSet no longer exists"
	case ReasonSandboxDeleted:
		return "the pod is terminating and its sandbox was deleted"
	case ReasonVirtualMachineDeleted:
		return "the pod's virtual machine no longer exists"
	case ReasonVirtualMachineExists:
		return "the pod's virtual machine exists; its next launcher pod gets the addresses"
	}
	return string(r)
}
