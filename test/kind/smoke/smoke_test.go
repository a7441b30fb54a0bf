// Package smoke is the kind tier of `make test`: Spindle installed with Helm
// into the offline kind cluster, checked where a user looks (test/kind/smoke.sh).
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

var result = regexp.MustCompile(`(?m)^kind-smoke: nodes=(\d+) pods=(\d+) distinct_addresses=(\d+) kept_after_upgrade=(\d+) claims_left=(\d+) seconds=\d+$`)

func TestHelmInstallAndUpgradeKeepPodsAddresses(t *testing.T) {
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
	const replicas, extra = 6, 3
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "REPLICAS="+strconv.Itoa(replicas))
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
	m := result.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no kind-smoke result line", script)
	}
	nodes, _ := strconv.Atoi(string(m[1]))
	pods, _ := strconv.Atoi(string(m[2]))
	distinct, _ := strconv.Atoi(string(m[3]))
	kept, _ := strconv.Atoi(string(m[4]))
	left, _ := strconv.Atoi(string(m[5]))
	if nodes != 3 || pods != replicas+extra || distinct != replicas+extra || kept != replicas || left != 0 {
		t.Errorf("kind-smoke: nodes=%d pods=%d distinct=%d kept_after_upgrade=%d claims_left=%d, want 3 nodes, %d pods with distinct addresses, %d kept across the upgrade, no claim left",
			nodes, pods, distinct, kept, left, replicas+extra, replicas)
	}
}
