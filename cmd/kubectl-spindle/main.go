// Command kubectl-spindle is the kubectl plugin for operators of Spindle:
// `kubectl spindle pools|ips|why|check|release`. See docs/kubectl-plugin.md.
package main

import (
	"os"

	"github.com/spindle-net/spindle/cmd/kubectl-spindle/internal/plugin"
)

func main() {
	os.Exit(plugin.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
