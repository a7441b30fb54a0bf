// Package e2e holds the end-to-end specs. They run against any cluster given
// by -kubeconfig or KUBECONFIG; specs that need the underlay facts and node
// access (framework.Testbed: the lab, or the offline kind cluster of
// test/kind) skip elsewhere, and the few that drive bin/lab skip on kind.
// Without a kubeconfig the suite skips, so a plain `go test ./...` passes
// without a cluster.
//
//	bin/lab up && go test ./test/e2e/ -ginkgo.v -kubeconfig $PWD/_lab/kubeconfig
//	make e2e-kind   # test/kind/e2e.sh
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spindle-net/spindle/test/e2e/framework"
	"github.com/spindle-net/spindle/test/prereq"
)

var kubeconfig = flag.String("kubeconfig", "", "kubeconfig of the cluster under test (default $KUBECONFIG)")

// f is the framework every spec uses; set in BeforeSuite.
var f *framework.Framework

func TestE2E(t *testing.T) {
	if *kubeconfig == "" {
		*kubeconfig = os.Getenv("KUBECONFIG")
	}
	if *kubeconfig == "" {
		prereq.Missing(t, "e2e: no cluster configured; pass -kubeconfig or set KUBECONFIG (for the lab: bin/lab up, then -kubeconfig $PWD/_lab/kubeconfig)")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Spindle e2e")
}

var _ = BeforeSuite(func() {
	kc, err := filepath.Abs(*kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	wd, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	f, err = framework.New(kc, framework.RepoRoot(wd))
	Expect(err).NotTo(HaveOccurred())
	_, err = f.Client.Discovery().ServerVersion()
	Expect(err).NotTo(HaveOccurred(), "the cluster of %s is not reachable", kc)
	switch {
	case f.Testbed != nil:
		GinkgoWriter.Printf("e2e: running on the %s (%s, nodes %v)\n", f.Testbed.Name(), f.Testbed.APIServer, f.Testbed.Nodes)
	default:
		GinkgoWriter.Printf("e2e: neither the lab nor the kind cluster; specs that need the underlay or the nodes will skip\n")
	}
})

// requireCluster skips the current spec unless the cluster is one whose
// underlay and nodes the suite knows: the lab or the offline kind cluster.
func requireCluster() *framework.Testbed {
	if f.Testbed == nil {
		missing("needs the lab (_lab/env) or the kind cluster of test/kind (_out/kind/env) for the underlay facts and node access; the cluster under test is neither")
	}
	return f.Testbed
}

// labOnly labels the specs that drive bin/lab (each also calls requireLab):
// `make test` runs them on the lab and every other spec on the kind cluster
// (-ginkgo.label-filter=lab-only and '!lab-only'), so each runs once.
const labOnly = "lab-only"

// requireLab stops the current spec unless the cluster is the lab: the spec
// drives bin/lab (why says what for). Like every missing prerequisite it is
// a skip with the reason on a developer's run (test/kind/e2e.sh prints them
// and counts them) and a failure under SPINDLE_REQUIRE_ALL=1, so no run
// that must be complete passes with a lab-only spec left out.
func requireLab(why string) *framework.Lab {
	if f.Lab == nil && f.Testbed != nil {
		missing(fmt.Sprintf("lab only: %s", why))
	}
	if f.Lab == nil {
		missing("needs the lab (its _lab/env facts and bin/lab); the cluster under test is not the lab")
	}
	return f.Lab
}

// requireExec skips the current spec unless commands can run in pods.
func requireExec() framework.PodExecutor {
	if f.Exec == nil {
		missing("needs a way to run commands in pods (the lab, or E2E_KUBECTL=<kubectl> with an image that has the tools)")
	}
	return f.Exec
}

// missing stops the current spec because a prerequisite is missing: a skip
// with the message on a developer's machine, a failure under `make test`
// (SPINDLE_REQUIRE_ALL=1), so a broken lab never passes as skipped specs.
func missing(msg string) {
	if prereq.Required() {
		Fail(fmt.Sprintf("prerequisite missing (%s=1 turns skips into failures): %s", prereq.EnvRequireAll, msg), 1)
	}
	Skip(msg, 1)
}

// podSandboxes lists the live pod network namespaces of namespace (each
// named by a string that starts with its pod's name).
func podSandboxes(ctx context.Context, tb *framework.Testbed, namespace string) []string {
	out, err := tb.PodSandboxes(ctx, namespace)
	Expect(err).NotTo(HaveOccurred())
	return out
}
