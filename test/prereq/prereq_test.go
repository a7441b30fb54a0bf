package prereq

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissing runs a child test binary that meets a missing prerequisite,
// with and without the switch, and checks it skips or fails accordingly.
func TestMissing(t *testing.T) {
	if os.Getenv("PREREQ_CHILD") == "1" {
		Missing(t, "no frobnicator")
		return
	}
	for _, tc := range []struct {
		env      string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP: TestMissing"},
		{"1", true, "prerequisite missing (SPINDLE_REQUIRE_ALL=1 turns skips into failures): no frobnicator"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "PREREQ_CHILD=1", EnvRequireAll+"="+tc.env)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail {
			t.Errorf("%s=%q: exit error %v, want failure %v:\n%s", EnvRequireAll, tc.env, err, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s=%q: output lacks %q:\n%s", EnvRequireAll, tc.env, tc.want, out)
		}
	}
}
