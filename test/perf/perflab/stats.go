package perflab

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Percentile returns the p-th Percentile (0-100) of d in seconds, by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. An empty slice gives 0.
func Percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1].Seconds()
}

// Median returns the median of v (the mean of the middle two for an even
// count); an empty slice gives 0.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Duplicates counts the addresses held by more than one pod: for every
// address, each holder beyond the first counts once. held maps a pod to its
// addresses; a pod listing an address twice counts as one holder.
func Duplicates(held map[string][]netip.Addr) (n int, examples []string) {
	holders := map[netip.Addr][]string{}
	for pod, addrs := range held {
		seen := map[netip.Addr]bool{}
		for _, a := range addrs {
			if !seen[a] {
				seen[a] = true
				holders[a] = append(holders[a], pod)
			}
		}
	}
	for a, pods := range holders {
		if len(pods) > 1 {
			n += len(pods) - 1
			sort.Strings(pods)
			examples = append(examples, fmt.Sprintf("%s held by %s", a, strings.Join(pods, ", ")))
		}
	}
	sort.Strings(examples)
	return n, examples
}

// AddrRange returns the inclusive range of n addresses starting at first,
// written as a pool's or subnet's spec.ips entry.
func AddrRange(first netip.Addr, n int) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("failed to make a range of %d addresses from %s: want at least one", n, first)
	}
	last := first
	for range n - 1 {
		last = last.Next()
		if !last.IsValid() {
			return "", fmt.Errorf("failed to make a range of %d addresses from %s: it runs past the end of the address space", n, first)
		}
	}
	return first.String() + "-" + last.String(), nil
}

// phaseResult is what one phase (manual pool or carved pools) measured.
func MetricSum(text, name string, labels ...string) (sum float64, ok bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		set := ""
		if rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			set, rest = rest[1:end], rest[end+1:]
		}
		match := true
		for _, l := range labels {
			if !slices.Contains(strings.Split(set, ","), l) {
				match = false
			}
		}
		fields := strings.Fields(rest)
		if !match || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum += v
		ok = true
	}
	return sum, ok
}
