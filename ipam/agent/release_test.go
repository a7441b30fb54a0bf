package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/nodeapi"
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
