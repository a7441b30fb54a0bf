// Command node measures what the coordinator reads of a node on every CNI
// ADD, as the node fills with pods. Each pod leaves a host-side veth with
// addresses in the node's namespace (the default network's ptp end, for
// example); before it plans a pod's routes the coordinator reads the node's
// addresses and the node end of the pod's own veth, so a cost that grows
// faster than the node's link count would slow every ADD on a full node.
//
// In a network namespace of its own it creates -small and then -large
// host-side veths (peers in a second namespace, an IPv4 /32 and an IPv6
// link-local address on each host end), times -samples calls of the
// coordinator's node inspection at each size, and ends with one line:
//
//	bench_node: veths=10,250 inspect_host_ms_10=.. inspect_host_ms_250=.. per_veth_ratio=..
//
// per_veth_ratio is the median time per veth at the large size over that at
// the small size: about 1 when the inspection is linear in the node's links,
// about large/small when it is quadratic. It needs root; it never touches
// the namespace it is started in.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/spindle-net/spindle/routing"
	"github.com/spindle-net/spindle/test/perf/perflab"
)

func main() {
	small := flag.Int("small", 10, "host-side veths of the baseline node")
	large := flag.Int("large", 250, "host-side veths of the full node (a node's /24 of the pod CIDR gives at most 253 pods)")
	samples := flag.Int("samples", 50, "inspections timed at each size; medians are reported")
	flag.Parse()
	if *small < 1 || *large <= *small || *large > 60000 || *samples < 1 {
		fmt.Fprintln(os.Stderr, "bench_node: want 1 <= -small < -large <= 60000 and -samples >= 1")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench_node: needs root (it creates network namespaces); run it with sudo")
		os.Exit(1)
	}
	line, err := run(*small, *large, *samples)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench_node:", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

func run(small, large, samples int) (string, error) {
	host, err := testutils.NewNS()
	if err != nil {
		return "", fmt.Errorf("failed to create the node's namespace: %w", err)
	}
	defer cleanup(host)
	pods, err := testutils.NewNS()
	if err != nil {
		return "", fmt.Errorf("failed to create the pods' namespace: %w", err)
	}
	defer cleanup(pods)
	fmt.Printf("# node namespace %s, pods' namespace %s\n", host.Path(), pods.Path())
	fmt.Printf("%8s %12s %12s %14s\n", "veths", "p50_ms", "p99_ms", "p50_us/veth")
	var medians []float64
	have := 0
	for _, n := range []int{small, large} {
		if err := addVeths(host, pods, have, n); err != nil {
			return "", err
		}
		have = n
		// The newest pod's veth: the coordinator asks for the node end of
		// the pod's veth by index.
		var peer int
		if err := host.Do(func(ns.NetNS) error {
			itf, err := net.InterfaceByName(fmt.Sprintf("h%d", n-1))
			if err == nil {
				peer = itf.Index
			}
			return err
		}); err != nil {
			return "", fmt.Errorf("failed to find the newest veth: %w", err)
		}
		var d []time.Duration
		for range samples {
			start := time.Now()
			var facts *routing.HostFacts
			err := host.Do(func(ns.NetNS) error {
				var err error
				facts, err = routing.InspectHost(peer)
				return err
			})
			if err != nil {
				return "", err
			}
			d = append(d, time.Since(start))
			if len(facts.Addrs) != n || len(facts.Veths) != 1 || facts.Veths[0].Index != peer {
				return "", fmt.Errorf("the inspection found %d addresses and veths %+v in the node's namespace, want %d addresses and the veth at index %d",
					len(facts.Addrs), facts.Veths, n, peer)
			}
		}
		p50, p99 := 1000*perflab.Percentile(d, 50), 1000*perflab.Percentile(d, 99)
		medians = append(medians, p50)
		fmt.Printf("%8d %12.3f %12.3f %14.2f\n", n, p50, p99, 1000*p50/float64(n))
	}
	ratio := (medians[1] / float64(large)) / (medians[0] / float64(small))
	return fmt.Sprintf("bench_node: veths=%d,%d inspect_host_ms_%d=%.3f inspect_host_ms_%d=%.3f per_veth_ratio=%.2f samples=%d",
		small, large, small, medians[0], large, medians[1], ratio, samples), nil
}

// addVeths adds host-side veths from index from up to to: hN with
// 10.200.x.y/32 in the node's namespace, its peer pN up in the pods'.
func addVeths(host, pods ns.NetNS, from, to int) error {
	var h, p bytes.Buffer
	for i := from; i < to; i++ {
		fmt.Fprintf(&h, "link add h%d type veth peer name p%d netns %s\n", i, i, pods.Path())
		fmt.Fprintf(&h, "addr add 10.200.%d.%d/32 dev h%d\n", i/250, i%250+1, i)
		fmt.Fprintf(&h, "link set h%d up\n", i)
		fmt.Fprintf(&p, "link set p%d up\n", i)
	}
	if err := ipBatch(host, &h); err != nil {
		return err
	}
	return ipBatch(pods, &p)
}

func ipBatch(n ns.NetNS, cmds *bytes.Buffer) error {
	cmd := exec.Command("nsenter", "--net="+n.Path(), "ip", "-batch", "-")
	cmd.Stdin = cmds
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -batch in %s: %w: %s", n.Path(), err, out)
	}
	return nil
}

func cleanup(n ns.NetNS) {
	n.Close()
	_ = testutils.UnmountNS(n)
}
