package main

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// podRunning reports whether p is Running and Ready with an address and not
// going away.
func podRunning(p *corev1.Pod) bool {
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

// podTracker follows the pods of one phase: which are Running, which
// failed, and when the last of want pods came up.
type podTracker struct {
	mu      sync.Mutex
	want    int
	present map[types.UID]bool
	running map[types.UID]bool
	failed  map[string]string // pod name: why
	allAt   time.Time
	all     chan struct{}
}

func newPodTracker(want int) *podTracker {
	return &podTracker{want: want, present: map[types.UID]bool{}, running: map[types.UID]bool{},
		failed: map[string]string{}, all: make(chan struct{})}
}

// observe records the latest state of a pod, seen at now.
func (t *podTracker) observe(p *corev1.Pod, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.present[p.UID] = true
	if podRunning(p) {
		t.running[p.UID] = true
	} else {
		delete(t.running, p.UID)
	}
	if p.Status.Phase == corev1.PodFailed {
		why := p.Status.Reason
		if p.Status.Message != "" {
			why += ": " + p.Status.Message
		}
		t.failed[p.Name] = why
	}
	if t.allAt.IsZero() && len(t.running) >= t.want {
		t.allAt = now
		close(t.all)
	}
}

// forget records that a pod is gone from the API.
func (t *podTracker) forget(p *corev1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.present, p.UID)
	delete(t.running, p.UID)
}

// counts returns how many pods exist and how many are Running.
func (t *podTracker) counts() (present, running int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.present), len(t.running)
}

// failures returns the failed pods and why.
func (t *podTracker) failures() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.failed))
	for k, v := range t.failed {
		out[k] = v
	}
	return out
}

// allRunningAt returns when the want-th pod was seen Running (zero if not
// yet).
func (t *podTracker) allRunningAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.allAt
}

// poolTracker records when each application's carved pool first had want
// usable addresses.
type poolTracker struct {
	mu      sync.Mutex
	want    int
	readyAt map[string]time.Time // application name: when
}

func newPoolTracker(want int) *poolTracker {
	return &poolTracker{want: want, readyAt: map[string]time.Time{}}
}

// observe looks at a pool seen at now.
func (t *poolTracker) observe(p *v2beta1.SpiderIPPool, now time.Time) {
	app := p.Labels[subnets.LabelAppName]
	if app == "" || p.DeletionTimestamp != nil {
		return
	}
	usable, err := subnets.PoolUsable(p)
	if err != nil || usable.Count() < uint64(t.want) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.readyAt[app]; !seen {
		t.readyAt[app] = now
	}
}

// ready returns when the pool of app was ready.
func (t *poolTracker) ready(app string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.readyAt[app]
	return at, ok
}

// count returns how many applications have their pool.
func (t *poolTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.readyAt)
}
