package chart

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// valueKey is one key of values.yaml.
type valueKey struct {
	path      string
	line      int
	commented bool
	// freeForm marks maps and lists handed to the templates whole
	// (resources, tolerations, labels...): their inner keys are data.
	leaf bool
}

// valuesKeys walks values.yaml. Keys below a list are data, not settings.
func valuesKeys(t *testing.T) []valueKey {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("failed to parse values.yaml: %v", err)
	}
	var out []valueKey
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			nested := v.Kind == yaml.MappingNode && len(v.Content) > 0
			out = append(out, valueKey{path: path, line: k.Line, commented: strings.TrimSpace(k.HeadComment) != "", leaf: !nested})
			if nested {
				walk(v, path)
			}
		}
	}
	walk(doc.Content[0], "")
	return out
}

var valuesRef = regexp.MustCompile(`\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)`)

// templateRefs returns every .Values.<path> the templates read.
func templateRefs(t *testing.T) map[string]bool {
	t.Helper()
	refs := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(chartDir(t), "templates"), func(f string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, m := range valuesRef.FindAllStringSubmatch(string(data), -1) {
			refs[strings.TrimPrefix(m[1], ".")] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// TestValuesDocumented requires a comment above every key of values.yaml.
func TestValuesDocumented(t *testing.T) {
	t.Parallel()
	for _, k := range valuesKeys(t) {
		if !k.commented && !isDataKey(k.path) {
			t.Errorf("values.yaml:%d: %s has no comment above it", k.line, k.path)
		}
	}
}

// isDataKey reports keys inside free-form values (resources, updateStrategy)
// that document themselves through their parent.
func isDataKey(path string) bool {
	for _, parent := range []string{"agent.resources.", "controller.resources.", "multus.resources.", "agent.updateStrategy."} {
		if strings.HasPrefix(path, parent) {
			return true
		}
	}
	return false
}

// TestValuesAllRead checks both directions: every key of values.yaml is read
// by a template (itself, or a parent handed over whole), and every
// .Values.<path> a template reads exists in values.yaml (a typo would render
// as empty).
func TestValuesAllRead(t *testing.T) {
	t.Parallel()
	keys := valuesKeys(t)
	refs := templateRefs(t)
	known := map[string]bool{}
	for _, k := range keys {
		known[k.path] = true
	}
	for _, k := range keys {
		if !k.leaf {
			continue
		}
		used := false
		for p := k.path; p != ""; p = parentPath(p) {
			if refs[p] {
				used = true
				break
			}
		}
		if !used {
			t.Errorf("values.yaml:%d: %s is not read by any template", k.line, k.path)
		}
	}
	var unknown []string
	for r := range refs {
		if known[r] {
			continue
		}
		// Free-form maps may be read below their declared level (e.g. an
		// issuerRef given by the user).
		if p := parentPath(r); p != "" && known[p] && isFreeForm(keys, p) {
			continue
		}
		unknown = append(unknown, r)
	}
	sort.Strings(unknown)
	for _, r := range unknown {
		t.Errorf("templates read .Values.%s, which values.yaml does not define", r)
	}
}

func isFreeForm(keys []valueKey, path string) bool {
	for _, k := range keys {
		if k.path == path {
			return k.leaf
		}
	}
	return false
}

func parentPath(p string) string {
	i := strings.LastIndex(p, ".")
	if i < 0 {
		return ""
	}
	return p[:i]
}
