package framework

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
)

// UnderlaySliceV6 returns an IPv6 range of n addresses inside the underlay
// subnet but outside the part the lab uses (its first /120): block selects
// the /120 (1-254), as UnderlaySliceV4 does for IPv4, and the range starts at
// its host number 10 (0x0a).
func (l *Facts) UnderlaySliceV6(block, n int) (start, end netip.Addr, err error) {
	if l.UnderlayV6.Bits() > 112 || block < 1 || block > 254 || n < 1 || n > 240 {
		return start, end, fmt.Errorf("failed to pick underlay slice %d of %s: want an underlay of /112 or wider, block 1-254, 1-240 addresses", block, l.UnderlayV6)
	}
	b := l.UnderlayV6.Masked().Addr().As16()
	b[14], b[15] = byte(block), 10
	start = netip.AddrFrom16(b)
	b[15] = byte(10 + n - 1)
	return start, netip.AddrFrom16(b), nil
}

// ExecInNode runs cmd in the node's network and mount namespaces with
// `lab node exec` and returns stdout and stderr.
func (l *Lab) ExecInNode(ctx context.Context, node string, cmd ...string) (string, string, error) {
	return l.run(ctx, append([]string{"node", "exec", node, "--"}, cmd...), "node "+node, cmd)
}

// ExecInNodeNetwork implements Cluster: a lab node runs the machine's tools.
func (l *Lab) ExecInNodeNetwork(ctx context.Context, node string, cmd ...string) (string, string, error) {
	return l.ExecInNode(ctx, node, cmd...)
}

// NodeNetworkArgv implements Cluster: `lab node exec`.
func (l *Lab) NodeNetworkArgv(_ context.Context, node string, cmd ...string) ([]string, error) {
	return append([]string{l.Bin, "node", "exec", node, "--"}, cmd...), nil
}

// GatewayArgv implements Cluster: `ip netns exec` of LAB_GATEWAY_NETNS.
func (l *Lab) GatewayArgv(cmd ...string) []string {
	return append([]string{"ip", "netns", "exec", l.Env["LAB_GATEWAY_NETNS"]}, cmd...)
}

// ExecInGateway runs cmd in the lab's gateway network namespace
// (LAB_GATEWAY_NETNS) with `ip netns exec`.
func (l *Lab) ExecInGateway(ctx context.Context, cmd ...string) (string, string, error) {
	gw := l.Env["LAB_GATEWAY_NETNS"]
	if gw == "" {
		return "", "", fmt.Errorf("failed to find LAB_GATEWAY_NETNS in the lab env")
	}
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", gw}, cmd...)...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in gateway netns %q: %w: %s", strings.Join(cmd, " "), gw, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

func (l *Lab) run(ctx context.Context, args []string, where string, cmd []string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, l.Bin, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		err = fmt.Errorf("failed to run %q in %s: %w: %s", strings.Join(cmd, " "), where, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

var spaces = regexp.MustCompile(`[ \t]+`)

// IPLines splits the output of `ip rule` / `ip route` into lines with runs
// of blanks (ip separates a rule's priority with a tab) collapsed into one
// space; empty lines are dropped.
func IPLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(spaces.ReplaceAllString(l, " ")); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// RouteTables filters the output of `ip route show table all` down to what
// a pod's or node's configuration decides: the local table and the kernel's
// link-local (fe80::/64) and multicast routes are dropped.
func RouteTables(out string) []string {
	var keep []string
	for _, l := range IPLines(out) {
		switch {
		case strings.Contains(l, " table local"),
			strings.HasPrefix(l, "fe80::/64 ") && strings.Contains(l, " proto kernel"),
			strings.HasPrefix(l, "multicast "), strings.HasPrefix(l, "local "), strings.HasPrefix(l, "broadcast "),
			strings.HasPrefix(l, "anycast "):
			continue
		}
		keep = append(keep, l)
	}
	return keep
}

// InTable returns the lines of RouteTables output that belong to table
// (254: the main table, which ip prints without "table"), with the
// " table N" part removed so that they read like `ip route show table N`.
func InTable(lines []string, table int) []string {
	var out []string
	for _, l := range lines {
		t := "254"
		if i := strings.Index(l, " table "); i >= 0 {
			rest := l[i+len(" table "):]
			t, rest, _ = strings.Cut(rest, " ")
			l = strings.TrimSpace(l[:i] + " " + rest)
		}
		if t == "main" {
			t = "254"
		}
		if t == fmt.Sprint(table) {
			out = append(out, l)
		}
	}
	return out
}
