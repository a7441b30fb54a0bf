package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// CreateNamespace creates a namespace named base-<random> labelled as an
// e2e namespace.
func (f *Framework) CreateNamespace(ctx context.Context, base string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   base + "-" + RandSuffix(5),
		Labels: map[string]string{"spindle.e2e/test": "true"},
	}}
	out, err := f.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to create namespace %q: %w", ns.Name, err)
	}
	// Pods are refused until the controller-manager created the
	// namespace's default service account.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = wait.PollUntilContextCancel(wctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := f.Client.CoreV1().ServiceAccounts(out.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return out, fmt.Errorf("failed to see the default service account of namespace %q: %w", out.Name, err)
	}
	return out, nil
}

// DeleteNamespace deletes a namespace and waits until it is gone (its pods
// torn down), up to PodDeleteTimeout.
func (f *Framework) DeleteNamespace(ctx context.Context, name string) error {
	err := f.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to delete namespace %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, PodDeleteTimeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := f.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// CreateNAD creates a NetworkAttachmentDefinition with the given CNI
// configuration (JSON).
func (f *Framework) CreateNAD(ctx context.Context, namespace, name, cniConfig string) (*nadv1.NetworkAttachmentDefinition, error) {
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: cniConfig},
	}
	out, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Create(ctx, nad, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to create NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return out, nil
}

// MacvlanConfig renders a macvlan (bridge mode) CNI configuration on master
// with host-local IPAM over [start, end] of subnet.
func MacvlanConfig(name, master string, subnet netip.Prefix, start, end netip.Addr, gateway netip.Addr) string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"type":       "macvlan",
		"master":     master,
		"mode":       "bridge",
		"ipam": map[string]any{
			"type": "host-local",
			"ranges": []any{[]any{map[string]any{
				"subnet": subnet.String(), "rangeStart": start.String(), "rangeEnd": end.String(), "gateway": gateway.String(),
			}}},
		},
	}
	b, _ := json.Marshal(conf)
	return string(b)
}

// PodOptions shape a test pod.
type PodOptions struct {
	// Node pins the pod to a node with a kubernetes.io/hostname selector.
	Node string
	// Networks is the k8s.v1.cni.cncf.io/networks annotation.
	Networks    string
	Annotations map[string]string
}

// NewPod returns a single-container pod that never needs to do anything.
func (f *Framework) NewPod(namespace, name string, o PodOptions) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main", Image: f.PodImage}},
			// A non-zero grace period makes deletion wait for the node: the
			// pod leaves the API only after its sandbox was torn down.
			TerminationGracePeriodSeconds: ptr.To[int64](5),
		},
	}
	for k, v := range o.Annotations {
		p.Annotations[k] = v
	}
	if o.Networks != "" {
		p.Annotations[nadv1.NetworkAttachmentAnnot] = o.Networks
	}
	if o.Node != "" {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": o.Node}
	}
	return p
}

// CreatePod creates pod.
func (f *Framework) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	out, err := f.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return out, nil
}

// WaitPodRunning watches the pod until it is Running and Ready with an IP,
// up to PodStartTimeout. On timeout the error carries the pod's phase and
// its latest events (e.g. FailedCreatePodSandBox with the CNI error).
func (f *Framework) WaitPodRunning(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, PodStartTimeout)
	defer cancel()
	var last *corev1.Pod
	for ctx.Err() == nil {
		p, err := f.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = p
			if podRunning(p) {
				return p, nil
			}
		}
		w, err := f.Client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv(p),
		})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if p, ok := ev.Object.(*corev1.Pod); ok {
				last = p
				if podRunning(p) {
					w.Stop()
					return p, nil
				}
			}
		}
		w.Stop()
	}
	phase := "not found"
	if last != nil {
		phase = string(last.Status.Phase)
	}
	return last, fmt.Errorf("failed to see pod %s/%s Running within %s (phase %s); events: %s", namespace, name, PodStartTimeout, phase, f.podEvents(namespace, name))
}

func rv(p *corev1.Pod) string {
	if p == nil {
		return ""
	}
	return p.ResourceVersion
}

func podRunning(p *corev1.Pod) bool {
	// A terminating pod still reports Running until its sandbox is torn down;
	// it is not the pod a waiter is waiting for.
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (f *Framework) podEvents(namespace, name string) string {
	ctx, cancel := Ctx(10 * time.Second)
	defer cancel()
	evs, err := f.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String(),
	})
	if err != nil {
		return err.Error()
	}
	out := ""
	for _, e := range evs.Items {
		out += fmt.Sprintf("\n  %s %s: %s", e.Type, e.Reason, e.Message)
	}
	if out == "" {
		return "none"
	}
	return out
}

// PodEvents returns the events of a pod with the given reason.
func (f *Framework) PodEvents(ctx context.Context, namespace, name, reason string) ([]corev1.Event, error) {
	evs, err := f.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.name", name),
			fields.OneTermEqualSelector("reason", reason),
		).String(),
	})
	if err != nil {
		return nil, err
	}
	return evs.Items, nil
}

// DeletePodAndWait deletes a pod and waits until it is gone from the API
// (which, on the lab, happens only after CNI DEL succeeded).
func (f *Framework) DeletePodAndWait(ctx context.Context, namespace, name string) error {
	err := f.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to delete pod %s/%s: %w", namespace, name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, PodDeleteTimeout)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := f.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("failed to see pod %s/%s gone within %s: %w", namespace, name, PodDeleteTimeout, err)
	}
	return nil
}

// NetworkStatus parses the pod's k8s.v1.cni.cncf.io/network-status
// annotation.
func NetworkStatus(pod *corev1.Pod) ([]nadv1.NetworkStatus, error) {
	raw, ok := pod.Annotations[nadv1.NetworkStatusAnnot]
	if !ok {
		return nil, fmt.Errorf("pod %s/%s has no %s annotation", pod.Namespace, pod.Name, nadv1.NetworkStatusAnnot)
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("failed to parse %s annotation of pod %s/%s: %w", nadv1.NetworkStatusAnnot, pod.Namespace, pod.Name, err)
	}
	return st, nil
}

// InterfaceStatus returns the network-status entry of interface ifName.
func InterfaceStatus(pod *corev1.Pod, ifName string) (*nadv1.NetworkStatus, error) {
	st, err := NetworkStatus(pod)
	if err != nil {
		return nil, err
	}
	for i := range st {
		if st[i].Interface == ifName {
			return &st[i], nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s network-status has no interface %q: %+v", pod.Namespace, pod.Name, ifName, st)
}

// ReadyNodes lists the names of Ready, schedulable nodes.
func (f *Framework) ReadyNodes(ctx context.Context) ([]string, error) {
	nodes, err := f.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || !NodeReady(&n) {
			continue
		}
		out = append(out, n.Name)
	}
	return out, nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// WaitNodeReady waits until node's readiness equals ready.
func (f *Framework) WaitNodeReady(ctx context.Context, node string, ready bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := f.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return NodeReady(n) == ready, nil
	})
	if err != nil {
		return fmt.Errorf("failed to see node %q with Ready=%v within %s: %w", node, ready, timeout, err)
	}
	return nil
}

// PodIPInCIDRs reports whether every pod IP lies in one of the node's pod
// CIDRs.
func PodIPInCIDRs(pod *corev1.Pod, node *corev1.Node) error {
	cidrs := node.Spec.PodCIDRs
	if len(cidrs) == 0 && node.Spec.PodCIDR != "" {
		cidrs = []string{node.Spec.PodCIDR}
	}
	for _, ip := range pod.Status.PodIPs {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			return fmt.Errorf("pod %s/%s has invalid IP %q", pod.Namespace, pod.Name, ip.IP)
		}
		in := false
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Contains(a) {
				in = true
			}
		}
		if !in {
			return fmt.Errorf("pod %s/%s IP %s is outside node %s pod CIDRs %v", pod.Namespace, pod.Name, ip.IP, node.Name, cidrs)
		}
	}
	return nil
}
