package version_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/test/prereq"
)

// TestBinariesReportTheChartVersion runs the binaries `make build` wrote to
// bin/ as a user would and checks each reports the chart's appVersion and
// the commit it was built from.
func TestBinariesReportTheChartVersion(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	chart, err := os.ReadFile(filepath.Join(root, "charts", "spindle", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^appVersion: *"?([^"\n]+)"?$`).FindSubmatch(chart)
	if m == nil {
		t.Fatal("Chart.yaml has no appVersion")
	}
	want := string(m[1])
	cases := []struct {
		bin  string
		args []string
		line string // the line's beginning
	}{
		{"spindle-agent", []string{"--version"}, "spindle-agent " + want + " (commit "},
		{"spindle-controller", []string{"--version"}, "spindle-controller " + want + " (commit "},
		{"kubectl-spindle", []string{"version"}, "kubectl-spindle " + want + " (commit "},
		{"spindle-selftest", []string{"version"}, "spindle-selftest " + want + " (commit "},
		// A CNI plugin run without CNI_COMMAND prints its about-string.
		{"cni/spiderpool", nil, "spiderpool IPAM CNI plugin (Spindle), version " + want + " (commit "},
		{"cni/coordinator", nil, "spindle coordinator: coherent routing for multi-NIC pods, version " + want + " (commit "},
	}
	for _, c := range cases {
		t.Run(c.bin, func(t *testing.T) {
			path := filepath.Join(root, "bin", c.bin)
			if _, err := os.Stat(path); err != nil {
				prereq.Missing(t, "%s not built: run `make build` first", path)
			}
			cmd := exec.Command(path, c.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", c.bin, c.args, err, out)
			}
			first, _, _ := strings.Cut(string(out), "\n")
			if !strings.HasPrefix(first, c.line) || strings.Contains(first, "commit unknown") {
				t.Errorf("%s %v printed %q, want a line starting %q with the commit", c.bin, c.args, first, c.line)
			}
		})
	}
}
