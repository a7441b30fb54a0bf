// Package buildinfo describes the build of a Spindle binary: the commit the
// Go toolchain stamped into it. It links nothing but the runtime, so the CNI
// plugins can use it; the spindle_build_info metric is in buildmetric.
package buildinfo

import (
	"runtime/debug"
)

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
