// Package prereq is how Spindle's tests meet a missing prerequisite (root, a
// binary, a running lab): on a developer's laptop the test skips and says what
// to do; under `make test`, which sets SPINDLE_REQUIRE_ALL=1, it fails, so CI
// never turns a broken environment into green skips.
//
// It also tags tests with their tier (privileged, envtest, lab-e2e) so that
// `make test` can count what ran in each; untagged tests are unit tests.
package prereq

import (
	"fmt"
	"os"
	"testing"
)

// EnvRequireAll is the switch `make test` sets.
const EnvRequireAll = "SPINDLE_REQUIRE_ALL"

// TierMarker starts the log line that tags a test with its tier; test/tiers
// reads it from `go test -json` output.
const TierMarker = "spindle-tier: "

// Tiers a test can be tagged with.
const (
	Privileged = "privileged"
	Envtest    = "envtest"
	LabE2E     = "lab-e2e"
	// Kind is the tier of what runs in the offline kind cluster (test/kind).
	Kind = "kind"
	// KindE2E is the tier of the e2e suite's specs run on the kind cluster.
	KindE2E = "kind-e2e"
)

// Required reports whether a missing prerequisite must fail the test.
func Required() bool { return os.Getenv(EnvRequireAll) == "1" }

// Missing stops t because a prerequisite is missing: a skip with the message,
// or a failure under SPINDLE_REQUIRE_ALL=1.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("prerequisite missing (%s=1 turns skips into failures): %s", EnvRequireAll, msg)
	}
	t.Skip(msg)
}

// Tier tags t with its tier.
func Tier(t testing.TB, tier string) {
	t.Helper()
	t.Log(TierMarker + tier)
}

// Root tags t as privileged and stops it unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	Tier(t, Privileged)
	if os.Geteuid() != 0 {
		Missing(t, "privileged test: needs root to create network and mount namespaces; run `go test` as root")
	}
}
