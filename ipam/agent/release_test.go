package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/store"
)

// brokenCache is an informer cache whose reads fail.
type brokenCache struct{ cache.Cache }

func (brokenCache) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("index spiderpool.spidernet.io/pod does not exist")
}

// A DEL that cannot read the pod's claims must not report a release: before
// the fix the read error was logged, the list came back empty and the DEL
// answered success while the claim stayed allocated.
func TestDelFailsWhenClaimsCannotBeRead(t *testing.T) {
	a := &Agent{cache: brokenCache{}, metrics: NewMetrics("test"), log: logr.Discard(), overlay: newOverlay()}
	a.ready.Store(true)
	a.overlay.put(testClaim("10.0.0.1", "a", "10"))
	err := a.Del(context.Background(), &nodeapi.Request{PodNamespace: "ns", PodName: "a", PodUID: "u-a", IfName: "eth0", ContainerID: "c"})
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater || !strings.Contains(e.Msg, `SpiderIPClaims of pod "ns/a"`) {
		t.Fatalf("DEL with an unreadable cache: %v, want try-again naming the pod", err)
	}
}

func TestDelOfAnUnnamedPodIsANoOp(t *testing.T) {
	a := &Agent{cache: brokenCache{}, metrics: NewMetrics("test"), log: logr.Discard(), overlay: newOverlay()}
	if err := a.Del(context.Background(), &nodeapi.Request{ContainerID: "c", IfName: "eth0"}); err != nil {
		t.Fatalf("DEL without pod identity: %v, want success (nothing of ours is attached)", err)
	}
}

func TestDelBeforeTheCacheSyncedFails(t *testing.T) {
	a := &Agent{cache: brokenCache{}, metrics: NewMetrics("test"), log: logr.Discard(), overlay: newOverlay()}
	a.readyErr.Store("informer caches are not synced yet")
	err := a.Del(context.Background(), &nodeapi.Request{PodNamespace: "ns", PodName: "a", PodUID: "u-a", IfName: "eth0", ContainerID: "c"})
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater {
		t.Fatalf("DEL before the caches synced: %v, want try-again", err)
	}
}

// emptyCache is a synced informer cache that holds nothing.
type emptyCache struct{ cache.Cache }

func (emptyCache) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// "DEL cannot delete the claim" (docs/design/ipam-storage.md, crash
// consistency): the pod is gone, the API server refuses the delete, and the
// DEL fails with try-again so the runtime retries; the claim is still held.
func TestDelFailsWhenTheReleaseFails(t *testing.T) {
	live := fake.NewClientBuilder().WithScheme(Scheme()).WithInterceptorFuncs(interceptor.Funcs{
		Delete: func(context.Context, client.WithWatch, client.Object, ...client.DeleteOption) error {
			return apierrors.NewServiceUnavailable("etcd leader changed")
		},
	}).Build()
	a := &Agent{cache: emptyCache{}, live: live, metrics: NewMetrics("test"), log: logr.Discard(), overlay: newOverlay()}
	a.store = &store.Store{W: live, R: a.cache}
	a.engine = allocator.New(allocator.Config{}, engineSource{a}, engineClaims{Store: a.store, a: a})
	a.ready.Store(true)
	c := testClaim("10.0.0.1", "a", "10")
	c.Spec.Interface = "eth0"
	a.overlay.put(c)
	err := a.Del(context.Background(), &nodeapi.Request{PodNamespace: "ns", PodName: "a", PodUID: "u-a", IfName: "eth0", ContainerID: "c"})
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater || !strings.Contains(e.Msg, "failed to release address 10.0.0.1") {
		t.Fatalf("DEL whose delete failed: %v, want try-again naming the address", err)
	}
	if held, _ := a.podClaims("ns/a"); len(held) != 1 {
		t.Fatalf("claims after the failed DEL: %d, want the claim still held", len(held))
	}
}
