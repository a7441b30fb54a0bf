// Package version is the build information every Spindle binary reports:
// `spindle-agent --version`, `spindle-controller --version` and the CNI
// plugins' VERSION command. The Makefile sets Version from the chart's
// appVersion; the commit comes from the Go toolchain's VCS stamp.
package version

import (
	"flag"
	"fmt"
	"runtime"

	"github.com/spindle-net/spindle/internal/buildinfo"
)

// Version is set at link time:
// -X github.com/spindle-net/spindle/cmd/internal/version.Version=0.1.0
var Version = "dev"

// String is the one-line version of the binary called name, e.g.
// "spindle-agent 0.1.0 (commit 0ca6db7ab12c, go1.26.0, linux/amd64)".
func String(name string) string { return name + " " + info() }

// info is the version and build details: "0.1.0 (commit ..., go..., os/arch)".
func info() string {
	return fmt.Sprintf("%s (commit %s, %s, %s/%s)", Version, buildinfo.Revision(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// About is a CNI plugin's about-string (printed by its VERSION command) with
// the build information appended.
func About(banner string) string {
	return banner + ", version " + info()
}

// Flag registers --version on fs. After fs.Parse, a true value means: print
// String(name) and exit 0.
func Flag(fs *flag.FlagSet) *bool {
	return fs.Bool("version", false, "print the version and exit")
}
