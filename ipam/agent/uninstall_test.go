package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestParseUninstallFlags(t *testing.T) {
	for _, tc := range []struct {
		ds, files, err string
		want           []string
	}{
		{"", "", "", nil},
		{"kube-system/spindle-agent", "/host/cni-bin/spiderpool, /host/cni-bin/coordinator,", "", []string{"/host/cni-bin/spiderpool", "/host/cni-bin/coordinator"}},
		{"", "/host/cni-bin/spiderpool", "--remove-on-uninstall needs --daemonset", nil},
		{"spindle-agent", "", `--daemonset "spindle-agent": want namespace/name`, nil},
		{"a/b/c", "", `--daemonset "a/b/c"`, nil},
		{"ns/ds", "cni-bin/spiderpool", `"cni-bin/spiderpool" is not a clean absolute file path`, nil},
		{"ns/ds", "/host/../etc/passwd", "not a clean absolute file path", nil},
		{"ns/ds", "/", "not a clean absolute file path", nil},
	} {
		u, err := parseUninstall(tc.ds, tc.files)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q %q: got %v, want an error with %q", tc.ds, tc.files, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(u.Files, tc.want) {
			t.Errorf("%q %q: got %v %v, want %v", tc.ds, tc.files, u.Files, err, tc.want)
		}
	}
}

// The files go only when the DaemonSet is deleted: a restart, an upgrade
// (the DaemonSet is still there) or an eviction keep them.
func TestUninstallRemovesFilesOnlyWhenTheDaemonSetIsDeleted(t *testing.T) {
	s := runtime.NewScheme()
	if err := appsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugin, other := filepath.Join(dir, "spiderpool"), filepath.Join(dir, "macvlan")
	for _, f := range []string{plugin, other} {
		if err := os.WriteFile(f, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, err := parseUninstall("kube-system/spindle-agent", plugin+","+filepath.Join(dir, "coordinator"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "spindle-agent"}}

	c := fake.NewClientBuilder().WithScheme(s).WithObjects(ds.DeepCopy()).Build()
	if removed, err := u.cleanUp(ctx, c); err != nil || len(removed) != 0 {
		t.Fatalf("DaemonSet in place: removed %v (%v)", removed, err)
	}

	deleting := ds.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deleting.Finalizers = []string{"foregroundDeletion"}
	c = fake.NewClientBuilder().WithScheme(s).WithObjects(deleting).Build()
	removed, err := u.cleanUp(ctx, c)
	if err != nil || !slices.Equal(removed, []string{plugin}) {
		t.Fatalf("DaemonSet being deleted: removed %v (%v), want only %s (the coordinator was never there)", removed, err, plugin)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a file not listed was touched: %v", err)
	}

	c = fake.NewClientBuilder().WithScheme(s).Build()
	if removed, err := u.cleanUp(ctx, c); err != nil || len(removed) != 0 {
		t.Fatalf("DaemonSet gone, files already gone: removed %v (%v)", removed, err)
	}

	// The release's RBAC went first: the credentials count as revoked.
	if err := os.WriteFile(plugin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	forbidden := interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "daemonsets"}, "spindle-agent", errors.New("no RBAC"))
	}}
	c = fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(forbidden).Build()
	if removed, err := u.cleanUp(ctx, c); err != nil || !slices.Equal(removed, []string{plugin}) {
		t.Fatalf("credentials revoked: removed %v (%v)", removed, err)
	}
	// Any other error, until the deadline: nothing is removed.
	if err := os.WriteFile(plugin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	unavailable := interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return apierrors.NewServiceUnavailable("etcd is down")
	}}
	c = fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(unavailable).Build()
	short, cancel := context.WithTimeout(ctx, 2*uninstallRetry)
	defer cancel()
	if removed, err := u.cleanUp(short, c); err == nil || !strings.Contains(err.Error(), "etcd is down") || len(removed) != 0 {
		t.Fatalf("API server unavailable: removed %v (%v), want nothing and the error", removed, err)
	}
	if _, err := os.Stat(plugin); err != nil {
		t.Fatalf("the plugin went although nothing said the DaemonSet was deleted: %v", err)
	}
	// An error that passes (the agent stopping while its connection comes
	// up): asked again, the DaemonSet is gone and the files go.
	calls := 0
	flaky := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if calls++; calls == 1 {
			return apierrors.NewServiceUnavailable("connection reset")
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	c = fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(flaky).Build()
	bounded, cancel2 := context.WithTimeout(ctx, uninstallTimeout)
	defer cancel2()
	if removed, err := u.cleanUp(bounded, c); err != nil || !slices.Equal(removed, []string{plugin}) || calls != 2 {
		t.Fatalf("one transient error, then the DaemonSet gone: removed %v (%v) after %d reads", removed, err, calls)
	}
}
