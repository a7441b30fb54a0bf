// Package chart tests the Helm chart in charts/spindle through what it renders:
// helm lint and helm template over a matrix of values, the rendered objects
// decoded strictly into their Kubernetes types, RBAC against the code's
// +kubebuilder:rbac markers, the binaries' flags against the rendered command
// lines, and a server-side dry run on the lab when one is running.
//
// The tests run the pinned helm (bash test/lab/tools/build-deps.sh helm, or
// $HELM) and skip with a message when it is not built.
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/test/prereq"
)

const (
	releaseName = "spindle"
	namespace   = "kube-system"
	kubeVersion = "1.37.1"
)

// scenario is one set of values the chart must lint, render and pass the API
// server with.
type scenario struct {
	name string
	set  []string
}

// scenarios is the matrix every chart test covers.
var scenarios = []scenario{
	{"default", nil},
	{"ipv4-only", []string{
		"ipam.enableIPv4=true", "ipam.enableIPv6=false",
		"clusterDefaultPool.installIPv4IPPool=true", "clusterDefaultPool.ipv4Subnet=10.250.0.0/16",
		"clusterDefaultPool.ipv4IPRanges={10.250.0.10-10.250.0.200}", "clusterDefaultPool.ipv4Gateway=10.250.0.1",
	}},
	{"dual-stack", []string{
		"ipam.enableIPv4=true", "ipam.enableIPv6=true",
		"clusterDefaultPool.installIPv4IPPool=true", "clusterDefaultPool.ipv4Subnet=10.250.0.0/16",
		"clusterDefaultPool.ipv4IPRanges={10.250.0.10-10.250.0.200}",
		"clusterDefaultPool.installIPv6IPPool=true", "clusterDefaultPool.ipv6Subnet=fd00:250::/64",
		"clusterDefaultPool.ipv6IPRanges={fd00:250::10-fd00:250::200}", "clusterDefaultPool.ipv6Gateway=fd00:250::1",
	}},
	{"gc-off", []string{"ipam.gc.enabled=false", "ipam.gc.interval=0s"}},
	{"coordinator-overlay", []string{
		"coordinator.mode=overlay", "coordinator.podCIDRType=cluster", "coordinator.podMACPrefix=0a:1b",
		"coordinator.podDefaultRouteNIC=net1", "coordinator.detectGateway=true", "coordinator.detectIPConflict=true",
		"coordinator.vethLinkAddress=169.254.100.1", "coordinator.txQueueLen=1000",
		"coordinator.hijackCIDR={169.254.0.0/16,10.233.0.0/18}",
	}},
	{"multus-thick", []string{"multus.install=true"}},
	{"multus-thin", []string{"multus.install=true", "multus.flavor=thin"}},
	{"cert-manager", []string{"webhook.certs.source=certManager"}},
	{"cert-manager-issuer", []string{"webhook.certs.source=certManager", "webhook.certs.certManager.issuerRef.name=corp-ca", "webhook.certs.certManager.issuerRef.kind=ClusterIssuer"}},
	{"controller-certs", []string{"webhook.certs.source=controller"}},
	{"webhooks-off", []string{"webhook.enabled=false"}},
	{"monitoring", []string{"serviceMonitor.enabled=true", "agent.metrics.bindAddress=0.0.0.0", "serviceMonitor.labels.release=prom",
		"grafanaDashboard.enabled=true", "grafanaDashboard.labels.team=net", "prometheusRule.enabled=true", "prometheusRule.labels.release=prom"}},
	{"metrics-plain", []string{"metrics.secure=false"}},
	{"single-controller", []string{"controller.replicas=1", "controller.hostNetwork=false", "coordinator.createDefault=false", "image.pullSecrets={regcred}", "global.imageRegistryOverride=mirror.local:5000"}},
	{"migration-spiderpool", []string{"migration.from=spiderpool"}},
	{"migration-whereabouts", []string{"migration.from=whereabouts", "controller.hostNetwork=false"}},
}

var (
	rootOnce sync.Once
	rootDir  string
)

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if rootDir == "" {
		t.Fatal("failed to find the repository root (go.mod) above the working directory")
	}
	return rootDir
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "spindle") }

// depPath asks build-deps.sh where a pinned tool lives.
func depPath(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(repoRoot(t), "test", "lab", "tools", "build-deps.sh"), "path", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// helmBin returns the pinned helm binary or skips the test.
func helmBin(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	h := filepath.Join(depPath(t, "helm"), "helm")
	if st, err := os.Stat(h); err != nil || st.IsDir() {
		prereq.Missing(t, "helm is not built (%s missing): run `bash test/lab/tools/build-deps.sh helm` or set HELM", h)
	}
	return h
}

func setArgs(set []string) []string {
	var args []string
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// helm runs the pinned helm and returns stdout; stderr goes into the error.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// renderYAML runs helm template with the given --set values.
func renderYAML(t testing.TB, set ...string) string {
	t.Helper()
	args := append([]string{"template", releaseName, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, setArgs(set)...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifest is the rendered chart.
type manifest struct {
	objs []*unstructured.Unstructured
}

func render(t testing.TB, set ...string) *manifest {
	t.Helper()
	objs, err := decodeAll(renderYAML(t, set...))
	if err != nil {
		t.Fatal(err)
	}
	return &manifest{objs: objs}
}

func decodeAll(s string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufioReader(s))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read rendered YAML: %w", err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("failed to parse rendered document %q: %w", firstLines(string(doc)), err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func firstLines(s string) string {
	lines := strings.SplitN(s, "\n", 4)
	return strings.Join(lines[:min(3, len(lines))], " | ")
}

// get returns the object of that kind and name, failing when absent.
func (m *manifest) get(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	if o := m.find(kind, name); o != nil {
		return o
	}
	t.Fatalf("rendered chart has no %s %q; it has %v", kind, name, m.names())
	return nil
}

func (m *manifest) find(kind, name string) *unstructured.Unstructured {
	for _, o := range m.objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (m *manifest) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m *manifest) names() []string {
	var out []string
	for _, o := range m.objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	sort.Strings(out)
	return out
}

// container returns a container (or init container) of a workload's pod template.
func container(t testing.TB, workload *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	for _, field := range []string{"containers", "initContainers"} {
		list, _, _ := unstructured.NestedSlice(workload.Object, "spec", "template", "spec", field)
		for _, c := range list {
			cm := c.(map[string]any)
			if cm["name"] == name {
				return cm
			}
		}
	}
	t.Fatalf("%s %q has no container %q", workload.GetKind(), workload.GetName(), name)
	return nil
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// flags returns the command-line flags a container runs with, as flag ->
// value, with $(VAR) references resolved the way the kubelet does: from env
// and from the ConfigMaps of envFrom.
func (m *manifest) flags(t testing.TB, c map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	if from, ok := c["envFrom"].([]any); ok {
		for _, f := range from {
			ref, _, _ := unstructured.NestedString(f.(map[string]any), "configMapRef", "name")
			cm := m.get(t, "ConfigMap", ref)
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			for k, v := range data {
				env[k] = v
			}
		}
	}
	if list, ok := c["env"].([]any); ok {
		for _, e := range list {
			em := e.(map[string]any)
			if v, ok := em["value"].(string); ok {
				env[em["name"].(string)] = v
			}
		}
	}
	out := map[string]string{}
	args, _ := c["args"].([]any)
	for _, a := range args {
		s := envRef.ReplaceAllStringFunc(a.(string), func(ref string) string {
			name := envRef.FindStringSubmatch(ref)[1]
			v, ok := env[name]
			if !ok {
				t.Errorf("container %q argument %q refers to $(%s), which neither env nor envFrom defines", c["name"], a, name)
			}
			return v
		})
		if !strings.HasPrefix(s, "-") {
			t.Errorf("container %q argument %q is not a --flag=value", c["name"], s)
			continue
		}
		name, value, ok := strings.Cut(strings.TrimLeft(s, "-"), "=")
		if !ok {
			value = "true"
		}
		if _, dup := out[name]; dup {
			t.Errorf("container %q sets --%s twice", c["name"], name)
		}
		out[name] = value
	}
	return out
}

// ports returns a container's named ports.
func ports(c map[string]any) map[string]int64 {
	out := map[string]int64{}
	list, _ := c["ports"].([]any)
	for _, p := range list {
		pm := p.(map[string]any)
		name, _ := pm["name"].(string)
		out[name] = toInt(pm["containerPort"])
	}
	return out
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return -1
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
