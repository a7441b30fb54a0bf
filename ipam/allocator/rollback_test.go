package allocator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// dualStack is a request for v4 and v6 on interface eth0.
func dualStack(name, uid, container string) *Request {
	return request(name, uid, container, Family{Family: ranges.V4, Pools: []string{"v4"}}, Family{Family: ranges.V6, Pools: []string{"v6"}})
}

// failingRollback makes the IPv6 create of the first request fail (so its
// IPv4 claim is rolled back) and every release fail while releaseFails is
// set.
func failingRollback(f *fixture) (releaseFails *atomic.Bool, releases *atomic.Int64) {
	releaseFails, releases = &atomic.Bool{}, &atomic.Int64{}
	releaseFails.Store(true)
	var creates atomic.Int64
	f.mem.Fail = func(op string, c *v2beta1.SpiderIPClaim) error {
		switch {
		case op == "create" && c.Spec.IPVersion == 6 && creates.Add(1) == 1:
			return errors.New("etcdserver: request timed out")
		case op == "release":
			releases.Add(1)
			if releaseFails.Load() {
				return errors.New("connection refused")
			}
		}
		return nil
	}
	return releaseFails, releases
}

func TestRollbackRetriesAreBoundedAndLeftToTheGC(t *testing.T) {
	f := newFixture(t, false)
	f.e.cfg.RollbackBackoff, f.e.cfg.RollbackAttempts = time.Millisecond, 3
	var abandoned atomic.Int64
	f.e.cfg.Hooks.RollbackAbandoned = func(*v2beta1.SpiderIPClaim) { abandoned.Add(1) }
	releaseFails, releases := failingRollback(f)
	if _, err := f.e.Allocate(ctx, dualStack("a", "ua", "c1")); err == nil {
		t.Fatal("allocation whose IPv6 create failed succeeded")
	}
	waitFor(t, f.e, 5*time.Second)
	if n := releases.Load(); n != 1+3 {
		t.Fatalf("%d release attempts, want 1 + 3 background retries", n)
	}
	if abandoned.Load() != 1 || len(f.e.PendingRollbacks()) != 1 {
		t.Fatalf("abandoned %d, pending %d: want the claim left to the garbage collection", abandoned.Load(), len(f.e.PendingRollbacks()))
	}
	// The garbage collection's pass deletes it once the API answers.
	if left := f.e.RetryRollbacks(); left != 1 {
		t.Fatalf("RetryRollbacks while the API fails: %d left, want 1", left)
	}
	releaseFails.Store(false)
	if left := f.e.RetryRollbacks(); left != 0 {
		t.Fatalf("RetryRollbacks: %d left, want 0", left)
	}
	if c := f.mem.Claims(); len(c) != 0 {
		t.Fatalf("claims left after the rollback: %v", addrs(c))
	}
}

func TestRollbackStopsWithTheEngineLifetime(t *testing.T) {
	f := newFixture(t, false)
	f.e.cfg.RollbackBackoff, f.e.cfg.RollbackAttempts = time.Hour, 1000
	life, cancel := context.WithCancel(context.Background())
	f.e.Start(life)
	failingRollback(f)
	if _, err := f.e.Allocate(ctx, dualStack("a", "ua", "c1")); err == nil {
		t.Fatal("allocation whose IPv6 create failed succeeded")
	}
	cancel()
	waitFor(t, f.e, 5*time.Second)
	if len(f.e.PendingRollbacks()) != 1 {
		t.Fatalf("pending %d, want the claim left for the garbage collection", len(f.e.PendingRollbacks()))
	}
}

// A runtime retries the ADD with the same container ID while the rollback
// of the first attempt is still failing: the retry is handed the claim the
// first attempt created (re-binding it is a no-op), so the background
// rollback must not delete it afterwards; that would free the address of a
// running pod.
func TestRollbackNeverDeletesAClaimHandedOutAgain(t *testing.T) {
	f := newFixture(t, false)
	f.e.cfg.RollbackBackoff, f.e.cfg.RollbackAttempts = 20*time.Millisecond, 5
	var mu sync.Mutex // the caller's pod lock
	f.e.cfg.LockHolder = func(string, string) func() { mu.Lock(); return mu.Unlock }
	releaseFails, _ := failingRollback(f)
	mu.Lock()
	if _, err := f.e.Allocate(ctx, dualStack("a", "ua", "c1")); err == nil {
		t.Fatal("allocation whose IPv6 create failed succeeded")
	}
	mu.Unlock()
	mu.Lock()
	got, err := f.e.Allocate(ctx, dualStack("a", "ua", "c1"))
	releaseFails.Store(false) // the API recovers while the retry holds the pod lock
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.e, 10*time.Second)
	held := map[string]bool{}
	for _, c := range f.mem.Claims() {
		held[c.Spec.Address] = true
	}
	for _, c := range got {
		if !held[c.Spec.Address] {
			t.Errorf("address %s handed to the retried ADD was released by the first attempt's rollback", c.Spec.Address)
		}
	}
	if n := len(f.e.PendingRollbacks()); n != 0 {
		t.Errorf("%d rollbacks still pending for a claim in use", n)
	}
}

// waitFor waits for the engine's background rollbacks, failing after d.
func waitFor(t *testing.T, e *Engine, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { e.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("background rollbacks still running after %s", d)
	}
}
