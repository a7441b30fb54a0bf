package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func handler(t *testing.T, hs []Handler, path string) *admission.Webhook {
	t.Helper()
	for _, h := range hs {
		if h.Path == path {
			return h.Webhook
		}
	}
	t.Fatalf("no handler for %s", path)
	return nil
}

func request(t *testing.T, op admissionv1.Operation, obj, old runtime.Object) admission.Request {
	t.Helper()
	raw := func(o runtime.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Operation: op, Object: raw(obj), OldObject: raw(old)}}
}

func TestPoolAdmission(t *testing.T) {
	s := testScheme(t)
	other := pool("other", "10.6.0.0/16", "10.6.0.100-10.6.0.200")
	cur := pool("mine", "10.6.0.0/16", "10.6.0.10-10.6.0.20")
	held := claim("mine", "10.6.0.12", "default", "web-0")
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(other, cur, &held).Build()
	hs := Handlers(s, &Admission{Reader: c})
	ctx := context.Background()

	// Defaulting: ipVersion, canonical ranges and the finalizer.
	in := pool("new", "10.7.0.0/16", "10.7.0.5", "10.7.0.1-10.7.0.4")
	resp := handler(t, hs, MutatePath("spiderippool")).Handle(ctx, request(t, admissionv1.Create, in, nil))
	if !resp.Allowed {
		t.Fatalf("defaulting denied: %v", resp.Result)
	}
	patched := map[string]bool{}
	for _, p := range resp.Patches {
		patched[p.Path] = true
	}
	for _, want := range []string{"/spec/ipVersion", "/metadata/finalizers", "/spec/default", "/spec/disable"} {
		if !patched[want] {
			t.Errorf("defaulting did not patch %s (patches %v)", want, resp.Patches)
		}
	}

	// Create overlapping another pool: denied with the exact message.
	bad := pool("new", "10.6.0.0/16", "10.6.0.150")
	resp = handler(t, hs, ValidatePath("spiderippool")).Handle(ctx, request(t, admissionv1.Create, bad, nil))
	if resp.Allowed {
		t.Fatal("overlapping pool admitted")
	}
	if got, want := resp.Result.Message, `spec.ips: 10.6.0.150 already belong to SpiderIPPool "other": an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs`; got != want {
		t.Fatalf("message\n got: %s\nwant: %s", got, want)
	}

	// Update removing the address web-0 holds: denied, naming the pod.
	upd := cur.DeepCopy()
	upd.Spec.IPs = []string{"10.6.0.13-10.6.0.20"}
	resp = handler(t, hs, ValidatePath("spiderippool")).Handle(ctx, request(t, admissionv1.Update, upd, cur))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.ips: 10.6.0.12 is allocated to pod default/web-0 (interface net1)") {
		t.Fatalf("removing an allocated address: allowed=%v %v", resp.Allowed, resp.Result)
	}

	// Growing the pool is fine.
	grow := cur.DeepCopy()
	grow.Spec.IPs = []string{"10.6.0.10-10.6.0.30"}
	resp = handler(t, hs, ValidatePath("spiderippool")).Handle(ctx, request(t, admissionv1.Update, grow, cur))
	if !resp.Allowed {
		t.Fatalf("growing denied: %v", resp.Result)
	}

	// A pool being deleted only loses finalizers: never blocked.
	del := upd.DeepCopy()
	now := metav1.Now()
	del.DeletionTimestamp = &now
	resp = handler(t, hs, ValidatePath("spiderippool")).Handle(ctx, request(t, admissionv1.Update, del, cur))
	if !resp.Allowed {
		t.Fatalf("update of a deleting pool denied: %v", resp.Result)
	}
}

func TestCoordinatorAdmission(t *testing.T) {
	s := testScheme(t)
	hs := Handlers(s, &Admission{Reader: fake.NewClientBuilder().WithScheme(s).Build()})
	resp := handler(t, hs, ValidatePath("spidercoordinator")).Handle(context.Background(),
		request(t, admissionv1.Create, &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "second"}}, nil))
	if resp.Allowed || !strings.HasPrefix(resp.Result.Message, `metadata.name: "second": there is one cluster-wide SpiderCoordinator`) {
		t.Fatalf("second coordinator: allowed=%v %v", resp.Allowed, resp.Result)
	}
}

func TestMultusConfigAdmissionWarnsAboutMissingPools(t *testing.T) {
	s := testScheme(t)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(pool("v4", "10.6.0.0/16")).Build()
	hs := Handlers(s, &Admission{Reader: c})
	m := smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
		Master: []string{"eth1"}, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4"}, IPv6IPPool: []string{"v6-later"}}}})
	resp := handler(t, hs, ValidatePath("spidermultusconfig")).Handle(context.Background(), request(t, admissionv1.Create, m, nil))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "SpiderIPPool v6-later does not exist yet") {
		t.Fatalf("warnings %v", resp.Warnings)
	}
}
