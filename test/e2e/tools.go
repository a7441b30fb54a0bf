//go:build tools

// This file is never built: it keeps the ginkgo command's module graph in
// go.mod, so that test/kind/e2e.sh builds the pinned CLI that runs the suite
// on parallel processes.
package e2e

import _ "github.com/onsi/ginkgo/v2/ginkgo"
