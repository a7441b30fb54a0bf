package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/test/prereq"
)

// TestKindRunFailsEarlyWithoutDocker: on a machine without Docker, `make
// e2e-kind` stops at once and says what is missing instead of failing
// half-way through.
func TestKindRunFailsEarlyWithoutDocker(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	for _, tool := range []string{"bash", "dirname"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			prereq.Missing(t, "%s not found: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "bash"), filepath.Join(repoRoot(t), "test", "kind", "run.sh"))
	cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("run.sh succeeded without docker:\n%s", out)
	}
	if !strings.Contains(string(out), "docker is not installed") || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
		t.Errorf("run.sh without docker printed:\n%s\nwant a single line saying docker is not installed", out)
	}
}
