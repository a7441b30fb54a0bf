package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/perf/perflab"
)

// The lab's per-node logs, and the lines of one CNI ADD in them:
//
//	<node>-shim.log    the node's shim runs Multus and logs the whole ADD
//	                   when it returns:
//	                   2026/12/06 20:59:30.027595 pod NS/NAME: CNI ADD ok in 321ms: [...]
//	<node>-agent.log   spindle-agent logs every IPAM ADD with its duration
//	                   when it returns:
//	                   I1206 20:59:29.943007 ... "ADD" pod="NS/NAME" ... containerID="ID" ... duration="10.378ms"
//	<node>-cni.log     the plugins' stderr: Multus records an AddedInterface
//	                   event per interface as its delegate returns (klog, µs):
//	                   I1206 20:59:29.924397 ... Namespace:"NS", Name:"NAME", ... reason: 'AddedInterface' Add net1 [...]
//	                   and the coordinator logs its plan, with the time it
//	                   took to read the settings, the pod and both
//	                   namespaces, before it probes and programs the pod:
//	                   time=2026-12-06T20:59:29.967Z level=INFO msg=planned cmd=ADD containerID=ID ... prepare=12.5ms
var (
	shimFail   = regexp.MustCompile(`^\S+ \S+ pod ([^/\s]+)/([^/\s]+)/\S+: failed to set up network of pod .*`)
	shimAdd    = regexp.MustCompile(`^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) pod ([^/\s]+)/(\S+): CNI ADD ok in (\S+):`)
	multusAdd  = regexp.MustCompile(`^I(\d{4} \d\d:\d\d:\d\d\.\d+)\s.*Namespace:"([^"]+)", Name:"([^"]+)".*reason: 'AddedInterface' Add (\S+) `)
	agentAdd   = regexp.MustCompile(`^I(\d{4} \d\d:\d\d:\d\d\.\d+)\s.* "ADD" pod="([^"/]+)/([^"]+)" .*containerID="([^"]+)".* duration="([^"]+)"`)
	coordPlan  = regexp.MustCompile(`^time=(\S+) level=\w+ msg=planned cmd=ADD containerID=(\S+) (?:.* prepare=(\S+))?`)
	klogLayout = "2006 0102 15:04:05.999999"
	shimLayout = "2006/01/02 15:04:05.999999"
)

// podAdd is what the logs say of one pod's last successful ADD.
type podAdd struct {
	shimEnd       time.Time
	total         time.Duration
	added         map[string]time.Time // interface: when Multus added it
	ipam          time.Duration
	containerID   string
	hasIPAM, seen bool
}

// addTimings are the phase's per-pod ADD spans.
type addTimings struct {
	// total is the whole CNI ADD (Multus with all its delegates).
	total []time.Duration
	// eth0 runs from the start of the ADD until Multus added the default
	// network's eth0; net1 from there until it added net1.
	eth0, net1 []time.Duration
	// ipam is the agent's own time for the IPAM ADD (spindle only).
	ipam []time.Duration
	// coordinator runs from the coordinator's start (its plan less its
	// prepare) until Multus added net1 (spindle only).
	coordinator []time.Duration
	// tail runs from net1 added until the ADD returned: Multus writing
	// the pod's network-status.
	tail []time.Duration
	// failed counts the failed ADDs by cause (failCause).
	failed map[string]int
}

// failCause sorts a failed ADD of the shim's log by the component that
// failed it.
func failCause(line string) string {
	switch {
	case strings.Contains(line, "error waiting for pod"):
		return "multus-pod-lookup"
	case strings.Contains(line, "spiderpool"), strings.Contains(line, "spindle-agent"):
		return "ipam"
	case strings.Contains(line, "coordinator"):
		return "coordinator"
	}
	return "other"
}

// readTimings reads the ADDs of the pods of namespace ns whose names start
// with prefix from every node's logs in dir. year completes klog's
// timestamps.
func readTimings(dir, ns, prefix string, year int) (addTimings, error) {
	pods := map[string]*podAdd{}
	get := func(name string) *podAdd {
		p := pods[name]
		if p == nil {
			p = &podAdd{added: map[string]time.Time{}}
			pods[name] = p
		}
		return p
	}
	byContainer := map[string]time.Time{} // the coordinator's start
	failed := map[string]int{}
	err := eachLine(dir, "*-shim.log", func(line string) {
		if m := shimFail.FindStringSubmatch(line); m != nil {
			if m[1] == ns && strings.HasPrefix(m[2], prefix) {
				failed[failCause(line)]++
			}
			return
		}
		m := shimAdd.FindStringSubmatch(line)
		if m == nil || m[2] != ns || !strings.HasPrefix(m[3], prefix) {
			return
		}
		end, err1 := time.ParseInLocation(shimLayout, m[1], time.Local)
		d, err2 := time.ParseDuration(m[4])
		if err1 == nil && err2 == nil {
			p := get(m[3])
			p.shimEnd, p.total, p.seen = end, d, true
		}
	})
	if err == nil {
		err = eachLine(dir, "*-agent.log", func(line string) {
			m := agentAdd.FindStringSubmatch(line)
			if m == nil || m[2] != ns || !strings.HasPrefix(m[3], prefix) {
				return
			}
			if d, err := time.ParseDuration(m[5]); err == nil {
				p := get(m[3])
				p.ipam, p.containerID, p.hasIPAM = d, m[4], true
			}
		})
	}
	if err == nil {
		err = eachLine(dir, "*-cni.log", func(line string) {
			if m := coordPlan.FindStringSubmatch(line); m != nil {
				if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
					if d, err := time.ParseDuration(m[3]); err == nil {
						at = at.Add(-d) // the coordinator's start
					}
					byContainer[m[2]] = at
				}
				return
			}
			m := multusAdd.FindStringSubmatch(line)
			if m == nil || m[2] != ns || !strings.HasPrefix(m[3], prefix) {
				return
			}
			if at, err := time.ParseInLocation(klogLayout, fmt.Sprintf("%d %s", year, m[1]), time.Local); err == nil {
				get(m[3]).added[m[4]] = at
			}
		})
	}
	if err != nil {
		return addTimings{}, err
	}
	t := addTimings{failed: failed}
	for _, p := range pods {
		if !p.seen {
			continue
		}
		t.total = append(t.total, p.total)
		start := p.shimEnd.Add(-p.total)
		eth0, ok0 := p.added["eth0"]
		net1, ok1 := p.added[iface]
		if ok0 && ok1 {
			t.eth0 = append(t.eth0, eth0.Sub(start))
			t.net1 = append(t.net1, net1.Sub(eth0))
			t.tail = append(t.tail, p.shimEnd.Sub(net1))
		}
		if p.hasIPAM {
			t.ipam = append(t.ipam, p.ipam)
			if began, ok := byContainer[p.containerID]; ok && ok1 {
				t.coordinator = append(t.coordinator, net1.Sub(began))
			}
		}
	}
	return t, nil
}

// eachLine calls f with every line of every file in dir matching glob.
func eachLine(dir, glob string, f func(string)) error {
	files, err := filepath.Glob(filepath.Join(dir, glob))
	if err != nil {
		return err
	}
	for _, name := range files {
		file, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("failed to read the lab log %s: %w", name, err)
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		for sc.Scan() {
			f(sc.Text())
		}
		err = sc.Err()
		file.Close()
		if err != nil {
			return fmt.Errorf("failed to read the lab log %s: %w", name, err)
		}
	}
	return nil
}

func ms(d []time.Duration, p float64) float64 { return perflab.Percentile(d, p) * 1000 }

// describe renders the spans' medians and 99th percentiles in ms.
func (t addTimings) describe() string {
	if len(t.total) == 0 {
		return "no CNI ADD of its pods in the lab's shim logs"
	}
	parts := []string{fmt.Sprintf("%d ADDs in the logs (p50/p99 ms): total %.0f/%.0f", len(t.total), ms(t.total, 50), ms(t.total, 99))}
	for _, s := range []struct {
		name string
		d    []time.Duration
	}{{"multus+eth0", t.eth0}, {"net1", t.net1}, {"ipam(agent)", t.ipam}, {"coordinator", t.coordinator}, {"multus-status", t.tail}} {
		if len(s.d) > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f/%.0f", s.name, ms(s.d, 50), ms(s.d, 99)))
		}
	}
	out := strings.Join(parts, ", ")
	if len(t.failed) > 0 {
		var causes []string
		for c, n := range t.failed {
			causes = append(causes, fmt.Sprintf("%s %d", c, n))
		}
		sort.Strings(causes)
		out += "; failed ADDs: " + strings.Join(causes, ", ")
	}
	return out
}
