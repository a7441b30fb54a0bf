package chart

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/test/prereq"
)

// lab returns kubectl and the lab's admin kubeconfig ($LAB_KUBECONFIG, else
// _lab/kubeconfig), or skips when no lab answers.
func lab(t *testing.T) (kubectl, kubeconfig string) {
	t.Helper()
	prereq.Tier(t, prereq.LabE2E)
	kubeconfig = os.Getenv("LAB_KUBECONFIG")
	if kubeconfig == "" {
		kubeconfig = filepath.Join(repoRoot(t), "_lab", "kubeconfig")
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		prereq.Missing(t, "no lab running (%s missing): start one with `bin/lab up` to run the server-side dry run", kubeconfig)
	}
	kubectl = filepath.Join(depPath(t, "k8s"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		prereq.Missing(t, "kubectl is not built (%s missing): run `bash test/lab/tools/build-deps.sh k8s`", kubectl)
	}
	if _, err := runKubectl(t, kubectl, kubeconfig, nil, "get", "--raw", "/readyz"); err != nil {
		prereq.Missing(t, "the lab's API server does not answer (%v): start it with `bin/lab up`", err)
	}
	return kubectl, kubeconfig
}

func runKubectl(t *testing.T, kubectl, kubeconfig string, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig, "--request-timeout=60s"}, args...)...)
	cmd.Dir = repoRoot(t)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), &kubectlError{args: args, err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

type kubectlError struct {
	args   []string
	err    error
	stderr string
}

func (e *kubectlError) Error() string {
	return "kubectl " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + strings.TrimSpace(e.stderr)
}

// servedKinds lists "group/Kind" for every kind the API server serves.
func servedKinds(t *testing.T, kubectl, kubeconfig string) map[string]bool {
	t.Helper()
	out, err := runKubectl(t, kubectl, kubeconfig, nil, "api-resources", "--no-headers")
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		kind, apiVersion := f[len(f)-1], f[len(f)-3]
		group := ""
		if i := strings.Index(apiVersion, "/"); i >= 0 {
			group = apiVersion[:i]
		}
		served[group+"/"+kind] = true
	}
	return served
}

// TestServerSideDryRun sends every rendered object of every scenario to the
// lab's API server as a server-side dry run: schemas (strict field
// validation), CEL match conditions, RBAC references and admission all run
// for real, nothing is stored. The chart's CRDs are applied first when the lab
// does not serve them yet (they are the files the lab loads). Kinds of other
// projects' CRDs the lab does not serve (cert-manager, Prometheus operator)
// are left out and named in the log.
func TestServerSideDryRun(t *testing.T) {
	t.Parallel()
	kubectl, kubeconfig := lab(t)
	served := servedKinds(t, kubectl, kubeconfig)
	if !served["spiderpool.spidernet.io/SpiderIPPool"] {
		t.Log("the lab does not serve Spindle's CRDs yet: applying charts/spindle/crds")
		if _, err := runKubectl(t, kubectl, kubeconfig, nil, "apply", "--server-side", "-f", filepath.Join(chartDir(t), "crds")); err != nil {
			t.Fatal(err)
		}
		if _, err := runKubectl(t, kubectl, kubeconfig, nil, "wait", "--for=condition=Established", "--timeout=60s", "-f", filepath.Join(chartDir(t), "crds")); err != nil {
			t.Fatal(err)
		}
		served = servedKinds(t, kubectl, kubeconfig)
	}
	// `helm test` creates the test pod's ServiceAccount before the pod (a
	// hook of lower weight); a dry run stores nothing, so the pod's
	// admission would not find it. It is created for real for the run.
	testSA := fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s-selftest\n  namespace: %s\n", dryRunRelease, namespace)
	if _, err := runKubectl(t, kubectl, kubeconfig, []byte(testSA), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := runKubectl(t, kubectl, kubeconfig, []byte(testSA), "delete", "--ignore-not-found", "-f", "-"); err != nil {
			t.Log(err)
		}
	})
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			// A release name of its own: the lab runs Spindle itself, and its
			// objects (e.g. controller-managed webhook configurations) must not
			// be mistaken for a previous release of the chart.
			objs, err := decodeAll(renderYAMLAs(t, dryRunRelease, namespace, setArgs(sc.set)))
			if err != nil {
				t.Fatal(err)
			}
			m := &manifest{objs: objs}
			var buf bytes.Buffer
			var skipped []string
			for _, o := range m.objs {
				if !served[o.GroupVersionKind().Group+"/"+o.GetKind()] {
					skipped = append(skipped, o.GetKind()+"/"+o.GetName())
					continue
				}
				data, err := yaml.Marshal(o.Object)
				if err != nil {
					t.Fatal(err)
				}
				buf.WriteString("---\n")
				buf.Write(data)
			}
			if len(skipped) > 0 {
				t.Logf("not served by the lab, left out: %v", skipped)
			}
			out, err := runKubectl(t, kubectl, kubeconfig, buf.Bytes(),
				"apply", "--dry-run=server", "--server-side", "--force-conflicts", "--field-manager=spindle-chart-test", "--validate=strict", "-f", "-")
			if err != nil {
				t.Fatalf("the lab's API server refuses the rendered chart: %v\n%s", err, out)
			}
		})
	}
	t.Run("docs/install.md", func(t *testing.T) {
		var buf bytes.Buffer
		for _, o := range docManifests(t) {
			if !served[o.GroupVersionKind().Group+"/"+o.GetKind()] {
				t.Fatalf("the lab does not serve %s, used by docs/install.md", o.GroupVersionKind())
			}
			data, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			buf.WriteString("---\n")
			buf.Write(data)
		}
		out, err := runKubectl(t, kubectl, kubeconfig, buf.Bytes(),
			"apply", "--dry-run=server", "--server-side", "--force-conflicts", "--field-manager=spindle-chart-test", "--validate=strict", "-f", "-")
		if err != nil {
			t.Fatalf("the lab's API server refuses the manifests of docs/install.md: %v\n%s", err, out)
		}
	})
}

// TestDryRunUpgradeKeepsWebhookCertificate renders the chart against the lab
// (helm template --dry-run=server, so lookup sees the cluster) in a namespace
// that already holds the release's certificate Secret, as on an upgrade: the
// chart must reuse it rather than issue a new CA. The namespace is the
// test's own and is deleted afterwards.
func TestDryRunUpgradeKeepsWebhookCertificate(t *testing.T) {
	t.Parallel()
	kubectl, kubeconfig := lab(t)
	ns := "spindle-chart-test-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if _, err := runKubectl(t, kubectl, kubeconfig, nil, "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := runKubectl(t, kubectl, kubeconfig, nil, "delete", "namespace", ns, "--wait=false"); err != nil {
			t.Log(err)
		}
	})
	// A first install's Secret, taken from a plain render.
	first, err := decodeAll(renderYAMLIn(t, ns, nil))
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	for _, o := range first {
		if o.GetKind() == "Secret" && o.GetName() == "spindle-webhook-tls" {
			secret, err = yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if secret == nil {
		t.Fatal("the chart renders no Secret spindle-webhook-tls")
	}
	if _, err := runKubectl(t, kubectl, kubeconfig, secret, "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	want, _ := unstructuredSecretCA(t, first)

	upgrade, err := decodeAll(renderYAMLIn(t, ns, []string{"--dry-run=server", "--kubeconfig", kubeconfig}))
	if err != nil {
		t.Fatal(err)
	}
	got, caBundles := unstructuredSecretCA(t, upgrade)
	if got != want {
		t.Error("the re-rendered Secret holds a new CA: lookup did not keep the existing certificate")
	}
	for _, b := range caBundles {
		if b != want {
			t.Error("a webhook's caBundle is not the kept CA")
		}
	}
}

const dryRunRelease = "spindle-dryrun"

func renderYAMLIn(t *testing.T, ns string, extra []string) string {
	t.Helper()
	return renderYAMLAs(t, releaseName, ns, extra)
}

func renderYAMLAs(t *testing.T, release, ns string, extra []string) string {
	t.Helper()
	args := append([]string{"template", release, chartDir(t), "--namespace", ns, "--kube-version", kubeVersion}, extra...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unstructuredSecretCA returns the ca.crt of the rendered Secret and the
// caBundles of the rendered webhooks.
func unstructuredSecretCA(t *testing.T, objs []*unstructured.Unstructured) (string, []string) {
	t.Helper()
	var ca string
	var bundles []string
	for _, o := range objs {
		switch o.GetKind() {
		case "Secret":
			ca, _, _ = unstructured.NestedString(o.Object, "data", "ca.crt")
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for _, h := range hooks {
				b, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "caBundle")
				bundles = append(bundles, b)
			}
		}
	}
	return ca, bundles
}
