package chart

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/webhook"
	"github.com/spindle-net/spindle/ipam/webhook/certs"
)

func decodeInto(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	data, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatalf("failed to decode %s %q: %v", o.GetKind(), o.GetName(), err)
	}
}

// chartWebhooks returns the rendered configurations.
func chartWebhooks(t *testing.T, m *manifest) (*admissionv1.MutatingWebhookConfiguration, *admissionv1.ValidatingWebhookConfiguration) {
	t.Helper()
	var mw admissionv1.MutatingWebhookConfiguration
	var vw admissionv1.ValidatingWebhookConfiguration
	decodeInto(t, m.get(t, "MutatingWebhookConfiguration", "spindle-controller"), &mw)
	decodeInto(t, m.get(t, "ValidatingWebhookConfiguration", "spindle-controller"), &vw)
	return &mw, &vw
}

// TestWebhooksMatchController compares the chart's webhook configurations
// with the ones the controller itself would write (webhook.BuildConfigurations):
// same webhooks, paths, rules and policies. Only the caBundle source and the
// bootstrap matchConditions are the chart's own.
func TestWebhooksMatchController(t *testing.T) {
	t.Parallel()
	for _, sc := range []scenario{
		{"default", nil},
		{"ignore", []string{"webhook.failurePolicy=Ignore", "webhook.timeoutSeconds=5"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			m := render(t, sc.set...)
			cf := m.flags(t, container(t, m.get(t, "Deployment", "spindle-controller"), "controller"))
			timeout := int32(10)
			if sc.name == "ignore" {
				timeout = 5
			}
			wantM, wantV, err := webhook.BuildConfigurations(webhook.ConfigOptions{
				MutatingName: cf["webhook-mutating-configuration"], ValidatingName: cf["webhook-validating-configuration"],
				Service:        &admissionv1.ServiceReference{Namespace: cf["webhook-service-namespace"], Name: cf["webhook-service-name"], Port: ptr.To(int32(443))},
				FailurePolicy:  admissionv1.FailurePolicyType(cf["webhook-failure-policy"]),
				TimeoutSeconds: timeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			gotM, gotV := chartWebhooks(t, m)
			if gotM.Name != wantM.Name || gotV.Name != wantV.Name {
				t.Errorf("configurations %q/%q, the controller patches %q/%q", gotM.Name, gotV.Name, wantM.Name, wantV.Name)
			}
			for i := range gotM.Webhooks {
				checkBootstrapCondition(t, gotM.Webhooks[i].Name, gotM.Webhooks[i].MatchConditions)
				gotM.Webhooks[i].ClientConfig.CABundle, gotM.Webhooks[i].MatchConditions = nil, nil
			}
			for i := range gotV.Webhooks {
				checkBootstrapCondition(t, gotV.Webhooks[i].Name, gotV.Webhooks[i].MatchConditions)
				gotV.Webhooks[i].ClientConfig.CABundle, gotV.Webhooks[i].MatchConditions = nil, nil
			}
			if !reflect.DeepEqual(gotM.Webhooks, wantM.Webhooks) {
				t.Errorf("mutating webhooks differ from the controller's:\nchart:      %s\ncontroller: %s", js(gotM.Webhooks), js(wantM.Webhooks))
			}
			if !reflect.DeepEqual(gotV.Webhooks, wantV.Webhooks) {
				t.Errorf("validating webhooks differ from the controller's:\nchart:      %s\ncontroller: %s", js(gotV.Webhooks), js(wantV.Webhooks))
			}
		})
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func checkBootstrapCondition(t *testing.T, name string, mc []admissionv1.MatchCondition) {
	t.Helper()
	if len(mc) != 1 || !strings.Contains(mc[0].Expression, "request.operation == 'CREATE'") || !strings.Contains(mc[0].Expression, bootstrapLabel) {
		t.Errorf("webhook %s: matchConditions %v, want the single bootstrap-create exemption", name, mc)
	}
}

const bootstrapLabel = "spindle.spidernet.io/bootstrap"

// TestWebhooksNeverCoverPods: the webhooks admit only Spindle's own
// resources, so an unavailable controller can never block pods, nodes or
// anything the cluster needs to come up.
func TestWebhooksNeverCoverPods(t *testing.T) {
	t.Parallel()
	m := render(t)
	mw, vw := chartWebhooks(t, m)
	var rules []admissionv1.RuleWithOperations
	for _, w := range mw.Webhooks {
		rules = append(rules, w.Rules...)
	}
	for _, w := range vw.Webhooks {
		rules = append(rules, w.Rules...)
	}
	for _, r := range rules {
		if len(r.APIGroups) != 1 || r.APIGroups[0] != "spiderpool.spidernet.io" {
			t.Errorf("a webhook rule covers API groups %v: only spiderpool.spidernet.io is allowed", r.APIGroups)
		}
		for _, res := range r.Resources {
			if !strings.HasPrefix(res, "spider") || strings.Contains(res, "*") {
				t.Errorf("a webhook rule covers resource %q", res)
			}
			if res == "spideripclaims" || res == "spiderendpoints" {
				t.Errorf("a webhook covers %s, which the agent writes on the pod start-up path", res)
			}
		}
	}
}

// TestBootstrapObjectsSkipAdmissionAtCreate: the objects a first install
// creates (SpiderCoordinator default, default pools) carry the label the
// webhooks exempt at creation, so `helm install` never waits on the controller
// it installs; nothing else carries it, and nothing on an upgrade.
func TestBootstrapObjectsSkipAdmissionAtCreate(t *testing.T) {
	t.Parallel()
	m := render(t, "clusterDefaultPool.installIPv4IPPool=true", "clusterDefaultPool.ipv4Subnet=10.250.0.0/16",
		"clusterDefaultPool.ipv4IPRanges={10.250.0.10-10.250.0.20}")
	want := map[string]bool{"SpiderCoordinator/default": true, "SpiderIPPool/default-v4-ippool": true}
	for _, o := range m.objs {
		id := o.GetKind() + "/" + o.GetName()
		has := o.GetLabels()[bootstrapLabel] == "true"
		if want[id] != has {
			t.Errorf("%s: bootstrap label %v, want %v", id, has, want[id])
		}
		delete(want, id)
	}
	for id := range want {
		t.Errorf("%s is not rendered", id)
	}
	// An upgrade's new objects go through the webhooks: the controller is
	// running then, and other pools exist to check against.
	args := append([]string{"template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion, "--is-upgrade"},
		setArgs([]string{"clusterDefaultPool.installIPv4IPPool=true", "clusterDefaultPool.ipv4Subnet=10.250.0.0/16", "clusterDefaultPool.ipv4IPRanges={10.250.0.10-10.250.0.20}"})...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	upgrade, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range upgrade {
		if _, ok := o.GetLabels()[bootstrapLabel]; ok {
			t.Errorf("%s/%s carries the bootstrap label on an upgrade", o.GetKind(), o.GetName())
		}
	}
}

// TestWebhookCertificates checks each certificate source end to end as far as
// the rendered objects go.
func TestWebhookCertificates(t *testing.T) {
	t.Parallel()
	t.Run("helm", func(t *testing.T) {
		m := render(t)
		cf := m.flags(t, container(t, m.get(t, "Deployment", "spindle-controller"), "controller"))
		secret := m.get(t, "Secret", "spindle-webhook-tls")
		data, _, _ := unstructured.NestedStringMap(secret.Object, "data")
		b := &certs.Bundle{}
		for key, dst := range map[string]*[]byte{certs.CAFile: &b.CA, certs.CertFile: &b.Cert, certs.KeyFile: &b.Key} {
			v, err := base64.StdEncoding.DecodeString(data[key])
			if err != nil || len(v) == 0 {
				t.Fatalf("Secret data %s: %v", key, err)
			}
			*dst = v
		}
		// The controller keeps a mounted bundle only if it covers the
		// Service's names and is valid for at least 30 more days.
		names := serviceNames(cf)
		if err := b.Check(names, nil, time.Now(), 31*24*time.Hour); err != nil {
			t.Errorf("the controller would refuse the chart's certificate: %v", err)
		}
		mw, vw := chartWebhooks(t, m)
		for _, cc := range append(clientConfigsM(mw), clientConfigsV(vw)...) {
			if !bytes.Equal(cc.CABundle, b.CA) {
				t.Error("a webhook's caBundle is not the CA of the serving certificate")
			}
		}
		dep := m.get(t, "Deployment", "spindle-controller")
		if got := secretMountedAt(t, dep, "controller", cf["webhook-cert-dir"]); got != secret.GetName() {
			t.Errorf("--webhook-cert-dir=%s holds Secret %q, want %q", cf["webhook-cert-dir"], got, secret.GetName())
		}
		if cf["webhook-cert-secret"] != "" {
			t.Errorf("--webhook-cert-secret=%s with chart-generated certificates", cf["webhook-cert-secret"])
		}
	})
	t.Run("certManager", func(t *testing.T) {
		m := render(t, "webhook.certs.source=certManager")
		cf := m.flags(t, container(t, m.get(t, "Deployment", "spindle-controller"), "controller"))
		if m.find("Secret", "spindle-webhook-tls") != nil {
			t.Error("the chart renders the Secret cert-manager owns")
		}
		cert := m.get(t, "Certificate", "spindle-webhook-tls")
		secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		for _, n := range serviceNames(cf) {
			if !contains(dns, n) {
				t.Errorf("Certificate does not cover %s", n)
			}
		}
		dep := m.get(t, "Deployment", "spindle-controller")
		if got := secretMountedAt(t, dep, "controller", cf["webhook-cert-dir"]); got != secretName {
			t.Errorf("--webhook-cert-dir holds Secret %q, the Certificate writes %q", got, secretName)
		}
		for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
			o := m.get(t, kind, "spindle-controller")
			if got := o.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != namespace+"/"+cert.GetName() {
				t.Errorf("%s inject-ca-from=%q, want %s/%s", kind, got, namespace, cert.GetName())
			}
		}
		// The controller refuses a certificate valid for less than 30 days:
		// cert-manager must renew before that.
		renew, _, _ := unstructured.NestedString(cert.Object, "spec", "renewBefore")
		if d, err := time.ParseDuration(renew); err != nil || d <= 30*24*time.Hour {
			t.Errorf("Certificate renewBefore %q: want more than 720h", renew)
		}
		issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
		if m.find("Issuer", issuer) == nil {
			t.Errorf("the Certificate's issuer %q is not rendered", issuer)
		}
		// An existing issuer replaces the chart's CA.
		ext := render(t, "webhook.certs.source=certManager", "webhook.certs.certManager.issuerRef.name=corp-ca", "webhook.certs.certManager.issuerRef.kind=ClusterIssuer")
		if len(ext.ofKind("Issuer")) != 0 {
			t.Error("Issuers rendered although webhook.certs.certManager.issuerRef names one")
		}
		kind, _, _ := unstructured.NestedString(ext.get(t, "Certificate", "spindle-webhook-tls").Object, "spec", "issuerRef", "kind")
		if kind != "ClusterIssuer" {
			t.Errorf("issuerRef.kind = %q, want ClusterIssuer", kind)
		}
	})
	t.Run("controller", func(t *testing.T) {
		m := render(t, "webhook.certs.source=controller")
		cf := m.flags(t, container(t, m.get(t, "Deployment", "spindle-controller"), "controller"))
		if m.find("Secret", "spindle-webhook-tls") != nil {
			t.Error("the chart renders the Secret the controller creates")
		}
		if cf["webhook-cert-secret"] != namespace+"/spindle-webhook-tls" || cf["webhook-patch-cabundle"] != "true" {
			t.Errorf("--webhook-cert-secret=%q --webhook-patch-cabundle=%q", cf["webhook-cert-secret"], cf["webhook-patch-cabundle"])
		}
		mw, vw := chartWebhooks(t, m)
		for _, cc := range append(clientConfigsM(mw), clientConfigsV(vw)...) {
			if len(cc.CABundle) != 0 {
				t.Error("a caBundle is rendered although the controller generates the CA")
			}
		}
	})
}

// serviceNames are the names the controller requires its certificate to
// cover when it sits behind --webhook-service-name.
func serviceNames(cf map[string]string) []string {
	svc, ns := cf["webhook-service-name"], cf["webhook-service-namespace"]
	return []string{svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local", svc + "." + ns}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clientConfigsM(m *admissionv1.MutatingWebhookConfiguration) []admissionv1.WebhookClientConfig {
	var out []admissionv1.WebhookClientConfig
	for _, w := range m.Webhooks {
		out = append(out, w.ClientConfig)
	}
	return out
}

func clientConfigsV(v *admissionv1.ValidatingWebhookConfiguration) []admissionv1.WebhookClientConfig {
	var out []admissionv1.WebhookClientConfig
	for _, w := range v.Webhooks {
		out = append(out, w.ClientConfig)
	}
	return out
}

// secretMountedAt returns the Secret mounted at path in a container.
func secretMountedAt(t *testing.T, workload *unstructured.Unstructured, containerName, path string) string {
	t.Helper()
	c := container(t, workload, containerName)
	mounts, _ := c["volumeMounts"].([]any)
	vols, _, _ := unstructured.NestedSlice(workload.Object, "spec", "template", "spec", "volumes")
	for _, mnt := range mounts {
		mm := mnt.(map[string]any)
		if mm["mountPath"] != path {
			continue
		}
		for _, v := range vols {
			vm := v.(map[string]any)
			if vm["name"] == mm["name"] {
				s, _, _ := unstructured.NestedString(vm, "secret", "secretName")
				return s
			}
		}
	}
	return ""
}

// TestBootstrapConditionEvaluates runs the rendered matchConditions
// expression with CEL: the webhooks skip only the creation of labelled
// objects; updates and unlabelled creations are admitted as usual.
func TestBootstrapConditionEvaluates(t *testing.T) {
	t.Parallel()
	_, vw := chartWebhooks(t, render(t))
	expr := vw.Webhooks[0].MatchConditions[0].Expression
	env, err := cel.NewEnv(cel.Variable("request", cel.DynType), cel.Variable("object", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("failed to compile %q: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op     string
		labels map[string]any
		want   bool // true: the webhook is called
	}{
		{"CREATE", map[string]any{bootstrapLabel: "true"}, false},
		{"UPDATE", map[string]any{bootstrapLabel: "true"}, true},
		{"CREATE", map[string]any{"app": "x"}, true},
		{"CREATE", nil, true},
	} {
		meta := map[string]any{"name": "p"}
		if tc.labels != nil {
			meta["labels"] = tc.labels
		}
		out, _, err := prg.Eval(map[string]any{
			"request": map[string]any{"operation": tc.op},
			"object":  map[string]any{"metadata": meta},
		})
		if err != nil {
			t.Fatalf("%s %v: %v", tc.op, tc.labels, err)
		}
		if out.Value() != tc.want {
			t.Errorf("%s with labels %v: webhook called = %v, want %v", tc.op, tc.labels, out.Value(), tc.want)
		}
	}
}
