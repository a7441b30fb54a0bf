package lifecycle

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/lifecycle/lifecycletest"
)

func TestDecide(t *testing.T) {
	cfg := Config{TerminatingDelay: 30 * time.Second, CollectTerminatingOnReadyNode: true, CollectTerminatingOnNotReadyNode: true}
	holder := Holder{Namespace: "ns", Name: "app-1", UID: "u1", OwnerKind: "ReplicaSet", OwnerName: "app"}
	web := func(i string) Holder {
		return Holder{Namespace: "ns", Name: "web-" + i, UID: types.UID("old-" + i), OwnerKind: "StatefulSet", OwnerName: "web"}
	}
	sts3, sts1 := lifecycletest.StatefulSet("web", 3), lifecycletest.StatefulSet("web", 1)
	sts1optOut := lifecycletest.StatefulSet("web", 1)
	sts1optOut.Annotations = map[string]string{ReleaseOnScaleDown: "true"}
	failed := lifecycletest.LivePod("app-1", "u1")
	failed.Status.Phase = corev1.PodFailed
	evicted := lifecycletest.LivePod("app-1", "u1")
	evicted.Status.Phase, evicted.Status.Reason = corev1.PodFailed, "Evicted"
	succeeded := lifecycletest.LivePod("app-1", "u1")
	succeeded.Status.Phase = corev1.PodSucceeded
	pending := lifecycletest.LivePod("app-1", "u1")
	pending.Status.Phase = corev1.PodPending
	stsFailed := lifecycletest.StsPod("web-0", "old-0", sts3)
	stsFailed.Status.Phase = corev1.PodFailed

	tests := []struct {
		name    string
		in      Input
		collect bool
		reason  Reason
		requeue bool
	}{
		// Collected.
		{"pod deleted", Input{Holder: holder}, true, ReasonPodDeleted, false},
		{"pod force-deleted while its node is down", Input{Holder: holder, Node: lifecycletest.Node(false)}, true, ReasonPodDeleted, false},
		{"same name, new pod", Input{Holder: holder, Pod: lifecycletest.LivePod("app-1", "u2")}, true, ReasonPodUIDMismatch, false},
		{"succeeded", Input{Holder: holder, Pod: succeeded}, true, ReasonPodSucceeded, false},
		{"failed", Input{Holder: holder, Pod: failed}, true, ReasonPodFailed, false},
		{"evicted", Input{Holder: holder, Pod: evicted}, true, ReasonPodEvicted, false},
		{"terminating past grace+delay on NotReady node", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-31*time.Second)), Node: lifecycletest.Node(false)}, true, ReasonTerminatingOnNotReady, false},
		{"terminating past grace+delay on missing node", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-31*time.Second))}, true, ReasonTerminatingOnNotReady, false},
		{"terminating past grace+delay on Ready node", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-31*time.Second)), Node: lifecycletest.Node(true)}, true, ReasonTerminatingOnReadyNode, false},
		{"sts opting out scaled down, pod gone", Input{Holder: web("2"), StatefulSet: sts1optOut}, true, ReasonStatefulSetScaledDown, false},
		{"sts scaled down, pod gone, a pool opting out", Input{Holder: web("2"), StatefulSet: sts1, PoolReleasesOnScaleDown: true}, true, ReasonStatefulSetScaledDown, false},
		{"sts opting out scaled down, replica terminating", Input{Holder: web("2"), StatefulSet: sts1optOut, SandboxDeleted: true,
			Pod: lifecycletest.Terminating(lifecycletest.StsPod("web-2", "old-2", sts1optOut), lifecycletest.T0.Add(10*time.Second))}, true, ReasonSandboxDeleted, false},
		{"sts deleted, pod gone", Input{Holder: web("0")}, true, ReasonStatefulSetDeleted, false},
		{"sts being deleted, pod gone", Input{Holder: web("0"), StatefulSet: func() *appsv1.StatefulSet {
			s := lifecycletest.StatefulSet("web", 3)
			s.DeletionTimestamp = ptr.To(metav1.NewTime(lifecycletest.T0))
			return s
		}()}, true, ReasonStatefulSetDeleted, false},
		{"sts scaled down, stale pod of the name belongs to nothing", Input{Holder: web("2"), StatefulSet: sts1, Pod: lifecycletest.LivePod("web-2", "other")}, true, ReasonPodUIDMismatch, false},
		{"sts pod name taken by a bare pod", Input{Holder: web("0"), StatefulSet: sts3, Pod: lifecycletest.LivePod("web-0", "bare")}, true, ReasonPodUIDMismatch, false},

		// Kept.
		{"live pod", Input{Holder: holder, Pod: lifecycletest.LivePod("app-1", "u1")}, false, ReasonPodAlive, false},
		{"pending pod", Input{Holder: holder, Pod: pending}, false, ReasonPodAlive, false},
		{"terminating within grace", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(10*time.Second)), Node: lifecycletest.Node(false)}, false, ReasonTerminatingWithinGrace, true},
		{"terminating past grace but within delay", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-10*time.Second)), Node: lifecycletest.Node(false)}, false, ReasonTerminatingWithinGrace, true},
		{"terminating on Ready node, switch off", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-time.Hour)), Node: lifecycletest.Node(true),
			Config: Config{CollectTerminatingOnNotReadyNode: true}}, false, ReasonTerminatingDisabled, false},
		{"terminating on NotReady node, switch off", Input{Holder: holder, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-time.Hour)), Node: lifecycletest.Node(false),
			Config: Config{CollectTerminatingOnReadyNode: true}}, false, ReasonTerminatingDisabled, false},
		{"sts pod deleted within ordinals", Input{Holder: web("0"), StatefulSet: sts3}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod recreated within ordinals", Input{Holder: web("1"), StatefulSet: sts3, Pod: lifecycletest.StsPod("web-1", "new-1", sts3)}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod terminating within ordinals", Input{Holder: web("1"), StatefulSet: sts3, Pod: lifecycletest.Terminating(lifecycletest.StsPod("web-1", "old-1", sts3), lifecycletest.T0.Add(-time.Hour)), Node: lifecycletest.Node(false)}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod failed within ordinals", Input{Holder: web("0"), StatefulSet: sts3, Pod: stsFailed}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts scaled down, pod gone: held for scale-up", Input{Holder: web("2"), StatefulSet: sts1}, false, ReasonStatefulSetOrdinalHeld, false},
		{"sts scaled down, replica terminating: held", Input{Holder: web("2"), StatefulSet: sts1, SandboxDeleted: true,
			Pod: lifecycletest.Terminating(lifecycletest.StsPod("web-2", "old-2", sts1), lifecycletest.T0.Add(10*time.Second))}, false, ReasonStatefulSetOrdinalHeld, false},
		{"sts scaled to zero: held", Input{Holder: web("0"), StatefulSet: lifecycletest.StatefulSet("web", 0)}, false, ReasonStatefulSetOrdinalHeld, false},
		{"sts pod out of range but still running", Input{Holder: web("2"), StatefulSet: sts1, Pod: lifecycletest.StsPod("web-2", "old-2", sts1)}, false, ReasonPodAlive, false},
		{"sts start ordinal", Input{Holder: web("5"), StatefulSet: func() *appsv1.StatefulSet {
			s := lifecycletest.StatefulSet("web", 2)
			s.Spec.Ordinals = &appsv1.StatefulSetOrdinals{Start: 5}
			return s
		}()}, false, ReasonStatefulSetWithinOrdinal, false},
		{"sts pod deleted within ordinals, StatefulSet support off", Input{Holder: web("0"), StatefulSet: sts3,
			Config: Config{IgnoreStatefulSets: true}}, true, ReasonPodDeleted, false},
		{"no pod UID recorded", Input{Holder: Holder{Namespace: "ns", Name: "x"}}, false, ReasonUnknownHolder, false},

		// CNI DEL: the runtime deleted the sandbox.
		{"DEL of a terminating pod within grace", Input{Holder: holder, SandboxDeleted: true, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(10*time.Second)), Node: lifecycletest.Node(true)}, true, ReasonSandboxDeleted, false},
		{"DEL of a terminating pod, collection switched off", Input{Holder: holder, SandboxDeleted: true, Pod: lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(-time.Hour)), Node: lifecycletest.Node(true),
			Config: Config{CollectTerminatingOnNotReadyNode: true}}, true, ReasonSandboxDeleted, false},
		{"DEL of a live pod (sandbox restart) keeps", Input{Holder: holder, SandboxDeleted: true, Pod: lifecycletest.LivePod("app-1", "u1")}, false, ReasonPodAlive, false},
		{"DEL of a terminating sts replica within ordinals keeps", Input{Holder: web("1"), SandboxDeleted: true, StatefulSet: sts3, Pod: lifecycletest.Terminating(lifecycletest.StsPod("web-1", "old-1", sts3), lifecycletest.T0.Add(10*time.Second))}, false, ReasonStatefulSetWithinOrdinal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now = lifecycletest.T0
			if in.Config == (Config{}) {
				in.Config = cfg
			}
			d := Decide(in)
			if d.Collect != tt.collect || d.Reason != tt.reason {
				t.Fatalf("Decide = collect %v reason %s, want collect %v reason %s", d.Collect, d.Reason, tt.collect, tt.reason)
			}
			if (d.RequeueAfter > 0) != tt.requeue {
				t.Fatalf("RequeueAfter = %v, want requeue %v", d.RequeueAfter, tt.requeue)
			}
		})
	}
}

func TestOrdinal(t *testing.T) {
	for _, tt := range []struct {
		set, pod string
		n        int64
		ok       bool
	}{
		{"web", "web-0", 0, true}, {"web", "web-12", 12, true}, {"web", "web-01", 0, false},
		{"web", "web-x", 0, false}, {"web", "webx-1", 0, false}, {"web-a", "web-a-3", 3, true}, {"web", "web-", 0, false},
	} {
		n, ok := Ordinal(tt.set, tt.pod)
		if n != tt.n || ok != tt.ok {
			t.Errorf("Ordinal(%q,%q) = %d,%v want %d,%v", tt.set, tt.pod, n, ok, tt.n, tt.ok)
		}
	}
}

func TestDecideVirtualMachine(t *testing.T) {
	launcher := Holder{Namespace: "ns", Name: "virt-launcher-vm1-abcde", UID: "l1", OwnerKind: KindVirtualMachineInstance, OwnerName: "vm1"}
	obj := func(kind string, deleting bool) *metav1.PartialObjectMetadata {
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: KubeVirtGroup + "/v1", Kind: kind}, ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vm1"}}
		if deleting {
			m.DeletionTimestamp = ptr.To(metav1.NewTime(lifecycletest.T0))
		}
		return m
	}
	vm, vmi := obj(KindVirtualMachine, false), obj(KindVirtualMachineInstance, false)
	completed := lifecycletest.LivePod("virt-launcher-vm1-abcde", "l1")
	completed.Status.Phase = corev1.PodSucceeded
	for _, tt := range []struct {
		name    string
		in      Input
		collect bool
		reason  Reason
	}{
		{"launcher pod running", Input{Holder: launcher, Pod: lifecycletest.LivePod("virt-launcher-vm1-abcde", "l1")}, false, ReasonPodAlive},
		{"launcher pod gone, VM and VMI exist (replaced, migrated)", Input{Holder: launcher, VirtualMachine: vm, VirtualMachineInstance: vmi}, false, ReasonVirtualMachineExists},
		{"launcher pod completed, VM stopped (no VMI)", Input{Holder: launcher, Pod: completed, VirtualMachine: vm}, false, ReasonVirtualMachineExists},
		{"launcher pod gone, VMI without a VM", Input{Holder: launcher, VirtualMachineInstance: vmi}, false, ReasonVirtualMachineExists},
		{"DEL of a terminating launcher pod, VM exists", Input{Holder: launcher, SandboxDeleted: true, VirtualMachine: vm,
			Pod: lifecycletest.Terminating(lifecycletest.LivePod("virt-launcher-vm1-abcde", "l1"), lifecycletest.T0)}, false, ReasonVirtualMachineExists},
		{"VM deleted, VMI being deleted", Input{Holder: launcher, VirtualMachineInstance: obj(KindVirtualMachineInstance, true)}, true, ReasonVirtualMachineDeleted},
		{"VM being deleted", Input{Holder: launcher, VirtualMachine: obj(KindVirtualMachine, true)}, true, ReasonVirtualMachineDeleted},
		{"VMI without a VM deleted", Input{Holder: launcher}, true, ReasonVirtualMachineDeleted},
		{"StatefulSet switch off does not touch VMs", Input{Holder: launcher, VirtualMachine: vm, Config: Config{IgnoreStatefulSets: true}}, false, ReasonVirtualMachineExists},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Now = lifecycletest.T0
			d := Decide(in)
			if d.Collect != tt.collect || d.Reason != tt.reason {
				t.Fatalf("Decide = collect %v reason %s, want collect %v reason %s", d.Collect, d.Reason, tt.collect, tt.reason)
			}
		})
	}
}
