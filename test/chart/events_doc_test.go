package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/coordinator/clusterinfo"
	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/inline/inlinecontroller"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/poolfinalizer"
	"github.com/spindle-net/spindle/ipam/subnets/subnetcontroller"
	nadcontroller "github.com/spindle-net/spindle/nad/controller"
)

// Every Event reason the components record is documented in
// docs/events.md, where alerts and scripts find it.
func TestEventReasonsAreDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	reasons := []string{
		agent.EventAllocationFailed, agent.EventWaitingForPool, agent.EventRequestedAddressHeld, agent.EventPoolExhausted,
		agent.EventAddressConflict, agent.EventAddressRebound,
		poolfinalizer.ReasonPoolInUse,
		subnetcontroller.ReasonInvalidSubnetAnnotation, subnetcontroller.ReasonFixedIPNumberRequired, subnetcontroller.ReasonSubnetNotFound,
		subnetcontroller.ReasonInvalidSubnet, subnetcontroller.ReasonSubnetOverlaps, subnetcontroller.ReasonSubnetExhausted,
		subnetcontroller.ReasonPoolOutsideSubnet,
		nadcontroller.ReasonCreated, nadcontroller.ReasonUpdated, nadcontroller.ReasonNotOwned, nadcontroller.ReasonInvalidConfig,
		inlinecontroller.ReasonCreated, inlinecontroller.ReasonUpdated, inlinecontroller.ReasonDeleted, inlinecontroller.ReasonInvalid,
		inlinecontroller.ReasonPoolRefused, inlinecontroller.ReasonNotOwned,
		clusterinfo.PhaseSynced, clusterinfo.PhaseNotReady,
		"AddressReleasedByOperator", // kubectl spindle release
	}
	// The garbage collection's event reasons are the reasons it collects for.
	for _, r := range []lifecycle.Reason{
		lifecycle.ReasonPodDeleted, lifecycle.ReasonPodUIDMismatch, lifecycle.ReasonPodSucceeded, lifecycle.ReasonPodFailed,
		lifecycle.ReasonPodEvicted, lifecycle.ReasonTerminatingOnReadyNode, lifecycle.ReasonTerminatingOnNotReady,
		lifecycle.ReasonSandboxDeleted, lifecycle.ReasonStatefulSetScaledDown,
		lifecycle.ReasonStatefulSetDeleted, lifecycle.ReasonVirtualMachineDeleted,
	} {
		reasons = append(reasons, string(r))
	}
	for _, r := range reasons {
		if !strings.Contains(doc, "`"+r+"`") {
			t.Errorf("docs/events.md does not document the Event reason %q: add it to its table", r)
		}
	}
}
