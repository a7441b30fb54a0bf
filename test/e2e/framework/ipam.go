package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// SpindleClient returns a client that knows Spindle's API group
// (spiderpool.spidernet.io/v2beta1) besides the built-in kinds.
func (f *Framework) SpindleClient() (client.Client, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(f.Config, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for %s: %w", v2beta1.GroupVersion, err)
	}
	return c, nil
}

// hexDigits reads the decimal digits of n as hexadecimal, so that block 120
// becomes the group "120" of an IPv6 address.
func hexDigits(n int) uint64 {
	v, _ := strconv.ParseUint(strconv.Itoa(n), 16, 32)
	return v
}

// UnderlayRangeV4 returns n IPv4 addresses of the underlay starting at host
// number first of /24 block (172.30.<block>.<first> on the default lab).
// Unlike UnderlaySliceV4 the start is chosen by the caller, so that pools
// can stay away from the .10-.14 addresses other specs hand out with
// host-local.
func (l *Facts) UnderlayRangeV4(block, first, n int) (start, end netip.Addr, err error) {
	if l.UnderlayV4.Bits() > 16 || block < 1 || block > 254 || first < 0 || n < 1 || first+n-1 > 255 {
		return start, end, fmt.Errorf("failed to pick underlay range %d.%d+%d of %s: want a /16 underlay, block 1-254, addresses within the block", block, first, n, l.UnderlayV4)
	}
	b := l.UnderlayV4.Masked().Addr().As4()
	b[2] += byte(block)
	b[3] = byte(first)
	start = netip.AddrFrom4(b)
	b[3] = byte(first + n - 1)
	return start, netip.AddrFrom4(b), nil
}

// UnderlayRangeV6 returns n IPv6 addresses of the underlay: block and first
// are written with the same digits in the last two groups (block 120, first
// 100 starts at fd30:172:30::120:100 on the default lab), outside the lab's
// reserved first /120.
func (l *Facts) UnderlayRangeV6(block, first, n int) (start, end netip.Addr, err error) {
	if l.UnderlayV6.Bits() > 64 || block < 1 || block > 9999 || first < 0 || first > 9999 || n < 1 || n > 4096 {
		return start, end, fmt.Errorf("failed to pick underlay range %d:%d+%d of %s: want a /64 (or shorter) underlay, block and first 0-9999", block, first, n, l.UnderlayV6)
	}
	base := new(big.Int).SetBytes(l.UnderlayV6.Masked().Addr().AsSlice())
	off := new(big.Int).SetUint64(hexDigits(block)<<16 | hexDigits(first))
	s := new(big.Int).Add(base, off)
	e := new(big.Int).Add(s, big.NewInt(int64(n-1)))
	var sb, eb [16]byte
	s.FillBytes(sb[:])
	e.FillBytes(eb[:])
	return netip.AddrFrom16(sb), netip.AddrFrom16(eb), nil
}

// SpiderpoolMacvlanConfig renders a macvlan (bridge mode) CNI configuration
// on master whose IPAM is the spiderpool plugin; extra keys (for example
// default_ipv4_ippool) are added to the "ipam" object.
func SpiderpoolMacvlanConfig(name, master string, extraIPAM map[string]any) string {
	ipam := map[string]any{"type": "spiderpool"}
	for k, v := range extraIPAM {
		ipam[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"type":       "macvlan",
		"master":     master,
		"mode":       "bridge",
		"ipam":       ipam,
	})
	return string(b)
}

// KubectlPath returns the kubectl to run: $E2E_KUBECTL, else the lab's
// pinned kubectl (test/lab/tools/build-deps.sh path k8s) under repoRoot.
func KubectlPath(ctx context.Context, repoRoot string) (string, error) {
	if p := os.Getenv("E2E_KUBECTL"); p != "" {
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot, "test/lab/tools/build-deps.sh"), "path", "k8s").Output()
	if err != nil {
		return "", fmt.Errorf("failed to find kubectl with build-deps.sh path k8s (set E2E_KUBECTL): %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "kubectl")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("failed to find kubectl at %q (run bash test/lab/tools/build-deps.sh k8s, or set E2E_KUBECTL): %w", p, err)
	}
	return p, nil
}

// Kubectl runs kubectl against the cluster under test and returns stdout.
func (f *Framework) Kubectl(ctx context.Context, kubectl string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", f.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String(), fmt.Errorf("failed to run kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ParseTable splits kubectl's table output into rows keyed by column
// header. Columns are cut at the header's column starts, so empty cells
// stay empty instead of shifting the row.
func ParseTable(out string) []map[string]string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 1 || strings.TrimSpace(lines[0]) == "" {
		return nil
	}
	header := lines[0]
	type col struct {
		name  string
		start int
	}
	var cols []col
	for i := 0; i < len(header); {
		if header[i] == ' ' {
			i++
			continue
		}
		j := i
		for j < len(header) && header[j] != ' ' {
			j++
		}
		cols = append(cols, col{header[i:j], i})
		i = j
	}
	var rows []map[string]string
	for _, l := range lines[1:] {
		row := map[string]string{}
		for k, c := range cols {
			end := len(l)
			if k+1 < len(cols) && cols[k+1].start < end {
				end = cols[k+1].start
			}
			if c.start < end {
				row[c.name] = strings.TrimSpace(l[c.start:end])
			} else {
				row[c.name] = ""
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// InIPList reports whether addr is one of the entries of a pool's ips
// (single addresses or inclusive first-last ranges). It is a deliberately
// separate, simple reading of the list for assertions.
func InIPList(ips []string, addr netip.Addr) bool {
	for _, e := range ips {
		first, last, isRange := strings.Cut(strings.TrimSpace(e), "-")
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			continue
		}
		if !isRange {
			if a == addr {
				return true
			}
			continue
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err == nil && addr.Compare(a) >= 0 && addr.Compare(b) <= 0 {
			return true
		}
	}
	return false
}

// WaitPoolAllocated waits until the pool's status.allocatedIPCount equals
// want, up to timeout, and returns the pool.
func WaitPoolAllocated(ctx context.Context, c client.Client, pool string, want int64, timeout time.Duration) (*v2beta1.SpiderIPPool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &v2beta1.SpiderIPPool{}
	var got *int64
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: pool}, p); err != nil {
			return false, nil
		}
		got = p.Status.AllocatedIPCount
		return got != nil && *got == want, nil
	})
	if err != nil {
		g := "unset"
		if got != nil {
			g = strconv.FormatInt(*got, 10)
		}
		return p, fmt.Errorf("failed to see SpiderIPPool %q with status.allocatedIPCount %d within %s (last: %s)", pool, want, timeout, g)
	}
	return p, nil
}
