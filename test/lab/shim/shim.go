// Package shim is the lab's stand-in for a kubelet: it keeps its Node Ready
// (status heartbeats and Lease renewals) and gives every pod bound to the node
// a network namespace set up by the node's real CNI configuration (Multus and
// its delegates), reporting the pod Running with the addresses CNI returned.
// Containers are not run; pods stay Running until deleted.
package shim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/proc"
	"github.com/spindle-net/spindle/test/lab/topology"
)

// Intervals of the node heartbeat and pod retries.
const (
	heartbeatInterval = 2 * time.Second
	leaseDuration     = 40
	retryBase         = time.Second
	retryMax          = 30 * time.Second
	cniTimeout        = 2 * time.Minute
)

// KubeletVersion is what the Node reports.
const KubeletVersion = "v1.37.1"

// HolderName is the process name of a node's mount-namespace holder.
func HolderName(node string) string { return "holder-" + node }

// Shim runs one node.
type Shim struct {
	cfg      config.Config
	node     string
	index    int
	cs       kubernetes.Interface
	recorder record.EventRecorder
	cni      *libcni.CNIConfig
	confDir  string
	queue    workqueue.TypedRateLimitingInterface[string]
	pods     corelisters.PodLister
	lease    *coordv1.Lease
	log      *log.Logger
	// journalMu serialises appends to the CNI DEL journal.
	journalMu sync.Mutex
}

// Run serves node until ctx ends.
func Run(ctx context.Context, cfg config.Config, node string) error {
	idx, ok := cfg.NodeIndex(node)
	if !ok {
		return fmt.Errorf("failed to run shim: %q is not a node of this lab (nodes: %s)", node, strings.Join(cfg.NodeNames(), ", "))
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.KubeconfigPath())
	if err != nil {
		return fmt.Errorf("failed to load kubeconfig %q: %w", cfg.KubeconfigPath(), err)
	}
	rc.QPS, rc.Burst = 50, 100
	rc.UserAgent = "lab-shim/" + node
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	cniLog, err := os.OpenFile(filepath.Join(cfg.LogDir(), node+"-cni.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open CNI log: %w", err)
	}
	defer cniLog.Close()
	pm := proc.Manager{LabDir: cfg.Dir, PidDir: cfg.PidDir()}
	ex := &nodeExec{
		holderPid: func() (int, error) {
			pid, ok := pm.Pid(HolderName(node))
			if !ok {
				return 0, fmt.Errorf("failed to find the mount namespace of node %q: holder process is not running (run `lab up` again)", node)
			}
			return pid, nil
		},
		nodeNetns:  topology.NetnsPath(cfg.NodeNetns(node)),
		hostBinDir: cfg.NodeFS(node, "/opt/cni/bin"),
		nodeBinDir: "/opt/cni/bin",
		stderr:     cniLog,
	}
	bc := record.NewBroadcaster()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	defer bc.Shutdown()
	s := &Shim{
		cfg:      cfg,
		node:     node,
		index:    idx,
		cs:       cs,
		recorder: bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: node}),
		cni:      libcni.NewCNIConfigWithCacheDir([]string{"/opt/cni/bin"}, filepath.Join(cfg.NodeDir(node), "cni-cache"), ex),
		confDir:  cfg.NodeFS(node, "/etc/cni/net.d"),
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](retryBase, retryMax)),
		log:      logger,
	}
	if err := os.MkdirAll(cfg.NodePodsDir(node), 0o755); err != nil {
		return err
	}
	// Like a kubelet, keep trying to register: the API server may be
	// restarting, and other controllers update a new Node concurrently.
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		err := s.registerNode(ctx)
		if err == nil {
			break
		}
		logger.Printf("%v (retrying in %s)", err, delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
	go s.heartbeat(ctx)

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := factory.Core().V1().Pods()
	s.pods = inf.Lister()
	enqueue := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok {
			s.queue.Add(key(p.Namespace, p.Name, string(p.UID)))
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return fmt.Errorf("failed to sync pod cache of node %q", node)
	}
	// Pods recorded but no longer in the API were deleted while the shim
	// was down: their keys are queued so they are torn down.
	for _, st := range s.listStates() {
		s.queue.Add(key(st.Namespace, st.Name, st.UID))
	}
	logger.Printf("node %s serving", node)
	for range cfg.CNIWorkers {
		go func() {
			for s.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	s.queue.ShutDown()
	return nil
}

func key(ns, name, uid string) string { return ns + "/" + name + "/" + uid }

func (s *Shim) processNext(ctx context.Context) bool {
	k, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(k)
	if err := s.sync(ctx, k); err != nil {
		s.log.Printf("pod %s: %v (attempt %d)", k, err, s.queue.NumRequeues(k)+1)
		s.queue.AddRateLimited(k)
		return true
	}
	s.queue.Forget(k)
	return true
}

// podState is what the shim remembers of a pod on disk, so it can tear the
// pod down after a restart even when the pod is gone from the API.
type podState struct {
	Namespace   string   `json:"namespace"`
	Name        string   `json:"name"`
	UID         string   `json:"uid"`
	ContainerID string   `json:"containerID"`
	Netns       string   `json:"netns"`
	HostNetwork bool     `json:"hostNetwork,omitempty"`
	Ready       bool     `json:"ready"`
	IPs         []string `json:"ips,omitempty"`
}

func (s *Shim) statePath(uid string) string {
	return filepath.Join(s.cfg.NodePodsDir(s.node), uid+".json")
}

func (s *Shim) loadState(uid string) (*podState, error) {
	data, err := os.ReadFile(s.statePath(uid))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var st podState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("failed to parse pod record %q: %w", s.statePath(uid), err)
	}
	return &st, nil
}

func (s *Shim) saveState(st *podState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return config.WriteFileAtomic(s.statePath(st.UID), data, 0o644)
}

func (s *Shim) listStates() []podState {
	entries, _ := os.ReadDir(s.cfg.NodePodsDir(s.node))
	var out []podState
	for _, e := range entries {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if st, err := s.loadState(uid); err == nil && st != nil {
			out = append(out, *st)
		}
	}
	return out
}

func (s *Shim) sync(ctx context.Context, k string) error {
	parts := strings.SplitN(k, "/", 3)
	if len(parts) != 3 {
		return nil
	}
	ns, name, uid := parts[0], parts[1], parts[2]
	pod, err := s.pods.Pods(ns).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		pod = nil
	}
	if pod != nil && string(pod.UID) != uid {
		pod = nil
	}
	st, err := s.loadState(uid)
	if err != nil {
		return err
	}
	if pod == nil || pod.DeletionTimestamp != nil {
		if st != nil {
			if err := s.teardown(ctx, st); err != nil {
				return err
			}
		}
		if pod != nil {
			return s.finalizeDelete(ctx, pod)
		}
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		// A terminal pod keeps its API object but not its sandbox.
		if st != nil {
			return s.teardown(ctx, st)
		}
		return nil
	}
	if st == nil || !st.Ready {
		if st, err = s.setup(ctx, pod, st); err != nil {
			return err
		}
	}
	if !reportedRunning(pod, st.IPs) {
		return s.reportRunning(ctx, pod, st.IPs)
	}
	return nil
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Shim) runtimeConf(st *podState) *libcni.RuntimeConf {
	netns := topology.NetnsPath(st.Netns)
	if _, err := os.Stat(netns); err != nil {
		netns = ""
	}
	return &libcni.RuntimeConf{
		ContainerID: st.ContainerID,
		NetNS:       netns,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", st.Namespace},
			{"K8S_POD_NAME", st.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", st.ContainerID},
			{"K8S_POD_UID", st.UID},
		},
	}
}

// setup creates the pod's sandbox network: namespace plus CNI ADD. On a CNI
// failure it records an event and cleans up with CNI DEL; the caller retries
// with backoff.
func (s *Shim) setup(ctx context.Context, pod *corev1.Pod, st *podState) (*podState, error) {
	if st == nil {
		st = &podState{
			Namespace:   pod.Namespace,
			Name:        pod.Name,
			UID:         string(pod.UID),
			ContainerID: newContainerID(),
			Netns:       s.cfg.PodNetns(pod.Namespace, pod.Name, string(pod.UID)),
			HostNetwork: pod.Spec.HostNetwork,
		}
	}
	if st.HostNetwork {
		st.Netns = s.cfg.NodeNetns(s.node)
		st.Ready = true
		st.IPs = []string{s.cfg.NodeUnderlayV4(s.index).String(), s.cfg.NodeUnderlayV6(s.index).String()}
		return st, s.saveState(st)
	}
	// Record first so a crash after this point still leads to a teardown.
	if err := s.saveState(st); err != nil {
		return nil, err
	}
	if !topology.NetnsExists(st.Netns) {
		if err := topology.AddNetns(ctx, st.Netns); err != nil {
			return nil, err
		}
	}
	list, file, err := loadNetwork(s.confDir)
	if err != nil {
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.cni.AddNetworkList(cctx, list, s.runtimeConf(st))
	if err == nil {
		st.IPs, err = sandboxIPs(res, "eth0")
	}
	if err != nil {
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox",
			"Failed to create pod sandbox: failed to set up network for sandbox %q (%s): %v", st.ContainerID[:12], filepath.Base(file), err)
		dctx, dcancel := context.WithTimeout(ctx, cniTimeout)
		defer dcancel()
		derr := s.cni.DelNetworkList(dctx, list, s.runtimeConf(st))
		s.journalDel(st, "failed-add", derr)
		if derr != nil {
			s.log.Printf("pod %s/%s: CNI DEL after failed ADD: %v", pod.Namespace, pod.Name, derr)
		}
		return nil, fmt.Errorf("failed to set up network of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	s.log.Printf("pod %s/%s: CNI ADD ok in %s: %v", pod.Namespace, pod.Name, time.Since(start).Round(time.Millisecond), st.IPs)
	st.Ready = true
	return st, s.saveState(st)
}

// teardown runs CNI DEL, removes the namespace and forgets the pod.
func (s *Shim) teardown(ctx context.Context, st *podState) error {
	if !st.HostNetwork {
		list, _, err := loadNetwork(s.confDir)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, cniTimeout)
		defer cancel()
		start := time.Now()
		err = s.cni.DelNetworkList(cctx, list, s.runtimeConf(st))
		s.journalDel(st, "teardown", err)
		if err != nil {
			if st.Ready {
				// A sandbox that was set up must be torn down: the pod
				// stays Terminating and DEL is retried, as on a real node.
				return fmt.Errorf("failed to tear down network of pod %s/%s: %w", st.Namespace, st.Name, err)
			}
			// ADD never succeeded (and was already followed by a DEL):
			// the namespace is removed anyway so the pod can go.
			s.log.Printf("pod %s/%s: CNI DEL of a sandbox that never came up failed, removing it anyway: %v", st.Namespace, st.Name, err)
		} else {
			s.log.Printf("pod %s/%s (uid %s): CNI DEL ok in %s", st.Namespace, st.Name, st.UID, time.Since(start).Round(time.Millisecond))
		}
		if err := topology.DelNetns(ctx, st.Netns); err != nil {
			return err
		}
	}
	if err := os.Remove(s.statePath(st.UID)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// finalizeDelete removes a terminating pod from the API once its sandbox is
// gone, as a kubelet does after its containers stopped.
func (s *Shim) finalizeDelete(ctx context.Context, pod *corev1.Pod) error {
	err := s.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

func reportedRunning(pod *corev1.Pod, ips []string) bool {
	if pod.Status.Phase != corev1.PodRunning || len(pod.Status.PodIPs) != len(ips) {
		return false
	}
	for i, ip := range pod.Status.PodIPs {
		if ip.IP != ips[i] {
			return false
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			return false
		}
	}
	return len(pod.Status.ContainerStatuses) == len(pod.Spec.Containers)
}

func (s *Shim) reportRunning(ctx context.Context, pod *corev1.Pod, ips []string) error {
	st, _ := s.loadState(string(pod.UID))
	cid := ""
	if st != nil {
		cid = st.ContainerID
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := s.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID || cur.DeletionTimestamp != nil {
			return nil
		}
		cur.Status = RunningStatus(cur, s.hostIPs(), ips, cid, metav1.Now())
		_, err = s.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (s *Shim) hostIPs() []string {
	return []string{s.cfg.NodeUnderlayV4(s.index).String(), s.cfg.NodeUnderlayV6(s.index).String()}
}

// RunningStatus computes the status of a pod whose sandbox is up: Running,
// every condition true, containers running. Existing transition and start
// times are kept.
func RunningStatus(pod *corev1.Pod, hostIPs, podIPs []string, containerID string, now metav1.Time) corev1.PodStatus {
	st := pod.Status
	st.Phase = corev1.PodRunning
	st.Reason, st.Message = "", ""
	if st.StartTime == nil {
		st.StartTime = &now
	}
	st.HostIP = hostIPs[0]
	st.HostIPs = nil
	for _, ip := range hostIPs {
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: ip})
	}
	st.PodIP, st.PodIPs = "", nil
	if len(podIPs) > 0 {
		st.PodIP = podIPs[0]
	}
	for _, ip := range podIPs {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setCondition(&st, t, now)
	}
	started := st.StartTime
	st.InitContainerStatuses = nil
	for _, c := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "lab://" + c.Image, Ready: true,
			ContainerID: "lab://" + containerID,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: *started, FinishedAt: *started,
			}},
		})
	}
	st.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "lab://" + c.Image, Ready: true, Started: ptr.To(true),
			ContainerID: "lab://" + containerID,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *started}},
		})
	}
	return st
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, now metav1.Time) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != corev1.ConditionTrue {
				st.Conditions[i].Status = corev1.ConditionTrue
				st.Conditions[i].LastTransitionTime = now
				st.Conditions[i].Reason, st.Conditions[i].Message = "", ""
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
}

// Node registration and heartbeats.

func (s *Shim) nodeObject() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: s.node,
			Labels: map[string]string{
				"kubernetes.io/hostname": s.node,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     runtime.GOARCH,
				"spindle.lab/node":       "true",
			},
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  s.cfg.NodePodCIDR(s.index).String(),
			PodCIDRs: []string{s.cfg.NodePodCIDR(s.index).String(), s.cfg.NodePodCIDRV6(s.index).String()},
		},
	}
}

func (s *Shim) registerNode(ctx context.Context) error {
	nodes := s.cs.CoreV1().Nodes()
	n, err := nodes.Create(ctx, s.nodeObject(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		n, err = nodes.Get(ctx, s.node, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to register node %q: %w", s.node, err)
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourcePods:             *resource.NewQuantity(int64(s.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi"),
	}
	n.Status.Capacity = res
	n.Status.Allocatable = res
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: s.cfg.NodeUnderlayV4(s.index).String()},
		{Type: corev1.NodeInternalIP, Address: s.cfg.NodeUnderlayV6(s.index).String()},
		{Type: corev1.NodeHostName, Address: s.node},
	}
	n.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		MachineID: s.node, SystemUUID: s.node, BootID: s.node,
		KernelVersion: kernelVersion(), OSImage: "Spindle lab node", ContainerRuntimeVersion: "lab://1",
		KubeletVersion: KubeletVersion, OperatingSystem: "linux", Architecture: runtime.GOARCH,
	}
	n.Status.Conditions = NodeConditions(n.Status.Conditions, metav1.Now())
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_, err := nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			cur, gerr := nodes.Get(ctx, s.node, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			cur.Status = n.Status
			cur.Status.Conditions = NodeConditions(cur.Status.Conditions, metav1.Now())
			n = cur
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to update status of node %q: %w", s.node, err)
	}
	return nil
}

func kernelVersion() string {
	data, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(data))
}

// NodeConditions returns the conditions of a healthy node given the current
// ones: heartbeat now, transition time kept unless the status changes.
func NodeConditions(cur []corev1.NodeCondition, now metav1.Time) []corev1.NodeCondition {
	want := []struct {
		t      corev1.NodeConditionType
		status corev1.ConditionStatus
		reason string
		msg    string
	}{
		{corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
		{corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
		{corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
		{corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "lab shim is posting ready status"},
	}
	out := make([]corev1.NodeCondition, 0, len(want))
	for _, w := range want {
		c := corev1.NodeCondition{Type: w.t, Status: w.status, Reason: w.reason, Message: w.msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, old := range cur {
			if old.Type == w.t && old.Status == w.status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		out = append(out, c)
	}
	return out
}

func (s *Shim) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		if err := s.renewLease(ctx); err != nil && ctx.Err() == nil {
			s.log.Printf("lease: %v", err)
		}
		if err := s.postStatus(ctx); err != nil && ctx.Err() == nil {
			s.log.Printf("node status: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Shim) postStatus(ctx context.Context) error {
	nodes := s.cs.CoreV1().Nodes()
	n, err := nodes.Get(ctx, s.node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return s.registerNode(ctx)
	}
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": NodeConditions(n.Status.Conditions, metav1.Now())}})
	if err != nil {
		return err
	}
	_, err = nodes.PatchStatus(ctx, s.node, patch)
	return err
}

func (s *Shim) renewLease(ctx context.Context) error {
	leases := s.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NowMicro()
	if s.lease == nil {
		l, err := leases.Get(ctx, s.node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			n, nerr := s.cs.CoreV1().Nodes().Get(ctx, s.node, metav1.GetOptions{})
			if nerr != nil {
				return nerr
			}
			l = &coordv1.Lease{
				ObjectMeta: metav1.ObjectMeta{
					Name: s.node, Namespace: corev1.NamespaceNodeLease,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}},
				},
				Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(s.node), LeaseDurationSeconds: ptr.To[int32](leaseDuration), RenewTime: &now},
			}
			l, err = leases.Create(ctx, l, metav1.CreateOptions{})
		}
		if err != nil {
			return err
		}
		s.lease = l
	}
	l := s.lease.DeepCopy()
	l.Spec.RenewTime = &now
	l.Spec.HolderIdentity = ptr.To(s.node)
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		s.lease = nil
		return err
	}
	s.lease = updated
	return nil
}

// DelRecord is one line of the node's CNI DEL journal
// (config.Config.NodeCNIJournal): what a runtime saw of a DEL, so that a
// DEL that reported success can be held against what it left behind.
type DelRecord struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       string    `json:"uid"`
	// Phase is "teardown" (the pod is going away) or "failed-add" (the
	// clean-up after a failed ADD; the pod retries).
	Phase string `json:"phase"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func (s *Shim) journalDel(st *podState, phase string, err error) {
	r := DelRecord{Time: time.Now().UTC(), Namespace: st.Namespace, Name: st.Name, UID: st.UID, Phase: phase, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
	}
	line, _ := json.Marshal(r)
	s.journalMu.Lock()
	defer s.journalMu.Unlock()
	f, ferr := os.OpenFile(s.cfg.NodeCNIJournal(s.node), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if ferr != nil {
		s.log.Printf("CNI DEL journal: %v", ferr)
		return
	}
	defer f.Close()
	if _, werr := f.Write(append(line, '\n')); werr != nil {
		s.log.Printf("CNI DEL journal: %v", werr)
	}
}
