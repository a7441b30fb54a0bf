package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// Fault kinds, in the order every plan contains them at least once.
const (
	FaultAgent      = "kill-agent"      // SIGKILL a node's agent, start it after Delay
	FaultController = "kill-controller" // SIGKILL spindle-controller, start it after Delay
	FaultAPIServer  = "kill-apiserver"  // SIGKILL kube-apiserver, start it after Delay
	FaultEtcd       = "kill-etcd"       // SIGKILL etcd, start it after Delay
	FaultNodeLoss   = "node-loss"       // stop a node's shim past the node-monitor grace
	FaultCNIAdd     = "kill-cni-add"    // SIGKILL a spiderpool plugin in the middle of an ADD
	FaultAPIErrors  = "api-errors"      // the agent's API proxy fails a share of requests for Delay
)

// FaultKinds lists every kind.
var FaultKinds = []string{FaultAgent, FaultController, FaultAPIServer, FaultEtcd, FaultNodeLoss, FaultCNIAdd, FaultAPIErrors}

// Fault is one planned fault.
type Fault struct {
	At    time.Duration // after the start of the churn
	Kind  string
	Node  string        // kill-agent, node-loss
	Delay time.Duration // how long the component stays down (api-errors: the error window)
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s at %s", f.Kind, f.At.Round(time.Second))
	if f.Node != "" {
		s += " on " + f.Node
	}
	if f.Delay > 0 {
		s += fmt.Sprintf(" for %s", f.Delay.Round(100*time.Millisecond))
	}
	return s
}

// PlanFaults draws the fault schedule of a run of length churn from seed:
// every kind once, then one more random fault per started perEvery of churn;
// faults are spread over the first 80% of the run in random order (node loss
// is held back from the last part, so that its reclaim can be measured
// before the churn stops). The same seed and inputs give the same plan.
func PlanFaults(seed int64, churn time.Duration, nodes []string, perEvery time.Duration) []Fault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	kinds := append([]string(nil), FaultKinds...)
	if perEvery > 0 {
		for extra := int(churn / perEvery); extra > 0; extra-- {
			k := FaultKinds[rng.IntN(len(FaultKinds))]
			if k == FaultNodeLoss {
				k = FaultAgent // one node loss per run: it takes the longest
			}
			kinds = append(kinds, k)
		}
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	window := churn * 8 / 10
	slot := window / time.Duration(len(kinds))
	out := make([]Fault, 0, len(kinds))
	for i, k := range kinds {
		f := Fault{Kind: k, At: time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot/2)+1))}
		switch k {
		case FaultAgent, FaultNodeLoss:
			f.Node = nodes[rng.IntN(len(nodes))]
		}
		switch k {
		case FaultAgent, FaultController:
			f.Delay = time.Duration(500+rng.IntN(9500)) * time.Millisecond
		case FaultAPIServer, FaultEtcd:
			f.Delay = time.Duration(500+rng.IntN(4500)) * time.Millisecond
		case FaultAPIErrors:
			f.Delay = time.Duration(10+rng.IntN(20)) * time.Second
		}
		out = append(out, f)
	}
	// Node loss runs no later than the middle of the run.
	for i := range out {
		if out[i].Kind == FaultNodeLoss && out[i].At > churn/2 {
			for j := range out {
				if out[j].At <= churn/3 {
					out[i].At, out[j].At = out[j].At, out[i].At
					break
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}
