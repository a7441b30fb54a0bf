// Command lab runs the Spindle lab: a real Kubernetes control plane with
// simulated nodes on one machine. See docs/lab.md.
package main

import (
	"os"

	"github.com/spindle-net/spindle/test/lab/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
