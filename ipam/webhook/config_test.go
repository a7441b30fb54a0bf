package webhook

import (
	"context"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// The webhooks must never intercept anything but Spindle's own custom
// resources (never Pods or core objects), so a controller outage cannot stop
// pods from starting or the installation from progressing.
func TestConfigurationsOnlyCoverOwnResources(t *testing.T) {
	m, v, err := BuildConfigurations(ConfigOptions{URL: "https://127.0.0.1:9443", CABundle: []byte("ca")})
	if err != nil {
		t.Fatal(err)
	}
	var rules []admissionv1.RuleWithOperations
	for _, w := range m.Webhooks {
		rules = append(rules, w.Rules...)
		if *w.SideEffects != admissionv1.SideEffectClassNone || *w.FailurePolicy != admissionv1.Fail || w.NamespaceSelector != nil {
			t.Errorf("%s: sideEffects %v failurePolicy %v", w.Name, *w.SideEffects, *w.FailurePolicy)
		}
		if !strings.HasPrefix(*w.ClientConfig.URL, "https://127.0.0.1:9443/mutate-") || string(w.ClientConfig.CABundle) != "ca" {
			t.Errorf("%s: client config %+v", w.Name, w.ClientConfig)
		}
	}
	for _, w := range v.Webhooks {
		rules = append(rules, w.Rules...)
		if *w.SideEffects != admissionv1.SideEffectClassNone || *w.FailurePolicy != admissionv1.Fail {
			t.Errorf("%s: sideEffects %v failurePolicy %v", w.Name, *w.SideEffects, *w.FailurePolicy)
		}
	}
	allowed := map[string]bool{"spiderippools": true, "spidersubnets": true, "spiderreservedips": true, "spidermultusconfigs": true, "spidercoordinators": true}
	seen := map[string]bool{}
	for _, r := range rules {
		if len(r.APIGroups) != 1 || r.APIGroups[0] != v2beta1.GroupVersion.Group {
			t.Errorf("rule outside our API group: %+v", r)
		}
		for _, res := range r.Resources {
			if !allowed[res] || strings.Contains(res, "*") {
				t.Errorf("rule intercepts %q", res)
			}
			seen[res] = true
		}
		for _, op := range r.Operations {
			if op != admissionv1.Create && op != admissionv1.Update {
				t.Errorf("rule intercepts %s", op)
			}
		}
	}
	if len(seen) != len(allowed) {
		t.Errorf("resources covered %v, want %v", seen, allowed)
	}
	// Every configured path is served.
	served := map[string]bool{}
	for _, h := range Handlers(testScheme(t), &Admission{}) {
		served[h.Path] = true
	}
	for _, w := range m.Webhooks {
		if p := strings.TrimPrefix(*w.ClientConfig.URL, "https://127.0.0.1:9443"); !served[p] {
			t.Errorf("path %s is not served", p)
		}
	}
	for _, w := range v.Webhooks {
		if p := strings.TrimPrefix(*w.ClientConfig.URL, "https://127.0.0.1:9443"); !served[p] {
			t.Errorf("path %s is not served", p)
		}
	}
}

func TestBuildConfigurationsService(t *testing.T) {
	_, v, err := BuildConfigurations(ConfigOptions{Service: &admissionv1.ServiceReference{Namespace: "kube-system", Name: "spindle-controller", Port: ptr.To[int32](443)}})
	if err != nil {
		t.Fatal(err)
	}
	svc := v.Webhooks[0].ClientConfig.Service
	if svc == nil || svc.Name != "spindle-controller" || *svc.Path != "/validate-spiderippool" || v.Webhooks[0].ClientConfig.URL != nil {
		t.Fatalf("client config %+v", v.Webhooks[0].ClientConfig)
	}
	if _, _, err := BuildConfigurations(ConfigOptions{}); err == nil {
		t.Fatal("neither URL nor Service accepted")
	}
}

func TestEnsureConfigurations(t *testing.T) {
	ctx := context.Background()
	s := testScheme(t)
	c := fake.NewClientBuilder().WithScheme(s).Build()
	o := ConfigOptions{URL: "https://127.0.0.1:9443", CABundle: []byte("ca1")}

	// Without manage, missing configurations are left alone.
	if err := EnsureConfigurations(ctx, c, o, false); err != nil {
		t.Fatal(err)
	}
	var vl admissionv1.ValidatingWebhookConfigurationList
	if err := c.List(ctx, &vl); err != nil || len(vl.Items) != 0 {
		t.Fatalf("configurations created without manage: %v %d", err, len(vl.Items))
	}

	// With manage, both are created, then updated in place.
	if err := EnsureConfigurations(ctx, c, o, true); err != nil {
		t.Fatal(err)
	}
	o.CABundle = []byte("ca2")
	if err := EnsureConfigurations(ctx, c, o, true); err != nil {
		t.Fatal(err)
	}
	var v admissionv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: DefaultValidatingConfigName}, &v); err != nil {
		t.Fatal(err)
	}
	if string(v.Webhooks[0].ClientConfig.CABundle) != "ca2" {
		t.Fatalf("caBundle not updated: %q", v.Webhooks[0].ClientConfig.CABundle)
	}

	// A chart-installed configuration only gets its caBundle patched.
	chart := &admissionv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "from-chart"},
		Webhooks: []admissionv1.MutatingWebhook{{Name: "x.spindle.spidernet.io", SideEffects: ptr.To(admissionv1.SideEffectClassNone),
			ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "ns", Name: "svc"}}}},
	}
	if err := c.Create(ctx, chart); err != nil {
		t.Fatal(err)
	}
	o.MutatingName = "from-chart"
	o.CABundle = []byte("ca3")
	if err := EnsureConfigurations(ctx, c, o, false); err != nil {
		t.Fatal(err)
	}
	var m admissionv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "from-chart"}, &m); err != nil {
		t.Fatal(err)
	}
	if string(m.Webhooks[0].ClientConfig.CABundle) != "ca3" || m.Webhooks[0].ClientConfig.Service.Name != "svc" || len(m.Webhooks) != 1 {
		t.Fatalf("chart configuration changed beyond caBundle: %+v", m.Webhooks)
	}
}
