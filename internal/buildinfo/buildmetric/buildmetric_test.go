package buildmetric

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spindle-net/spindle/internal/buildinfo"
)

func TestCollectorExportsOneLabelledSample(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector("1.2.3"))
	want := `# HELP spindle_build_info Always 1; the labels tell the version, the commit (revision) and the Go version the binary was built with.
# TYPE spindle_build_info gauge
spindle_build_info{go_version="` + runtime.Version() + `",revision="` + buildinfo.Revision() + `",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), MetricName); err != nil {
		t.Error(err)
	}
}
