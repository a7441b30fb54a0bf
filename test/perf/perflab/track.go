package perflab

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PodRunning reports whether p is Running and Ready with an address and not
// going away.
func PodRunning(p *corev1.Pod) bool {
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

// PodTracker follows the pods of one phase: which are Running, which
// failed, and when the last of want pods came up.
type PodTracker struct {
	mu      sync.Mutex
	want    int
	present map[types.UID]bool
	running map[types.UID]bool
	failed  map[string]string // pod name: why
	allAt   time.Time
	all     chan struct{}
}

func NewPodTracker(want int) *PodTracker {
	return &PodTracker{want: want, present: map[types.UID]bool{}, running: map[types.UID]bool{},
		failed: map[string]string{}, all: make(chan struct{})}
}

// Observe records the latest state of a pod, seen at now.
func (t *PodTracker) Observe(p *corev1.Pod, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.present[p.UID] = true
	if PodRunning(p) {
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

// Forget records that a pod is gone from the API.
func (t *PodTracker) Forget(p *corev1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.present, p.UID)
	delete(t.running, p.UID)
}

// Counts returns how many pods exist and how many are Running.
func (t *PodTracker) Counts() (present, running int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.present), len(t.running)
}

// Failures returns the failed pods and why.
func (t *PodTracker) Failures() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]string, len(t.failed))
	for k, v := range t.failed {
		out[k] = v
	}
	return out
}

// AllRunningAt returns when the want-th pod was seen Running (zero if not
// yet).
func (t *PodTracker) AllRunningAt() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.allAt
}

// poolTracker records when each application's carved pool first had want
// usable addresses.

// All is closed when the want-th pod was seen Running.
func (t *PodTracker) All() <-chan struct{} { return t.all }
