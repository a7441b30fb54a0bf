package shim

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRunningStatus(t *testing.T) {
	earlier := metav1.NewTime(time.Unix(1000, 0))
	now := metav1.NewTime(time.Unix(2000, 0))
	pod := &corev1.Pod{
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "i"}},
			Containers:     []corev1.Container{{Name: "a", Image: "x"}, {Name: "b", Image: "y"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier}},
		},
	}
	st := RunningStatus(pod, []string{"172.30.0.11", "fd30::b"}, []string{"10.244.1.5", "fd10::5"}, "abc", now)
	if st.Phase != corev1.PodRunning || st.PodIP != "10.244.1.5" || len(st.PodIPs) != 2 || st.HostIP != "172.30.0.11" || len(st.HostIPs) != 2 {
		t.Fatalf("status = %+v", st)
	}
	conds := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range st.Conditions {
		conds[c.Type] = c
	}
	for _, ty := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodReadyToStartContainers} {
		if conds[ty].Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %q", ty, conds[ty].Status)
		}
	}
	if c := conds[corev1.PodScheduled]; !c.LastTransitionTime.Equal(&earlier) {
		t.Error("the scheduler's PodScheduled transition time was overwritten")
	}
	if len(st.ContainerStatuses) != 2 || !st.ContainerStatuses[1].Ready || st.ContainerStatuses[1].State.Running == nil || st.ContainerStatuses[1].Name != "b" {
		t.Errorf("container statuses = %+v", st.ContainerStatuses)
	}
	if len(st.InitContainerStatuses) != 1 || st.InitContainerStatuses[0].State.Terminated == nil {
		t.Errorf("init container statuses = %+v", st.InitContainerStatuses)
	}
	if !reportedRunning(&corev1.Pod{Spec: pod.Spec, Status: st}, []string{"10.244.1.5", "fd10::5"}) {
		t.Error("reportedRunning is false for the status just computed")
	}
	if reportedRunning(&corev1.Pod{Spec: pod.Spec, Status: st}, []string{"10.244.1.6"}) {
		t.Error("reportedRunning ignores changed addresses")
	}
}

func TestNodeConditionsKeepTransitionTimes(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	now := metav1.NewTime(time.Unix(2000, 0))
	cur := []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: t0},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastTransitionTime: t0},
	}
	got := NodeConditions(cur, now)
	for _, c := range got {
		switch c.Type {
		case corev1.NodeReady:
			if c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&now) {
				t.Errorf("Ready after Unknown: %+v (transition must be now)", c)
			}
		case corev1.NodeMemoryPressure:
			if !c.LastTransitionTime.Equal(&t0) {
				t.Errorf("unchanged condition got a new transition time: %+v", c)
			}
		}
		if !c.LastHeartbeatTime.Equal(&now) {
			t.Errorf("%s heartbeat not now", c.Type)
		}
	}
}

func TestSandboxIPsTakesOnlyTheSandboxInterface(t *testing.T) {
	idx := func(i int) *int { return &i }
	res := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{{Name: "veth1"}, {Name: "eth0", Sandbox: "/run/netns/x"}, {Name: "net1", Sandbox: "/run/netns/x"}},
		IPs: []*types100.IPConfig{
			{Interface: idx(0), Address: net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(32, 32)}},
			{Interface: idx(1), Address: net.IPNet{IP: net.ParseIP("fd10::2"), Mask: net.CIDRMask(64, 128)}},
			{Interface: idx(1), Address: net.IPNet{IP: net.ParseIP("10.244.1.2"), Mask: net.CIDRMask(24, 32)}},
			{Interface: idx(2), Address: net.IPNet{IP: net.ParseIP("172.30.5.1"), Mask: net.CIDRMask(16, 32)}},
		},
	}
	got, err := sandboxIPs(res, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "10.244.1.2" || got[1] != "fd10::2" {
		t.Fatalf("sandboxIPs = %v, want [10.244.1.2 fd10::2] (IPv4 first, eth0 only)", got)
	}
}

func TestLoadNetworkPicksFirstFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10-b.conflist", `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"ptp"},{"type":"tuning"}]}`)
	write("00-a.conf", `{"cniVersion":"1.0.0","name":"a","type":"multus"}`)
	l, file, err := loadNetwork(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(file) != "00-a.conf" || l.Name != "a" || len(l.Plugins) != 1 || l.Plugins[0].Network.Type != "multus" {
		t.Fatalf("loaded %s: %+v", file, l)
	}
	if err := os.Remove(filepath.Join(dir, "00-a.conf")); err != nil {
		t.Fatal(err)
	}
	l, _, err = loadNetwork(dir)
	if err != nil || len(l.Plugins) != 2 {
		t.Fatalf("conflist: %+v, %v", l, err)
	}
	if _, _, err := loadNetwork(t.TempDir()); err == nil {
		t.Fatal("empty directory yielded a network")
	}
}
