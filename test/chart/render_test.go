package chart

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Kinds the chart renders whose types are not in this module's scheme (they
// belong to cert-manager and the Prometheus operator); the dry run on the lab
// checks them when their CRDs are served.
var foreignKinds = map[string]bool{"Certificate": true, "Issuer": true, "ServiceMonitor": true, "PrometheusRule": true}

func TestHelmLint(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			args := append([]string{"lint", chartDir(t), "--strict", "--namespace", namespace, "--kube-version", kubeVersion}, setArgs(sc.set)...)
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestRenderDecodesStrictly decodes every rendered object into its Go type
// with unknown and duplicate fields refused, so a misspelt or misplaced field
// fails here rather than being dropped by the API server.
func TestRenderDecodesStrictly(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, apiextensionsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			m := render(t, sc.set...)
			seen := map[string]bool{}
			for _, o := range m.objs {
				id := fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
				if seen[id] {
					t.Errorf("%s is rendered twice", id)
				}
				seen[id] = true
				if o.GetName() == "" || o.GetAPIVersion() == "" {
					t.Errorf("object without name or apiVersion: %v", o.Object)
					continue
				}
				if foreignKinds[o.GetKind()] {
					continue
				}
				data, err := json.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				_, gvk, err := strict.Decode(data, nil, nil)
				if err != nil {
					t.Errorf("%s does not decode strictly into its type: %v", id, err)
					continue
				}
				namespaced := o.GetNamespace() != ""
				if want := namespacedKind(gvk.Kind); namespaced != want {
					t.Errorf("%s: namespace %q, but %s is namespaced=%v", id, o.GetNamespace(), gvk.Kind, want)
				}
				if namespaced && o.GetNamespace() != namespace && !(o.GetKind() == "Role" || o.GetKind() == "RoleBinding") {
					t.Errorf("%s is outside the release namespace %q", id, namespace)
				}
			}
		})
	}
}

func namespacedKind(kind string) bool {
	switch kind {
	case "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
		"CustomResourceDefinition", "SpiderCoordinator", "SpiderIPPool", "Namespace", "PriorityClass":
		return false
	}
	return true
}

// TestRenderRefusesBadValues checks the chart stops with a message naming the
// value to fix instead of rendering something that fails later.
func TestRenderRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"ipam.enableIPv4=false", "ipam.enableIPv6=false"}, "enable at least one family"},
		{[]string{"webhook.certs.source=vault"}, `webhook.certs.source "vault"`},
		{[]string{"webhook.failurePolicy=Retry"}, `webhook.failurePolicy "Retry"`},
		{[]string{"ipam.endpointWrites=later"}, `ipam.endpointWrites "later"`},
		{[]string{"multus.install=true", "multus.flavor=medium"}, `multus.flavor "medium"`},
		{[]string{"clusterDefaultPool.installIPv4IPPool=true"}, "clusterDefaultPool.ipv4Subnet"},
		{[]string{"metrics.secure=false", "agent.metrics.bindAddress=0.0.0.0"}, `agent.metrics.bindAddress "0.0.0.0" with metrics.secure=false`},
		{[]string{"metrics.secure=false", "serviceMonitor.enabled=true"}, "serviceMonitor.enabled needs metrics.secure=true"},
		{[]string{"clusterDefaultPool.installIPv6IPPool=true", "clusterDefaultPool.ipv6Subnet=fd00::/64"}, "clusterDefaultPool.ipv6IPRanges"},
	} {
		args := append([]string{"template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, setArgs(tc.set)...)
		_, err := helm(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template --set %v: got %v, want an error mentioning %q", tc.set, err, tc.want)
		}
	}
}
