package migrate

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/store"
)

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v2beta1.AddToScheme(s)
	return s
}

func pod(ns, name, uid, node string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}, Spec: corev1.PodSpec{NodeName: node}}
	p.Status.Phase = corev1.PodRunning
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func spiderPool(name, subnet string, ips []string, allocated string) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: ips, Gateway: ptr.To(strings.TrimSuffix(subnet, "0/24") + "1")}}
	if allocated != "" {
		p.Status.AllocatedIPs = &allocated
	}
	return p
}

func withStatus(p *corev1.Pod, status string) *corev1.Pod {
	p.Annotations = map[string]string{"k8s.v1.cni.cncf.io/network-status": status}
	return p
}

func newClient(objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme()).WithStatusSubresource(&v2beta1.SpiderEndpoint{}, &v2beta1.SpiderIPPool{}).WithObjects(objs...).Build()
}

func claims(t *testing.T, c client.Client) map[string]v2beta1.SpiderIPClaim {
	t.Helper()
	l := &v2beta1.SpiderIPClaimList{}
	if err := c.List(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	out := map[string]v2beta1.SpiderIPClaim{}
	for _, c := range l.Items {
		out[c.Name] = c
	}
	return out
}

func outcomes(rep *Report) map[string]Outcome {
	out := map[string]Outcome{}
	for _, l := range rep.Lines {
		out[l.Record.Address.String()+" "+l.Record.PodKey()] = l.Outcome
	}
	return out
}

func TestImportSpiderpool(t *testing.T) {
	ctx := context.Background()
	sts := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "s1", Controller: ptr.To(true)}
	held := v2beta1.NewClaim(mustAddr("10.6.0.9"), v2beta1.IPClaimSpec{Pool: "p", PodNamespace: "ns", PodName: "spindle-pod", PodUID: "u9"})
	c := newClient(
		spiderPool("p", "10.6.0.0/24", []string{"10.6.0.2-10.6.0.20"},
			`{"10.6.0.5":{"pod":"ns/a","podUid":"ua"},"10.6.0.6":{"pod":"ns/gone","podUid":"ug"},`+
				`"10.6.0.7":{"pod":"ns/db-0","podUid":"udb"},"10.6.0.8":{"pod":"ns/a2","podUid":"old-uid"},`+
				`"10.6.0.9":{"pod":"ns/b","podUid":"ub"},"10.6.0.30":{"pod":"ns/c","podUid":"uc"}}`),
		withStatus(pod("ns", "a", "ua", "n1", nil), `[{"name":"kube-system/old","interface":"net1","ips":["10.6.0.5"]}]`), pod("ns", "db-0", "udb", "n2", sts), pod("ns", "a2", "new-uid", "n1", nil),
		pod("ns", "b", "ub", "n1", nil), pod("ns", "c", "uc", "n1", nil), held,
		&v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db-0"}, Status: v2beta1.WorkloadEndpointStatus{
			Current:             v2beta1.PodIPAllocation{UID: "udb", Node: "n2", IPs: []v2beta1.IPAllocationDetail{{Interface: "net1", IPv4: ptr.To("10.6.0.7/24"), IPv4Pool: ptr.To("p")}}},
			OwnerControllerType: "StatefulSet", OwnerControllerName: "db"}},
	)

	// A dry run writes nothing and tells what the import would do.
	dry, err := (&Importer{C: c, DryRun: true}).Run(ctx, FromSpiderpool)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(claims(t, c)); n != 1 {
		t.Fatalf("the dry run wrote claims: %d", n)
	}
	want := map[string]Outcome{
		"10.6.0.5 ns/a": WouldImport, "10.6.0.6 ns/gone": PodGone, "10.6.0.7 ns/db-0": WouldImport,
		"10.6.0.8 ns/a2": PodGone, "10.6.0.9 ns/b": Conflict, "10.6.0.30 ns/c": NoPool,
	}
	if got := outcomes(dry); !equalMap(got, want) {
		t.Fatalf("dry run outcomes %v, want %v", got, want)
	}

	rep, err := (&Importer{C: c}).Run(ctx, FromSpiderpool)
	if err != nil {
		t.Fatal(err)
	}
	want["10.6.0.5 ns/a"], want["10.6.0.7 ns/db-0"] = Imported, Imported
	if got := outcomes(rep); !equalMap(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if rep.Problems() != 2 || rep.Endpoints != 2 {
		t.Fatalf("problems %d, endpoints %d; want 2 and 2", rep.Problems(), rep.Endpoints)
	}
	cl := claims(t, c)
	db := cl["10.6.0.7"].Spec
	if db.Pool != "p" || db.PodUID != "udb" || db.OwnerKind != "StatefulSet" || db.OwnerName != "db" || db.Interface != "net1" || db.Node != "n2" {
		t.Fatalf("StatefulSet replica's claim %+v", db)
	}
	if cl["10.6.0.9"].Spec.PodName != "spindle-pod" {
		t.Fatal("the conflicting claim was changed")
	}
	se := &v2beta1.SpiderEndpoint{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "a"}, se); err != nil {
		t.Fatal(err)
	}
	if se.Status.Current.Addresses != "net1=10.6.0.5/24" || se.Labels[store.LabelEndpointNode] != "n1" || *se.Status.Current.IPs[0].IPv4Gateway != "10.6.0.1" {
		t.Fatalf("SpiderEndpoint of ns/a: %+v", se.Status.Current)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"imported         10.6.0.5        pod=ns/a interface=net1 pool=p (from SpiderIPPool p)",
		"skipped-pod-gone 10.6.0.6        pod=ns/gone: the pod does not exist (from SpiderIPPool p)",
		"conflict         10.6.0.9        pod=ns/b pool=p: the address is already held in Spindle by pod ns/spindle-pod",
		`no-pool          10.6.0.30       pod=ns/c: the address is not in spec.ips of SpiderIPPool "p"`,
		"summary: spiderpool: 6 records, 2 imported, 0 already imported, 2 skipped (pod gone), 1 conflicts, 1 outside every pool; 2 SpiderEndpoints written",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}

	// Twice: nothing changes.
	before := claims(t, c)
	again, err := (&Importer{C: c}).Run(ctx, FromSpiderpool)
	if err != nil {
		t.Fatal(err)
	}
	want["10.6.0.5 ns/a"], want["10.6.0.7 ns/db-0"] = AlreadyImported, AlreadyImported
	if got := outcomes(again); !equalMap(got, want) || again.Endpoints != 0 {
		t.Fatalf("second run: outcomes %v (want %v), %d endpoints written", got, want, again.Endpoints)
	}
	after := claims(t, c)
	for name, b := range before {
		if after[name].ResourceVersion != b.ResourceVersion {
			t.Errorf("claim %s changed on the second run", name)
		}
	}
	// The pool's old record is left as it was.
	p := &v2beta1.SpiderIPPool{}
	if err := c.Get(ctx, client.ObjectKey{Name: "p"}, p); err != nil || p.Status.AllocatedIPs == nil || !strings.Contains(*p.Status.AllocatedIPs, "ns/db-0") {
		t.Fatalf("status.allocatedIPs was not kept: %v", err)
	}
}

func TestImportWhereabouts(t *testing.T) {
	ctx := context.Background()
	wb := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(WhereaboutsGroupVersion.WithKind(kind))
		u.SetNamespace("kube-system")
		u.SetName(name)
		return u
	}
	s := scheme()
	for _, k := range []string{"IPPool", "OverlappingRangeIPReservation"} {
		s.AddKnownTypeWithName(WhereaboutsGroupVersion.WithKind(k), &unstructured.Unstructured{})
		s.AddKnownTypeWithName(WhereaboutsGroupVersion.WithKind(k+"List"), &unstructured.UnstructuredList{})
	}
	// Disabled (docs/migrate-from-whereabouts.md): hands out nothing new,
	// and the import claims the addresses live pods hold in it.
	disabled := spiderPool("w", "10.7.0.0/24", []string{"10.7.0.10-10.7.0.20"}, "")
	disabled.Spec.Disable = ptr.To(true)
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v2beta1.SpiderEndpoint{}).WithObjects(
		disabled,
		pod("ns", "a", "ua", "n1", nil),
		wb("IPPool", "10.7.0.0-24", map[string]any{"range": "10.7.0.0/24", "allocations": map[string]any{
			"10": map[string]any{"id": "c1", "podref": "ns/a", "ifname": "net1"},
			"11": map[string]any{"id": "c2", "podref": "ns/gone", "ifname": "net1"},
		}}),
		wb("IPPool", "10.8.0.0-24", map[string]any{"range": "10.8.0.0/24", "allocations": map[string]any{
			"5": map[string]any{"id": "c3", "podref": "ns/a", "ifname": "net2"},
		}}),
		wb("OverlappingRangeIPReservation", "10.7.0.10", map[string]any{"containerid": "c1", "podref": "ns/a", "ifname": "net1"}),
	).Build()
	rep, err := (&Importer{C: c}).Run(ctx, FromWhereabouts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Outcome{"10.7.0.10 ns/a": Imported, "10.7.0.11 ns/gone": PodGone, "10.8.0.5 ns/a": NoPool}
	if got := outcomes(rep); !equalMap(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	cl := claims(t, c)["10.7.0.10"].Spec
	if cl.Pool != "w" || cl.PodUID != "ua" || cl.Interface != "net1" || cl.ContainerID != "c1" {
		t.Fatalf("claim %+v", cl)
	}
	if !strings.Contains(rep.Lines[0].Record.Source, "IPPool kube-system/10.7.0.0-24, OverlappingRangeIPReservation kube-system/10.7.0.10") {
		t.Errorf("source %q", rep.Lines[0].Record.Source)
	}
}

// FuzzInterfaceOf: whatever Multus' network-status annotation holds, the
// interface found is one the annotation names for that address, or "".
func FuzzInterfaceOf(f *testing.F) {
	for _, s := range []string{"", "[]", `[{"name":"n","interface":"net1","ips":["10.6.0.5"]}]`,
		`[{"interface":"net2","ips":["10.6.0.5/24","fd00::5"]}]`, `{"interface":"net1"}`, `[{"ips":[5]}]`} {
		f.Add(s, "10.6.0.5")
	}
	f.Fuzz(func(t *testing.T, status, addr string) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		got := InterfaceOf(withStatus(pod("ns", "p", "u", "n", nil), status), a)
		if got != "" && !strings.Contains(status, got) {
			t.Fatalf("InterfaceOf = %q, not in the annotation %q", got, status)
		}
	})
}

func TestImportUnknownSource(t *testing.T) {
	_, err := (&Importer{C: newClient()}).Run(context.Background(), "kube-ipam")
	if err == nil || !strings.Contains(err.Error(), `unknown import source "kube-ipam"`) {
		t.Fatalf("err = %v", err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func equalMap(a, b map[string]Outcome) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
