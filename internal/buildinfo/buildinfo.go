// Package buildinfo describes the build of a Spindle binary: the commit the
// Go toolchain stamped into it, and the spindle_build_info metric both
// daemons export so a dashboard can tell which build each one runs.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricName is the name of the build information gauge.
const MetricName = "spindle_build_info"

// Revision is the commit the binary was built from, shortened to 12 hex
// digits, with "-dirty" when the work tree had changes, or "unknown" when the
// binary carries no VCS stamp (go run, go test, a build outside a checkout).
func Revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + dirty
}

// Collector is the spindle_build_info gauge: always 1, with the binary's
// version (the chart's appVersion it was built for), revision and Go version
// as labels.
func Collector(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Always 1; the labels tell the version, the commit (revision) and the Go version the binary was built with.",
		ConstLabels: prometheus.Labels{
			"version":    version,
			"revision":   Revision(),
			"go_version": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
