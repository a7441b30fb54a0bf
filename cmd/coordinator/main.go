// Command coordinator is the coordinator chained CNI plugin. All logic lives
// in package coordinator.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	buildversion "github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/coordinator"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    coordinator.Add,
		Check:  coordinator.Check,
		Del:    coordinator.Del,
		Status: coordinator.Status,
		GC:     coordinator.GC,
	}, version.All, buildversion.About(coordinator.About))
}
