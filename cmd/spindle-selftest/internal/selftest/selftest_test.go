package selftest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func TestDaemonSetState(t *testing.T) {
	ds := func(gen, observed int64, desired, ready, updated, mis int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: observed, DesiredNumberScheduled: desired,
				NumberReady: ready, UpdatedNumberScheduled: updated, NumberMisscheduled: mis},
		}
	}
	for _, tc := range []struct {
		name string
		ds   *appsv1.DaemonSet
		want string // substring; "" means ready
	}{
		{"ready", ds(2, 2, 3, 3, 3, 0), ""},
		{"not observed", ds(3, 2, 3, 3, 3, 0), "generation 3"},
		{"no node", ds(1, 1, 0, 0, 0, 0), "no node runs it"},
		{"one not ready", ds(1, 1, 3, 2, 3, 0), "2 of 3 pods ready"},
		{"rolling out", ds(1, 1, 3, 3, 1, 0), "1 of 3 pods run the current template"},
		{"misscheduled", ds(1, 1, 3, 3, 3, 1), "1 pods run on nodes"},
	} {
		got := daemonSetState(tc.ds)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: daemonSetState = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWebhookVerdict(t *testing.T) {
	denied := errors.New(`admission webhook "spiderippool.validate.spindle.spidernet.io" denied the request: spec.ips[0]: 198.51.100.10 is outside spec.subnet 192.0.2.0/24`)
	for _, tc := range []struct {
		name string
		err  error
		want string // substring of the failure; "" means the webhook answered
	}{
		{"denied by the webhook", denied, ""},
		{"accepted", nil, "not installed"},
		{"unreachable", errors.New(`Internal error occurred: failed calling webhook "spiderippool.validate.spindle.spidernet.io": connection refused`), "could not reach the webhook"},
		{"refused by the schema", errors.New(`SpiderIPPool.spiderpool.spidernet.io "x" is invalid: spec.subnet: Invalid value`), "not by Spindle's webhook"},
	} {
		got := webhookVerdict(tc.err)
		if tc.want == "" {
			if got != nil {
				t.Errorf("%s: %v, want nil", tc.name, got)
			}
			continue
		}
		if got == nil || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, got, tc.want)
		}
	}
}

func TestPoolUsable(t *testing.T) {
	pool := func(total, allocated *int64, disable bool) *v2beta1.SpiderIPPool {
		p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
		p.Status.TotalIPCount, p.Status.AllocatedIPCount = total, allocated
		if disable {
			p.Spec.Disable = ptr.To(true)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		p    *v2beta1.SpiderIPPool
		want string
	}{
		{"free", pool(ptr.To[int64](2), ptr.To[int64](1), false), ""},
		{"no status yet", pool(nil, nil, false), ""},
		{"full", pool(ptr.To[int64](2), ptr.To[int64](2), false), `SpiderIPPool "p" is full: 2 of 2 addresses allocated`},
		{"disabled", pool(nil, nil, true), "disabled"},
	} {
		err := poolUsable(tc.p)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: poolUsable = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestStatusLists(t *testing.T) {
	pod := func(status string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: map[string]string{}}}
		if status != "" {
			p.Annotations["k8s.v1.cni.cncf.io/network-status"] = status
		}
		return p
	}
	listed := `[{"name":"cbr0","interface":"eth0","ips":["10.244.1.5"]},{"name":"ns/underlay","interface":"net1","ips":["172.30.220.100"]}]`
	if msg := statusLists(pod(listed), "net1", "172.30.220.100"); msg != "" {
		t.Errorf("listed address: %q", msg)
	}
	if msg := statusLists(pod(""), "net1", "172.30.220.100"); msg != "" {
		t.Errorf("no network status (no Multus): %q, want no complaint", msg)
	}
	if msg := statusLists(pod(listed), "eth0", "172.30.220.100"); !strings.Contains(msg, "does not list 172.30.220.100 on eth0") {
		t.Errorf("address on another interface: %q", msg)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--checks", "agents,dns"}, 2, `unknown check "dns"`},
		{[]string{"--checks", "agents"}, 2, "--agent-daemonset"},
		{[]string{"--checks", "address", "--pool", "p", "--pool-subnet", "10.0.0.0/24"}, 2, "needs --pool-ips"},
		{[]string{"--checks", "address", "--pool", "p", "--pool-ips", "10.0.0.5"}, 2, "give --pool-subnet too"},
		{[]string{"--checks", "address", "--pool", "p", "--namespace", "ns"}, 2, "needs --image"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
	} {
		var out, errOut bytes.Buffer
		code := Main(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("spindle-selftest %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
