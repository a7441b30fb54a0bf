package main

import (
	"sync"
	"time"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// podRunning reports whether p is Running and Ready with an address and not
// going away.
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
