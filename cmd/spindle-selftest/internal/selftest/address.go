package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// cleanupTimeout bounds each deletion the address check waits for after its
// own deadline has passed.
const cleanupTimeout = time.Minute

// checkAddress creates a pod that asks for an address from the pool, waits
// until the pod runs with an address the pool's SpiderIPClaim records (and
// the pod's network status lists, when Multus reports one), deletes the pod
// and waits until the claim is gone. With --pool-subnet it creates the pool
// first and deletes it at the end.
func checkAddress(ctx context.Context, c client.Client, o *Options) (res result, err error) {
	if o.Pool == "" {
		return result{skip: true, msg: "no pool to take an address from: give --pool (chart: tests.pool.name, or tests.pool.subnet and tests.pool.ips)"}, nil
	}
	pool, err := preparePool(ctx, c, o)
	if err != nil {
		return result{}, err
	}
	if o.PoolSubnet != "" {
		defer func() {
			if derr := deleteAndWait(c, pool, fmt.Sprintf("SpiderIPPool %q", pool.Name)); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	family := "ipv4"
	if p, perr := netip.ParsePrefix(pool.Spec.Subnet); perr == nil && p.Addr().Is6() {
		family = "ipv6"
	}

	pod := testPod(o, family, pool.Name)
	if err := c.Create(ctx, pod); err != nil {
		return result{}, fmt.Errorf("failed to create the test pod in namespace %s: %w", o.Namespace, err)
	}
	podRef := pod.Namespace + "/" + pod.Name
	deleted := false
	defer func() {
		if deleted {
			return
		}
		if derr := deleteAndWait(c, pod, "test pod "+podRef); derr != nil && err == nil {
			err = derr
		}
	}()

	var claim v2beta1.SpiderIPClaim
	err = poll(ctx, time.Second, func() (bool, string, error) {
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
			return false, "", fmt.Errorf("failed to get the test pod %s: %w", podRef, err)
		}
		cl, found, err := claimOf(ctx, c, pool.Name, p.UID)
		if err != nil {
			return false, "", err
		}
		if !found {
			return false, fmt.Sprintf("pod %s (%s, node %q) holds no address of SpiderIPPool %q%s", podRef, p.Status.Phase, p.Spec.NodeName, pool.Name, podEvents(ctx, c, &p)), nil
		}
		claim = cl
		if p.Status.Phase != corev1.PodRunning {
			return false, fmt.Sprintf("pod %s got %s but is %s, not Running%s", podRef, cl.Spec.Address, p.Status.Phase, podEvents(ctx, c, &p)), nil
		}
		if msg := statusLists(&p, cl.Spec.Interface, cl.Spec.Address); msg != "" {
			return false, msg, nil
		}
		return true, "", nil
	})
	if err != nil {
		return result{}, err
	}

	deleted = true
	if err := deleteAndWait(c, pod, "test pod "+podRef); err != nil {
		return result{}, err
	}
	err = poll(ctx, time.Second, func() (bool, string, error) {
		var cl v2beta1.SpiderIPClaim
		err := c.Get(ctx, client.ObjectKeyFromObject(&claim), &cl)
		if apierrors.IsNotFound(err) || (err == nil && cl.Spec.PodUID != claim.Spec.PodUID) {
			return true, "", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("failed to get SpiderIPClaim %q: %w", claim.Name, err)
		}
		return false, fmt.Sprintf("the address %s was not given back: SpiderIPClaim %q still exists after the pod was deleted (see the agent's log on node %s)", claim.Spec.Address, claim.Name, claim.Spec.Node), nil
	})
	if err != nil {
		return result{}, err
	}
	return result{msg: fmt.Sprintf("pod %s got %s from SpiderIPPool %q on %s (node %s) and gave it back", podRef, claim.Spec.Address, pool.Name, claim.Spec.Interface, claim.Spec.Node)}, nil
}

// preparePool creates the test pool, or reads the existing one and checks it
// can hand out an address.
func preparePool(ctx context.Context, c client.Client, o *Options) (*v2beta1.SpiderIPPool, error) {
	if o.PoolSubnet != "" {
		p := &v2beta1.SpiderIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: o.Pool, Labels: map[string]string{"app.kubernetes.io/created-by": "spindle-selftest"}},
			Spec:       v2beta1.IPPoolSpec{Subnet: o.PoolSubnet, IPs: o.PoolIPs},
		}
		if o.PoolGateway != "" {
			p.Spec.Gateway = ptr.To(o.PoolGateway)
		}
		if err := c.Create(ctx, p); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("SpiderIPPool %q exists already: the test creates its own pool; delete it (left by an interrupted test?) or choose another name", o.Pool)
			}
			return nil, fmt.Errorf("failed to create the test SpiderIPPool %q: %w", o.Pool, err)
		}
		return p, nil
	}
	var p v2beta1.SpiderIPPool
	if err := c.Get(ctx, client.ObjectKey{Name: o.Pool}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("SpiderIPPool %q does not exist: create it, or give --pool-subnet and --pool-ips so the test creates it (chart: tests.pool.*)", o.Pool)
		}
		return nil, fmt.Errorf("failed to get SpiderIPPool %q: %w", o.Pool, err)
	}
	if err := poolUsable(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// poolUsable refuses a pool that cannot hand out an address: disabled,
// being deleted, or full by its status.
func poolUsable(p *v2beta1.SpiderIPPool) error {
	switch {
	case p.DeletionTimestamp != nil:
		return fmt.Errorf("SpiderIPPool %q is being deleted: name another pool", p.Name)
	case ptr.Deref(p.Spec.Disable, false):
		return fmt.Errorf("SpiderIPPool %q is disabled (spec.disable): enable it or name another pool", p.Name)
	case p.Status.TotalIPCount != nil && p.Status.AllocatedIPCount != nil && *p.Status.AllocatedIPCount >= *p.Status.TotalIPCount:
		return fmt.Errorf("SpiderIPPool %q is full: %d of %d addresses allocated; free one or add addresses to spec.ips (kubectl spindle pools)",
			p.Name, *p.Status.AllocatedIPCount, *p.Status.TotalIPCount)
	}
	return nil
}

// testPod is the pod of the address check: the same image running
// `spindle-selftest sleep`, asking for an address from pool.
func testPod(o *Options, family, pool string) *corev1.Pod {
	sel, _ := json.Marshal(map[string][]string{family: {pool}})
	ann := map[string]string{annotations.PodIPPool: string(sel)}
	if o.Network != "" {
		ann[annotations.MultusNetworks] = o.Network
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    o.Namespace,
			GenerateName: "spindle-selftest-",
			Labels:       map[string]string{"app.kubernetes.io/name": "spindle-selftest"},
			Annotations:  ann,
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			AutomountServiceAccountToken:  ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:    "sleep",
				Image:   o.Image,
				Command: []string{"/usr/local/bin/spindle-selftest", "sleep"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	for _, s := range o.PullSecrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	if o.Node != "" {
		p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: o.Node}
	}
	return p
}

// claimOf finds the claim of the pod's address in pool.
func claimOf(ctx context.Context, c client.Client, pool string, uid types.UID) (v2beta1.SpiderIPClaim, bool, error) {
	var list v2beta1.SpiderIPClaimList
	if err := c.List(ctx, &list, client.MatchingLabels{v2beta1.LabelPool: pool}); err != nil {
		return v2beta1.SpiderIPClaim{}, false, fmt.Errorf("failed to list the SpiderIPClaims of pool %q: %w", pool, err)
	}
	for _, cl := range list.Items {
		if cl.Spec.PodUID == string(uid) {
			return cl, true, nil
		}
	}
	return v2beta1.SpiderIPClaim{}, false, nil
}

// statusLists says what is wrong when the pod's network status (written by
// Multus) does not list addr on iface; "" when it does or when the pod has
// no network status at all (a cluster without Multus).
func statusLists(p *corev1.Pod, iface, addr string) string {
	raw, ok := p.Annotations[nadv1.NetworkStatusAnnot]
	if !ok {
		return ""
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return fmt.Sprintf("pod %s/%s: its %s annotation is not valid JSON: %v", p.Namespace, p.Name, nadv1.NetworkStatusAnnot, err)
	}
	for _, s := range st {
		if s.Interface == iface && slices.Contains(s.IPs, addr) {
			return ""
		}
	}
	return fmt.Sprintf("pod %s/%s: its network status does not list %s on %s yet", p.Namespace, p.Name, addr, iface)
}

// podEvents returns the pod's latest Warning events (e.g. the agent's
// AllocationFailed, the kubelet's FailedCreatePodSandBox) for a message.
func podEvents(ctx context.Context, c client.Client, p *corev1.Pod) string {
	var evs corev1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(p.Namespace), client.MatchingFields{"involvedObject.uid": string(p.UID)}); err != nil {
		return ""
	}
	var warnings []corev1.Event
	for _, e := range evs.Items {
		if e.Type == corev1.EventTypeWarning {
			warnings = append(warnings, e)
		}
	}
	if len(warnings) == 0 {
		return ""
	}
	sort.Slice(warnings, func(i, j int) bool { return eventTime(&warnings[i]).Before(eventTime(&warnings[j])) })
	var msgs []string
	for _, e := range warnings[max(0, len(warnings)-2):] {
		msgs = append(msgs, e.Reason+": "+strings.TrimSpace(e.Message))
	}
	return "; events: " + strings.Join(msgs, " | ")
}

func eventTime(e *corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// deleteAndWait deletes obj and waits until it is gone, on a deadline of its
// own so that it also cleans up after a check that ran out of time.
func deleteAndWait(c client.Client, obj client.Object, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete %s: %w", what, err)
	}
	key := client.ObjectKeyFromObject(obj)
	probe := obj.DeepCopyObject().(client.Object)
	err := poll(ctx, 500*time.Millisecond, func() (bool, string, error) {
		err := c.Get(ctx, key, probe)
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return false, "", fmt.Errorf("failed to get %s: %w", what, err)
		}
		return false, what + " is still there after deletion", nil
	})
	return err
}
