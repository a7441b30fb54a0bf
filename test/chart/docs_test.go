package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// docManifests returns the Kubernetes objects of the YAML blocks of
// docs/install.md (the five-minute walk-through), indentation removed.
func docManifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, m := range yamlBlock.FindAllStringSubmatch(string(data), -1) {
		block := dedent(m[1])
		got, err := decodeAll(block)
		if err != nil {
			t.Fatalf("docs/install.md: %v", err)
		}
		objs = append(objs, got...)
	}
	if len(objs) < 4 {
		t.Fatalf("docs/install.md: found %d objects in its YAML blocks, want the pool, networks and Deployment", len(objs))
	}
	return objs
}

func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// TestInstallDocManifestsDecode decodes the walk-through's manifests strictly
// into their types: a field the API does not have fails here.
func TestInstallDocManifestsDecode(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, netv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Strict: true})
	for _, o := range docManifests(t) {
		data, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := strict.Decode(data, nil, nil); err != nil {
			t.Errorf("docs/install.md %s %q: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "NetworkAttachmentDefinition" {
			cfg, _, _ := unstructured.NestedString(o.Object, "spec", "config")
			var conf map[string]any
			if err := json.Unmarshal([]byte(cfg), &conf); err != nil {
				t.Errorf("docs/install.md NetworkAttachmentDefinition %q: spec.config is not JSON: %v", o.GetName(), err)
			}
		}
	}
}
