// Package buildmetric is the spindle_build_info gauge both daemons export,
// so a dashboard can tell which build each one runs.
package buildmetric

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spindle-net/spindle/internal/buildinfo"
)

// MetricName is the name of the build information gauge.
const MetricName = "spindle_build_info"

// Collector is the spindle_build_info gauge: always 1, with the binary's
// version (the chart's appVersion it was built for), revision and Go version
// as labels.
func Collector(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricName,
		Help: "Always 1; the labels tell the version, the commit (revision) and the Go version the binary was built with.",
		ConstLabels: prometheus.Labels{
			"version":    version,
			"revision":   buildinfo.Revision(),
			"go_version": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
