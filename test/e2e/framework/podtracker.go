package framework

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// PodTracker follows the pods of one namespace with a single watch, so many
// concurrent waiters cost no API requests (polling hundreds of pods would).
type PodTracker struct {
	mu   sync.Mutex
	cond *sync.Cond
	pods map[string]*corev1.Pod // by name; the latest object seen
	stop context.CancelFunc
	done chan struct{}
}

// TrackPods starts following the pods of namespace until Stop.
func (f *Framework) TrackPods(ctx context.Context, namespace string) (*PodTracker, error) {
	list, err := f.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to list pods of namespace %q: %w", namespace, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &PodTracker{pods: map[string]*corev1.Pod{}, stop: cancel, done: make(chan struct{})}
	t.cond = sync.NewCond(&t.mu)
	for i := range list.Items {
		t.pods[list.Items[i].Name] = &list.Items[i]
	}
	go t.run(ctx, f, namespace, list.ResourceVersion)
	return t, nil
}

func (t *PodTracker) run(ctx context.Context, f *Framework, namespace, rv string) {
	defer close(t.done)
	defer t.cond.Broadcast()
	for ctx.Err() == nil {
		w, err := f.Client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				// Expired resourceVersion: relist.
				list, err := f.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
				if err == nil {
					t.mu.Lock()
					t.pods = map[string]*corev1.Pod{}
					for i := range list.Items {
						t.pods[list.Items[i].Name] = &list.Items[i]
					}
					rv = list.ResourceVersion
					t.mu.Unlock()
					t.cond.Broadcast()
				}
				break
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if ev.Type == watch.Bookmark {
				continue
			}
			t.mu.Lock()
			if ev.Type == watch.Deleted {
				if cur := t.pods[p.Name]; cur != nil && cur.UID == p.UID {
					delete(t.pods, p.Name)
				}
			} else {
				t.pods[p.Name] = p
			}
			t.mu.Unlock()
			t.cond.Broadcast()
		}
		w.Stop()
	}
}

// Stop ends the watch.
func (t *PodTracker) Stop() {
	t.stop()
	<-t.done
}

// Wait blocks until cond holds for the pod called name (nil when there is no
// such pod) or timeout passes; it returns the pod it saw last.
func (t *PodTracker) Wait(name string, timeout time.Duration, cond func(*corev1.Pod) bool) (*corev1.Pod, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, t.cond.Broadcast)
	defer timer.Stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		p := t.pods[name]
		if cond(p) {
			return p, nil
		}
		if time.Now().After(deadline) {
			phase := "absent"
			if p != nil {
				phase = string(p.Status.Phase)
			}
			return p, fmt.Errorf("failed to see pod %q reach the expected state within %s (phase %s)", name, timeout, phase)
		}
		select {
		case <-t.done:
			return p, fmt.Errorf("failed to wait for pod %q: tracker stopped", name)
		default:
		}
		t.cond.Wait()
	}
}

// WaitRunning waits until the pod of that name and UID is Running and Ready
// with an IP.
func (t *PodTracker) WaitRunning(name string, uid types.UID, timeout time.Duration) (*corev1.Pod, error) {
	return t.Wait(name, timeout, func(p *corev1.Pod) bool { return p != nil && p.UID == uid && podRunning(p) })
}

// WaitGone waits until no pod of that name and UID exists.
func (t *PodTracker) WaitGone(name string, uid types.UID, timeout time.Duration) error {
	_, err := t.Wait(name, timeout, func(p *corev1.Pod) bool { return p == nil || p.UID != uid })
	return err
}

// Pods returns the pods currently known.
func (t *PodTracker) Pods() []*corev1.Pod {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(t.pods))
	for _, p := range t.pods {
		out = append(out, p)
	}
	return out
}
