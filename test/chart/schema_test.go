package chart

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// freeForm are the values whose content is Kubernetes' (resources,
// selectors, annotations, tolerations, ...): the schema checks that they are
// objects or lists, not their keys.
var freeForm = []string{"affinity", "annotations", "issuerRef", "labels", "nodeSelector", "podAnnotations", "podLabels",
	"resources", "securityContext", "tolerations", "updateStrategy"}

// enums are the values that take one of a few words, keyed by the value's
// name: the schema refuses any other word.
var enums = map[string][]string{
	"logFormat": {"text", "json"},
	"from":      {"", "spiderpool", "whereabouts"},
}

// schemaOf derives the JSON schema of a value of values.yaml: objects list
// their keys and refuse others, scalars keep their type.
func schemaOf(key string, v any) map[string]any {
	if words, ok := enums[key]; ok {
		return map[string]any{"type": "string", "enum": words}
	}
	if slices.Contains(freeForm, key) {
		switch v.(type) {
		case []any:
			return map[string]any{"type": "array"}
		default:
			return map[string]any{"type": "object"}
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props := map[string]any{}
		for k, e := range x {
			props[k] = schemaOf(k, e)
		}
		return map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	case []any:
		s := map[string]any{"type": "array"}
		if len(x) > 0 {
			s["items"] = schemaOf("", x[0])
		}
		return s
	case string:
		return map[string]any{"type": "string"}
	case bool:
		return map[string]any{"type": "boolean"}
	case float64:
		if x == float64(int64(x)) {
			return map[string]any{"type": "integer"}
		}
		return map[string]any{"type": "number"}
	default: // null: any type
		return map[string]any{}
	}
}

func generatedSchema(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	s := schemaOf("", values)
	s["$schema"] = "https://json-schema.org/draft-07/schema#"
	s["title"] = "values of the spindle chart (generated from values.yaml by test/chart: UPDATE_SCHEMA=1 go test ./test/chart -run TestValuesSchema)"
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestValuesSchemaMatchesValues keeps values.schema.json in step with
// values.yaml: every key and type of the defaults, no other key.
func TestValuesSchemaMatchesValues(t *testing.T) {
	want := generatedSchema(t)
	path := filepath.Join(chartDir(t), "values.schema.json")
	if os.Getenv("UPDATE_SCHEMA") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: generate it with UPDATE_SCHEMA=1 go test ./test/chart -run TestValuesSchema", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("charts/spindle/values.schema.json is out of step with values.yaml: regenerate it with UPDATE_SCHEMA=1 go test ./test/chart -run TestValuesSchema")
	}
}

// TestValuesSchemaRefusesTypos: a mistyped key or a wrong type fails helm
// template and helm lint with the key and where it is named, instead of
// being ignored.
func TestValuesSchemaRefusesTypos(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want []string
	}{
		{"agent.metrcs.enabled=true", []string{"/agent", "metrcs"}},
		{"ipam.enableIPv44=true", []string{"/ipam", "enableIPv44"}},
		{"controler.replicas=3", []string{"controler"}},
		{"tests.pool.subnett=10.6.0.0/16", []string{"/tests/pool", "subnett"}},
		{"agent.healthPort=high", []string{"/agent/healthPort", "integer"}},
		{"tests.enabled=maybe", []string{"/tests/enabled", "boolean"}},
		{"tests.pool.ips=10.6.0.250", []string{"/tests/pool/ips", "array"}},
		{"agent.logFormat=xml", []string{"logFormat"}},
		{"controller.logFormat=JSON", []string{"logFormat"}},
	} {
		for _, cmd := range [][]string{
			{"template", releaseName, chartDir(t)},
			{"lint", chartDir(t), "--strict"},
		} {
			args := append(append(cmd, "--namespace", namespace, "--kube-version", kubeVersion), setArgs([]string{tc.set})...)
			out, err := helm(t, args...)
			if err == nil {
				t.Errorf("helm %s --set %s succeeded, want it refused", cmd[0], tc.set)
				continue
			}
			for _, w := range tc.want {
				if msg := err.Error() + out; !strings.Contains(msg, w) {
					t.Errorf("helm %s --set %s: %v\n%s\nwant the message to name %q", cmd[0], tc.set, err, out, w)
				}
			}
		}
	}
	// Free-form values take Kubernetes' keys.
	renderYAML(t, "agent.nodeSelector.zone=a", "agent.resources.limits.ephemeral-storage=1Gi")
}
