package chart

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const importName = "spindle-import"

// importHooks returns the rendered import hook objects.
func importHooks(m *manifest) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objs {
		if o.GetLabels()["app.kubernetes.io/component"] == "import" {
			out = append(out, o)
		}
	}
	return out
}

// TestMigrationImportJob: migration.from renders a pre-install/pre-upgrade
// hook Job running `spindle-controller --import=<from>` after its own
// ServiceAccount and RBAC (lower hook weight), granted exactly what the
// markers of ipam/migrate declare; without migration.from nothing is
// rendered.
func TestMigrationImportJob(t *testing.T) {
	t.Parallel()
	if hooks := importHooks(render(t)); len(hooks) != 0 {
		t.Fatalf("the default values render import objects: %v", hooks)
	}
	for _, from := range []string{"spiderpool", "whereabouts"} {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			m := render(t, "migration.from="+from)
			var kinds []string
			weights := map[string]int{}
			for _, o := range importHooks(m) {
				id := o.GetKind() + "/" + o.GetName()
				kinds = append(kinds, o.GetKind())
				if o.GetName() != importName {
					t.Errorf("%s: want every import object named %s", id, importName)
				}
				a := o.GetAnnotations()
				if a["helm.sh/hook"] != "pre-install,pre-upgrade" {
					t.Errorf("%s: helm.sh/hook %q, want pre-install,pre-upgrade (the import runs before the agents exist)", id, a["helm.sh/hook"])
				}
				policy := strings.Split(a["helm.sh/hook-delete-policy"], ",")
				if !slices.Contains(policy, "before-hook-creation") || !slices.Contains(policy, "hook-succeeded") {
					t.Errorf("%s: helm.sh/hook-delete-policy %v, want before-hook-creation and hook-succeeded", id, policy)
				}
				w, err := strconv.Atoi(a["helm.sh/hook-weight"])
				if err != nil {
					t.Errorf("%s: helm.sh/hook-weight %q: %v", id, a["helm.sh/hook-weight"], err)
				}
				weights[o.GetKind()] = w
			}
			slices.Sort(kinds)
			if want := []string{"ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"}; !slices.Equal(kinds, want) {
				t.Fatalf("import hooks %v, want %v", kinds, want)
			}
			for kind, w := range weights {
				if kind != "Job" && w >= weights["Job"] {
					t.Errorf("%s has hook weight %d, the Job %d: the Job's ServiceAccount and RBAC must come first", kind, w, weights["Job"])
				}
			}

			job := m.get(t, "Job", importName)
			if sa, _, _ := unstructured.NestedString(job.Object, "spec", "template", "spec", "serviceAccountName"); sa != importName {
				t.Errorf("the Job runs as %q, want %q", sa, importName)
			}
			c := container(t, job, "import")
			if cmd, _, _ := unstructured.NestedStringSlice(c, "command"); !slices.Equal(cmd, []string{"/usr/local/bin/spindle-controller"}) {
				t.Errorf("command %v", cmd)
			}
			if img := c["image"]; img != container(t, m.get(t, "Deployment", "spindle-controller"), "controller")["image"] {
				t.Errorf("the Job's image %v is not the controller's", img)
			}
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			if !slices.Contains(args, "--import="+from) {
				t.Errorf("args %v lack --import=%s", args, from)
			}
			fs := controllerFlags()
			if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
				t.Errorf("spindle-controller does not accept the Job's args %v: %v", args, err)
			}
			rules, _, _ := unstructured.NestedSlice(job.Object, "spec", "podFailurePolicy", "rules")
			if !strings.Contains(fmt.Sprint(rules), "FailJob") || !strings.Contains(fmt.Sprint(rules), "[3]") {
				t.Errorf("podFailurePolicy %v: exit code 3 (conflicts) must fail the Job without retries", rules)
			}

			markers := markerGrants(t, []string{filepath.Join(repoRoot(t), "ipam", "migrate")})
			if len(markers) == 0 {
				t.Fatal("found no +kubebuilder:rbac markers in ipam/migrate")
			}
			compare(t, importName, markers, renderedGrants(t, m, importName), nil)
		})
	}
	if _, err := helm(t, "template", releaseName, chartDir(t), "--set", "migration.from=kube-ipam"); err == nil || !strings.Contains(err.Error(), "migration.from") {
		t.Errorf("migration.from=kube-ipam: err = %v, want a refusal naming migration.from", err)
	}
}

// TestDryRunRefusedBesideSpiderpool renders the chart against the lab (helm
// template --dry-run=server, so lookup sees the cluster) while a DaemonSet
// named spiderpool-agent exists: the chart refuses and names the migration
// page, unless migration.from=spiderpool. Not parallel: other tests render
// against the lab and must not see the DaemonSet.
func TestDryRunRefusedBesideSpiderpool(t *testing.T) {
	kubectl, kubeconfig := lab(t)
	ns := "spindle-chart-sp-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := runKubectl(t, kubectl, kubeconfig, nil, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := runKubectl(t, kubectl, kubeconfig, nil, "delete", "namespace", ns, "--wait=true", "--timeout=60s"); err != nil {
			t.Log(err)
		}
	})
	server := []string{"--dry-run=server", "--kubeconfig", kubeconfig}
	// Without Spiderpool the chart renders against the cluster.
	if _, err := helm(t, append([]string{"template", releaseName, chartDir(t), "--namespace", ns, "--kube-version", kubeVersion}, server...)...); err != nil {
		t.Fatalf("the chart does not render against the lab without Spiderpool: %v", err)
	}
	// A DaemonSet in the shape Spiderpool's chart installs (no node runs it).
	ds := fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: spiderpool-agent
  namespace: %s
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: spiderpool-agent}
  template:
    metadata:
      labels: {app.kubernetes.io/name: spiderpool-agent}
    spec:
      nodeSelector: {spindle.test/no-such-node: "true"}
      containers:
        - name: spiderpool-agent
          image: registry.invalid/spiderpool-agent:none
`, ns)
	if _, err := runKubectl(t, kubectl, kubeconfig, []byte(ds), "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	_, err := helm(t, append([]string{"template", releaseName, chartDir(t), "--namespace", ns, "--kube-version", kubeVersion}, server...)...)
	if err == nil {
		t.Fatal("the chart renders beside a running Spiderpool")
	}
	for _, want := range []string{"Spiderpool is running in this cluster (DaemonSet " + ns + "/spiderpool-agent)", "docs/migrate-from-spiderpool.md", "migration.from=spiderpool"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
	t.Logf("refusal: %v", err)
	out, err := helm(t, append([]string{"template", releaseName, chartDir(t), "--namespace", ns, "--kube-version", kubeVersion, "--set", "migration.from=spiderpool"}, server...)...)
	if err != nil {
		t.Fatalf("migration.from=spiderpool is refused too: %v", err)
	}
	if !strings.Contains(out, "--import=spiderpool") {
		t.Error("with migration.from=spiderpool the import Job is not rendered")
	}
}
