// Package smoke is the kind tier of `make test`: Spindle installed with Helm
// into the offline kind cluster, checked where a user looks (test/kind/smoke.sh).
// The two tests are the two phases of smoke.sh, run in this order; `make test`
// runs the e2e suite between them on the same cluster.
package smoke

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/spindle-net/spindle/test/prereq"
)

// EnvKind is set by `make test-kind`, which builds the node image and removes
// the cluster and the engine afterwards.
const EnvKind = "SPINDLE_KIND"

var (
	upgraded    = regexp.MustCompile(`(?m)^kind-smoke: nodes=(\d+) pods=(\d+) distinct_addresses=(\d+) kept_after_upgrade=(\d+) claims_left=(\d+) seconds=\d+$`)
	uninstalled = regexp.MustCompile(`(?m)^kind-uninstall: nodes=(\d+) spindle_pods_left=0 webhooks_left=0 multus_configs_left=0 binaries_left=0 seconds=\d+$`)
)

// smoke runs one phase of smoke.sh and returns the submatches of its result
// line.
func smoke(t *testing.T, phase string, line *regexp.Regexp, env ...string) []int {
	t.Helper()
	prereq.Tier(t, prereq.Kind)
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the kind cluster needs root (its engine runs in a network namespace of its own); run make test-kind as root")
	}
	if os.Getenv(EnvKind) != "1" {
		prereq.Missing(t, "runs under make test-kind, which builds the kind node image and cleans up after (%s=1)", EnvKind)
	}
	// go test runs in the package's directory.
	script, err := filepath.Abs(filepath.Join("..", "smoke.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, phase)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("%s %s failed: %v", script, phase, err)
	}
	m := line.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s %s printed no result line matching %s", script, phase, line)
	}
	n := make([]int, len(m)-1)
	for i, v := range m[1:] {
		n[i], _ = strconv.Atoi(string(v))
	}
	return n
}

func TestHelmInstallAndUpgradeKeepPodsAddresses(t *testing.T) {
	const replicas, extra = 6, 3
	n := smoke(t, "upgrade", upgraded, "REPLICAS="+strconv.Itoa(replicas))
	nodes, pods, distinct, kept, left := n[0], n[1], n[2], n[3], n[4]
	if nodes != 3 || pods != replicas+extra || distinct != replicas+extra || kept != replicas || left != 0 {
		t.Errorf("kind-smoke: nodes=%d pods=%d distinct=%d kept_after_upgrade=%d claims_left=%d, want 3 nodes, %d pods with distinct addresses, %d kept across the upgrade, no claim left",
			nodes, pods, distinct, kept, left, replicas+extra, replicas)
	}
}

func TestHelmUninstallLeavesNothingOnTheNodes(t *testing.T) {
	if n := smoke(t, "uninstall", uninstalled); n[0] != 3 {
		t.Errorf("kind-uninstall checked %d nodes, want 3", n[0])
	}
}
