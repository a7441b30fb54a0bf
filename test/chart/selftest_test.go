package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const testHookName = "spindle-selftest"

// testHooks returns the rendered objects that are `helm test` hooks.
func testHooks(m *manifest) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objs {
		if o.GetAnnotations()["helm.sh/hook"] == "test" {
			out = append(out, o)
		}
	}
	return out
}

// TestTestHooks: `helm test` runs spindle-selftest in a pod whose
// ServiceAccount and RBAC are hooks of lower weight, all deleted once the
// test passes; the pod checks the chart's own DaemonSet with the chart's
// image and only flags the binary has; tests.enabled=false renders none.
func TestTestHooks(t *testing.T) {
	t.Parallel()
	m := render(t)
	var kinds []string
	weights := map[string]string{}
	for _, o := range testHooks(m) {
		id := o.GetKind() + "/" + o.GetName()
		kinds = append(kinds, o.GetKind())
		if o.GetName() != testHookName {
			t.Errorf("test hook %s: want every test object named %s", id, testHookName)
		}
		policy := strings.Split(o.GetAnnotations()["helm.sh/hook-delete-policy"], ",")
		if !slices.Contains(policy, "before-hook-creation") || !slices.Contains(policy, "hook-succeeded") {
			t.Errorf("test hook %s: helm.sh/hook-delete-policy %v, want before-hook-creation and hook-succeeded", id, policy)
		}
		weights[o.GetKind()] = o.GetAnnotations()["helm.sh/hook-weight"]
	}
	slices.Sort(kinds)
	if want := []string{"ClusterRole", "ClusterRoleBinding", "Pod", "Role", "RoleBinding", "ServiceAccount"}; !slices.Equal(kinds, want) {
		t.Fatalf("test hooks %v, want %v", kinds, want)
	}
	for kind, w := range weights {
		if kind != "Pod" && w >= weights["Pod"] && !strings.HasPrefix(w, "-") {
			t.Errorf("%s has hook weight %q, the pod %q: the pod's ServiceAccount and RBAC must come first", kind, w, weights["Pod"])
		}
	}

	pod := m.get(t, "Pod", testHookName)
	if sa, _, _ := unstructured.NestedString(pod.Object, "spec", "serviceAccountName"); sa != testHookName {
		t.Errorf("test pod runs as ServiceAccount %q, want %q", sa, testHookName)
	}
	if p, _, _ := unstructured.NestedString(pod.Object, "spec", "restartPolicy"); p != "Never" {
		t.Errorf("test pod restartPolicy %q, want Never (a failed check must fail the test)", p)
	}
	c := testContainer(t, pod)
	known := binaryFlags(t, "spindle-selftest")
	flags := m.flags(t, c)
	for f := range flags {
		if !slices.Contains(known, f) {
			t.Errorf("test pod passes --%s, which spindle-selftest does not have (it has %v)", f, known)
		}
	}
	agent := m.get(t, "DaemonSet", "spindle-agent")
	if want := agent.GetNamespace() + "/" + agent.GetName(); flags["agent-daemonset"] != want {
		t.Errorf("--agent-daemonset=%q, want the chart's DaemonSet %s", flags["agent-daemonset"], want)
	}
	image := container(t, agent, "agent")["image"]
	if c["image"] != image || flags["image"] != image {
		t.Errorf("test pod image %v, --image=%s; want the Spindle image %v (it carries spindle-selftest)", c["image"], flags["image"], image)
	}
	if _, ok := flags["pool"]; ok {
		t.Errorf("--pool=%s rendered without tests.pool settings: the address check needs a pool the user chose", flags["pool"])
	}

	// A pool for the test to create, on a network of the user's.
	flags = m.flags(t, testContainer(t, render(t, "tests.pool.subnet=10.6.0.0/16", "tests.pool.ips={10.6.0.250-10.6.0.251}",
		"tests.pool.gateway=10.6.0.1", "tests.pool.network=kube-system/underlay").get(t, "Pod", testHookName)))
	for f, want := range map[string]string{"pool": "spindle-selftest", "pool-subnet": "10.6.0.0/16", "pool-ips": "10.6.0.250-10.6.0.251",
		"pool-gateway": "10.6.0.1", "network": "kube-system/underlay"} {
		if flags[f] != want {
			t.Errorf("with tests.pool.*: --%s=%q, want %q", f, flags[f], want)
		}
	}
	// An existing pool; no webhook to check.
	flags = m.flags(t, testContainer(t, render(t, "tests.pool.name=team-a", "webhook.enabled=false").get(t, "Pod", testHookName)))
	if flags["pool"] != "team-a" || flags["pool-subnet"] != "" || flags["checks"] != "agents,address" {
		t.Errorf("tests.pool.name=team-a, webhook.enabled=false: flags %v, want --pool=team-a without --pool-subnet and --checks=agents,address", flags)
	}
	if got := testContainer(t, render(t, "tests.image.repository=corp/spindle-debug", "tests.image.tag=t1").get(t, "Pod", testHookName))["image"]; got != "corp/spindle-debug:t1" {
		t.Errorf("tests.image.*: test pod image %v", got)
	}

	if hooks := testHooks(render(t, "tests.enabled=false")); len(hooks) > 0 {
		t.Errorf("tests.enabled=false still renders test hooks: %v", (&manifest{objs: hooks}).names())
	}
}

// testContainer returns the container of the test pod.
func testContainer(t *testing.T, pod *unstructured.Unstructured) map[string]any {
	t.Helper()
	list, _, _ := unstructured.NestedSlice(pod.Object, "spec", "containers")
	if len(list) != 1 {
		t.Fatalf("test pod has %d containers, want 1", len(list))
	}
	return list[0].(map[string]any)
}

// TestTestPoolRefusesHalfSettings: a pool to create needs a subnet and its
// addresses.
func TestTestPoolRefusesHalfSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"tests.pool.subnet=10.6.0.0/16"}, "tests.pool.subnet needs tests.pool.ips"},
		{[]string{"tests.pool.ips={10.6.0.250}"}, "set tests.pool.subnet too"},
	} {
		args := append([]string{"template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, setArgs(tc.set)...)
		if _, err := helm(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("helm template --set %v: got %v, want an error mentioning %q", tc.set, err, tc.want)
		}
	}
}

// TestKubeVersionRange: the chart installs on the Kubernetes versions it
// supports (from 1.31, the first whose API servers evaluate the CRDs'
// isIP/isCIDR rules, up to the lab's) and refuses older ones by name.
func TestKubeVersionRange(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"1.31.0", "1.33.4", kubeVersion} {
		if _, err := helm(t, "template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", v); err != nil {
			t.Errorf("Kubernetes %s: %v", v, err)
		}
	}
	_, err := helm(t, "template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", "1.30.9")
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("Kubernetes 1.30.9: got %v, want the chart's kubeVersion refusal", err)
	}
}

// renderNotes renders templates/NOTES.txt as helm does at install (with the
// chart's named templates and the given release, namespace and values):
// helm template leaves NOTES.txt out, so a copy of the chart renders it
// through tpl into a ConfigMap.
func renderNotes(t *testing.T, release, ns string, set ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spindle")
	if err := os.CopyFS(dir, os.DirFS(chartDir(t))); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes-under-test.txt"), notes, 0o644); err != nil {
		t.Fatal(err)
	}
	const probe = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ tpl (.Files.Get \"notes-under-test.txt\") . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes-under-test.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"template", release, dir, "--namespace", ns, "--kube-version", kubeVersion, "--show-only", "templates/notes-under-test.yaml"}, setArgs(set)...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(out)
	if err != nil || len(objs) != 1 {
		t.Fatalf("rendered NOTES probe: %v (%d objects)", err, len(objs))
	}
	text, _, _ := unstructured.NestedString(objs[0].Object, "data", "notes")
	return text
}

// TestNotesRender: the notes name the release's own objects and the next
// commands (agents, pools, kubectl spindle, helm test) with its namespace.
func TestNotesRender(t *testing.T) {
	t.Parallel()
	notes := renderNotes(t, "netops", "spindle-system")
	t.Logf("NOTES.txt:\n%s", notes)
	for _, want := range []string{
		"installed as release netops in namespace spindle-system",
		"kubectl -n spindle-system rollout status daemonset/netops-spindle-agent",
		"kubectl -n spindle-system get daemonset netops-spindle-agent",
		"kubectl -n spindle-system rollout status deployment/netops-spindle-controller",
		"kubectl get sp\n",
		"kubectl spindle pools\n",
		"docs/kubectl-plugin.md",
		"helm test netops -n spindle-system\n",
		"- agents: the agent is ready on every node\n",
		"- webhook: the webhook refuses an invalid SpiderIPPool\n",
		"- address: skipped; set tests.pool.subnet and tests.pool.ips (or tests.pool.name)",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt lacks %q", want)
		}
	}
	if strings.Contains(notes, "<no value>") || strings.Contains(notes, "{{") {
		t.Errorf("NOTES.txt renders a missing value or a raw template")
	}
	if n := renderNotes(t, "netops", "spindle-system", "tests.pool.name=team-a"); !strings.Contains(n, "- address: a pod gets an address from SpiderIPPool team-a and gives it back") {
		t.Errorf("with tests.pool.name the notes do not name the pool:\n%s", n)
	}
	if n := renderNotes(t, "netops", "spindle-system", "tests.enabled=false"); !strings.Contains(n, "has no test to run") {
		t.Errorf("with tests.enabled=false the notes still promise a test:\n%s", n)
	}
}
