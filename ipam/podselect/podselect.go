// Package podselect turns the facts about a pod (the pod, its namespace, its
// node, its controllers) and the agent's cluster-level settings into the
// selection.Request of one of its interfaces. It does no I/O of its own:
// controllers are read through a Lookup the caller provides. spindle-agent
// builds every allocation's request with it, and `kubectl spindle why`
// builds its explanation with it, so the two cannot disagree.
package podselect

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/selection"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// Settings are the cluster-level settings of spindle-agent that selection
// depends on (its flags --enable-ipv4, --enable-ipv6,
// --cluster-default-network, --system-namespace,
// --cluster-default-subnet-v4 and -v6).
type Settings struct {
	EnableIPv4, EnableIPv6 bool
	// ClusterDefaultNetwork is the NetworkAttachmentDefinition
	// ("namespace/name") Multus uses for eth0; empty when unknown.
	ClusterDefaultNetwork string
	// SystemNamespace is the namespace multusName entries without one
	// refer to.
	SystemNamespace string
	// DefaultSubnet names the cluster default SpiderSubnets.
	DefaultSubnet annotations.SubnetRequest
}

// Lookup reads the metadata of a pod's controller of kind gvk. It returns
// (nil, nil) when the object does not exist; an error only when the object
// could not be read.
type Lookup func(gvk schema.GroupVersionKind, namespace, name string) (*metav1.PartialObjectMetadata, error)

// The controllers whose own annotations (not their pod template's) a pod
// without pool or address annotations inherits are subnets.AppKinds: a
// StatefulSet's metadata carrying cni.projectcalico.org/ipv4pools means its
// pods.

// Workload is what is known of a pod's controllers: the pool and address
// annotations the pod inherits, the controller they come from
// ("Kind namespace/name"), and the pod's application: its top controller of
// a kind in subnets.AppKinds, or its own controller when that is of another
// (third-party) kind, known from the owner reference alone.
type Workload struct {
	Owner       string
	Annotations map[string]string
	App         *subnets.App
}

// WorkloadOf follows the pod's controllers upwards (ReplicaSet, then its
// Deployment; Job, then its CronJob) through get. A pod with pool or
// address annotations of its own inherits none; otherwise the first
// controller that carries any gives them. A controller that does not exist,
// or exists under another UID than the owner reference names, ends the
// walk. Errors of get are returned as they are.
func WorkloadOf(pod *corev1.Pod, get Lookup) (*Workload, error) {
	w := &Workload{}
	inherit := !annotations.HasRequest(pod.Annotations)
	ref := metav1.GetControllerOf(pod)
	for depth := 0; ref != nil && depth < 3; depth++ {
		if !subnets.IsAppKind(ref.APIVersion, ref.Kind) {
			if w.App == nil {
				w.App = &subnets.App{Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name, UID: string(ref.UID)}
			}
			break
		}
		m, err := get(subnets.AppKinds[ref.Kind], pod.Namespace, ref.Name)
		if err != nil {
			return nil, err
		}
		if m == nil {
			break
		}
		if ref.UID != "" && m.UID != ref.UID {
			break // a new object of that name, not this pod's controller
		}
		w.App = &subnets.App{Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name, UID: string(m.UID)}
		if inherit && w.Annotations == nil && annotations.HasRequest(m.Annotations) {
			w.Owner, w.Annotations = fmt.Sprintf("%s %s/%s", ref.Kind, pod.Namespace, ref.Name), m.Annotations
		}
		ref = metav1.GetControllerOf(m)
	}
	return w, nil
}

// Facts are what is known about the pod an interface is set up for.
type Facts struct {
	Pod       *corev1.Pod
	Namespace *corev1.Namespace
	// NodeName is the node the pod runs on; Node its object (labels).
	NodeName string
	Node     *corev1.Node
	Workload *Workload
	// HeldInterfaces returns the pod's interfaces that already hold
	// addresses (the interfaces of its claims). Called only when the pod
	// or its workload has a kube-ipam address; nil means none.
	HeldInterfaces func() []string
}

// Interface is the interface being set up and what the CNI configuration of
// its network says.
type Interface struct {
	// Name is CNI_IFNAME, e.g. eth0 or net1.
	Name string
	// DefaultIPv4Pools and DefaultIPv6Pools are the CNI configuration's
	// default_ipv4_ippool and default_ipv6_ippool.
	DefaultIPv4Pools, DefaultIPv6Pools []string
}

// Request builds the selection.Request of iface of the pod.
func Request(s *Settings, f *Facts, iface Interface) *selection.Request {
	pod := f.Pod
	var ordinal *int
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == lifecycle.KindStatefulSet {
		if n, ok := lifecycle.Ordinal(ref.Name, pod.Name); ok {
			i := int(n)
			ordinal = &i
		}
	}
	w := f.Workload
	if w == nil {
		w = &Workload{}
	}
	podLabels := pod.Labels
	if w.App != nil {
		// The application's pools match these in their pod affinity.
		podLabels = maps.Clone(podLabels)
		if podLabels == nil {
			podLabels = map[string]string{}
		}
		maps.Copy(podLabels, subnets.AppLabels(*w.App))
	}
	var nsLabels, nsAnnotations, nodeLabels map[string]string
	if f.Namespace != nil {
		nsLabels, nsAnnotations = f.Namespace.Labels, f.Namespace.Annotations
	}
	if f.Node != nil {
		nodeLabels = f.Node.Labels
	}
	defaultSubnet := s.DefaultSubnet
	return &selection.Request{
		Ordinal:               ordinal,
		Owner:                 w.Owner,
		OwnerAnnotations:      w.Annotations,
		App:                   w.App,
		DefaultSubnet:         &defaultSubnet,
		KubeIPAMInterface:     KubeIPAMInterface(s, f, iface.Name),
		PodNamespace:          pod.Namespace,
		PodName:               pod.Name,
		PodLabels:             podLabels,
		PodAnnotations:        pod.Annotations,
		NamespaceLabels:       nsLabels,
		NamespaceAnnotations:  nsAnnotations,
		NodeName:              f.NodeName,
		NodeLabels:            nodeLabels,
		Interface:             iface.Name,
		ClusterDefaultNetwork: s.ClusterDefaultNetwork,
		SystemNamespace:       s.SystemNamespace,
		DefaultIPv4Pools:      iface.DefaultIPv4Pools,
		DefaultIPv6Pools:      iface.DefaultIPv6Pools,
		EnableIPv4:            s.EnableIPv4,
		EnableIPv6:            s.EnableIPv6,
	}
}

// KubeIPAMInterface is the interface kube-ipam's annotations address: the
// pod's first interface that Spindle serves, as kube-ipam's address the
// interface kube-ipam allocates for (often net1 on a database network, eth0
// coming from another plugin). Multus sets interfaces up in order, so an
// interface before ifName that Spindle serves already has claims. Empty
// when the pod has no kube-ipam address.
func KubeIPAMInterface(s *Settings, f *Facts, ifName string) string {
	pod := f.Pod
	_, onPod := pod.Annotations[annotations.KubeIPAMIP]
	onOwner := false
	if f.Workload != nil {
		_, onOwner = f.Workload.Annotations[annotations.KubeIPAMIP]
	}
	if !onPod && !onOwner {
		return ""
	}
	nets, err := selection.ParsePodNetworks(pod.Namespace, pod.Annotations, s.ClusterDefaultNetwork)
	if err != nil {
		return "" // selection reports the malformed annotation
	}
	served := map[string]bool{}
	if f.HeldInterfaces != nil {
		for _, name := range f.HeldInterfaces() {
			served[name] = true
		}
	}
	for i := 0; i <= len(nets.Additional); i++ {
		if name := nets.InterfaceAt(i); name == ifName || served[name] {
			return name
		}
	}
	return ifName
}

// InterfaceNetwork returns the NetworkAttachmentDefinition ("namespace",
// "name") the pod's interface ifName is attached through, from the pod's
// Multus annotations (eth0: its default network, else the cluster default
// network of the settings). ok is false when it is unknown.
func InterfaceNetwork(s *Settings, pod *corev1.Pod, ifName string) (namespace, name string, ok bool, err error) {
	nets, err := selection.ParsePodNetworks(pod.Namespace, pod.Annotations, s.ClusterDefaultNetwork)
	if err != nil {
		return "", "", false, err
	}
	ref, known := nets.NetworkOf(ifName)
	if !known {
		return "", "", false, nil
	}
	namespace, name, ok = strings.Cut(ref, "/")
	if !ok {
		// A cluster default network given without a namespace is in the
		// system namespace.
		namespace, name, ok = s.SystemNamespace, ref, s.SystemNamespace != ""
	}
	return namespace, name, ok, nil
}
