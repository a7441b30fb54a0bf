// Command spindle-selftest checks a running Spindle installation: the agent
// is ready on every node, the webhook refuses an invalid SpiderIPPool, and a
// pod gets an address from a pool and gives it back. The chart runs it as its
// `helm test` hook; operators can run it from outside with --kubeconfig.
// `spindle-selftest sleep` only waits for SIGTERM: it is the container of the
// pod the address check creates (the image has no shell).
package main

import (
	"os"

	"github.com/spindle-net/spindle/cmd/spindle-selftest/internal/selftest"
)

func main() {
	os.Exit(selftest.Main(os.Args[1:], os.Stdout, os.Stderr))
}
