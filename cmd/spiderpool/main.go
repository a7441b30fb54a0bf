// Command spiderpool is the IPAM CNI plugin. It forwards every request to the
// spindle-agent on the node over a unix socket.
package main

import (
	"github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/ipam/cniplugin"
)

func main() {
	cniplugin.Main(version.About(cniplugin.About))
}
