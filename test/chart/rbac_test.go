package chart

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/spindle-net/spindle/test/prereq"
)

const module = "github.com/spindle-net/spindle"

// grant is one (API group, resource, verb) permission.
type grant struct{ group, resource, verb string }

func (g grant) String() string {
	group := g.group
	if group == "" {
		group = "core"
	}
	return group + "/" + g.resource + ":" + g.verb
}

type grants map[grant]string // grant -> where it comes from

// markerGrants parses the +kubebuilder:rbac markers of the non-test Go files
// of the given package directories.
func markerGrants(t *testing.T, dirs []string) grants {
	t.Helper()
	out := grants{}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			for line := 1; sc.Scan(); line++ {
				text := strings.TrimSpace(sc.Text())
				rest, ok := strings.CutPrefix(text, "// +kubebuilder:rbac:")
				if !ok {
					continue
				}
				where := strings.TrimPrefix(file, repoRoot(t)+"/") + ":" + itoa(line)
				var groups, resources, verbs []string
				for _, kv := range strings.Split(rest, ",") {
					k, v, _ := strings.Cut(kv, "=")
					v = strings.Trim(v, `"`)
					switch k {
					case "groups":
						groups = strings.Split(v, ";")
					case "resources":
						resources = strings.Split(v, ";")
					case "verbs":
						verbs = strings.Split(v, ";")
					case "namespace", "resourceNames":
					default:
						t.Errorf("%s: unknown rbac marker key %q", where, k)
					}
				}
				for _, g := range groups {
					if g == "core" {
						g = ""
					}
					for _, r := range resources {
						for _, v := range verbs {
							out[grant{strings.Trim(g, `"`), r, v}] = where
						}
					}
				}
			}
			f.Close()
		}
	}
	return out
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// controllerPackages are the module's packages linked into spindle-controller.
func controllerPackages(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}={{.Dir}}{{end}}", "./cmd/spindle-controller")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/spindle-controller: %v", err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, dir, _ := strings.Cut(line, "=")
		// ipam/migrate runs only as `--import`, in the import hook Job
		// under its own role (TestMigrationImportJob checks it).
		if strings.HasPrefix(path, module+"/") && path != module+"/ipam/migrate" {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// agentPackages are the packages whose markers describe spindle-agent: the
// agent's own package, not its dependency tree. The agent links package gc
// for its pure decision function and package store for its writes; markers
// there would also count for the controller, which links both.
func agentPackages(t *testing.T) []string {
	return []string{filepath.Join(repoRoot(t), "ipam", "agent")}
}

// renderedGrants collects what the ServiceAccount is granted through the
// rendered (Cluster)RoleBindings. Wildcards are reported as errors.
func renderedGrants(t *testing.T, m *manifest, sa string) grants {
	t.Helper()
	out := grants{}
	for _, b := range append(m.ofKind("ClusterRoleBinding"), m.ofKind("RoleBinding")...) {
		subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
		bound := false
		for _, s := range subjects {
			sm := s.(map[string]any)
			if sm["kind"] == "ServiceAccount" && sm["name"] == sa && sm["namespace"] == namespace {
				bound = true
			}
		}
		if !bound {
			continue
		}
		refKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
		refName, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
		var role *unstructured.Unstructured
		for _, r := range m.ofKind(refKind) {
			if r.GetName() == refName && (refKind == "ClusterRole" || r.GetNamespace() == b.GetNamespace()) {
				role = r
			}
		}
		if role == nil {
			t.Errorf("%s %q refers to %s %q, which the chart does not render", b.GetKind(), b.GetName(), refKind, refName)
			continue
		}
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		for _, r := range rules {
			rm := r.(map[string]any)
			groups, _, _ := unstructured.NestedStringSlice(rm, "apiGroups")
			resources, _, _ := unstructured.NestedStringSlice(rm, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(rm, "verbs")
			for _, g := range groups {
				for _, res := range resources {
					for _, v := range verbs {
						if g == "*" || res == "*" || v == "*" {
							t.Errorf("%s %q grants a wildcard (%s/%s:%s)", refKind, refName, g, res, v)
						}
						out[grant{g, res, v}] = refKind + "/" + role.GetName()
					}
				}
			}
		}
	}
	return out
}

// TestRBACMatchesMarkers compares, in both directions, what the chart grants
// each ServiceAccount with what the code declares it uses: nothing granted
// beyond the markers, and every marker granted unless the chart turns the
// feature off (listed with the reason).
func TestRBACMatchesMarkers(t *testing.T) {
	t.Parallel()
	controllerMarkers := markerGrants(t, controllerPackages(t))
	agentMarkers := markerGrants(t, agentPackages(t))
	selftestMarkers := markerGrants(t, []string{filepath.Join(repoRoot(t), "cmd", "spindle-selftest", "internal", "selftest")})
	if len(selftestMarkers) == 0 {
		t.Fatal("found no +kubebuilder:rbac markers in cmd/spindle-selftest/internal/selftest")
	}
	if len(controllerMarkers) == 0 {
		t.Fatal("found no +kubebuilder:rbac markers in the packages of spindle-controller")
	}

	webhookConfigs := []grant{
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "get"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "update"},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"},
	}
	webhookCreate := []grant{
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create"},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", "create"},
	}
	secrets := []grant{{"", "secrets", "get"}, {"", "secrets", "create"}, {"", "secrets", "update"}}

	for _, tc := range []struct {
		scenario string
		set      []string
		// notGranted are markers the chart leaves out in this scenario, and why.
		notGranted map[string][]grant
	}{
		{"default", nil, map[string][]grant{
			"the chart creates the webhook configurations itself (no --webhook-manage-configurations)": webhookCreate,
			"the certificate comes from a mounted Secret, the controller never reads Secrets":          secrets,
		}},
		{"controller-certs", []string{"webhook.certs.source=controller"}, map[string][]grant{
			"the chart creates the webhook configurations itself (no --webhook-manage-configurations)": webhookCreate,
		}},
		{"webhooks-off", []string{"webhook.enabled=false"}, map[string][]grant{
			"no webhooks: no configurations to patch": append(append([]grant{}, webhookCreate...), webhookConfigs...),
			"no webhooks: no certificate":             secrets,
		}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			m := render(t, tc.set...)
			skip := map[grant]bool{}
			for _, gs := range tc.notGranted {
				for _, g := range gs {
					skip[g] = true
					if _, ok := controllerMarkers[g]; !ok {
						t.Errorf("%s is listed as not granted but no marker asks for it: drop it from the list", g)
					}
				}
			}
			t.Run("controller", func(t *testing.T) {
				compare(t, "spindle-controller", controllerMarkers, renderedGrants(t, m, "spindle-controller"), skip)
			})
			t.Run("agent", func(t *testing.T) {
				if len(agentMarkers) == 0 {
					prereq.Missing(t, "found no +kubebuilder:rbac markers in ipam/agent: the agent's permissions cannot be checked against its code (the chart grants %v)",
						sortedGrants(renderedGrants(t, m, "spindle-agent")))
				}
				compare(t, "spindle-agent", agentMarkers, renderedGrants(t, m, "spindle-agent"), nil)
			})
			t.Run("selftest", func(t *testing.T) {
				compare(t, "spindle-selftest", selftestMarkers, renderedGrants(t, m, "spindle-selftest"), nil)
			})
		})
	}
}

func compare(t *testing.T, sa string, markers, rendered grants, skip map[grant]bool) {
	t.Helper()
	for _, g := range sortedGrants(rendered) {
		if _, ok := markers[g]; !ok {
			t.Errorf("%s is granted %s (%s) but no +kubebuilder:rbac marker of its code asks for it", sa, g, rendered[g])
		}
		if skip[g] {
			t.Errorf("%s is granted %s, which this scenario should leave out", sa, g)
		}
	}
	for _, g := range sortedGrants(markers) {
		if _, ok := rendered[g]; !ok && !skip[g] {
			t.Errorf("%s needs %s (marker at %s) but the chart does not grant it", sa, g, markers[g])
		}
	}
}

func sortedGrants(gs grants) []grant {
	out := make([]grant, 0, len(gs))
	for g := range gs {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
