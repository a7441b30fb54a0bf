package agent_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/cniplugin"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/nodeapi/nodeserver"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/webhook"
	"github.com/spindle-net/spindle/test/kubeapi"
)

// badInput is one row of the bad-input table of docs/reliability.md: what
// was tried, and the text the user gets (run returns it).
type badInput struct {
	id  string
	run func(t *testing.T) string
}

// cniText is what a container runtime reports for an agent's error: the CNI
// error the plugin turns it into.
func cniText(err error) string {
	if err == nil {
		return "accepted"
	}
	var e *nodeapi.ErrorResponse
	if errors.As(err, &e) {
		return fmt.Sprintf("CNI error %d: %s", e.Code, types.NewError(e.Code, e.Msg, e.Details).Error())
	}
	var te *types.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("CNI error %d: %s", te.Code, te.Error())
	}
	return err.Error()
}

// TestBadInputTable runs every bad input of docs/reliability.md and checks
// that the error quoted in the doc is the one the user gets today.
// UPDATE_RELIABILITY_DOC=1 rewrites the doc's error column instead.
func TestBadInputTable(t *testing.T) {
	requireEnv(t)
	const ns, node = "badinput", "badinput-node"
	ensureNamespace(t, ns)
	createPool(t, "bad-v4", "10.34.0.0/24", "10.34.0.10-10.34.0.20")
	createPool(t, "bad-v6", "fd00:34::/64", "fd00:34::10-fd00:34::20")
	a := startAgent(t, node, dualStack)
	n := 0
	add := func(t *testing.T, ann map[string]string, pools ...string) string {
		n++
		p := createPod(t, podObj(ns, fmt.Sprintf("pod-%d", n), node, ann))
		t.Cleanup(func() { deletePod(t, p) })
		_, err := a.Add(rootCtx, addReq(p, "eth0", "c", pools...))
		return cniText(err)
	}
	validatePool := func(spec v2beta1.IPPoolSpec) string {
		err := webhook.ValidateIPPool(&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: spec}, webhook.PoolState{})
		if err == nil {
			return "accepted"
		}
		return err.Error()
	}
	loadConf := func(conf string) string {
		_, err := cniplugin.LoadConf([]byte(conf))
		return cniText(err)
	}
	rows := []badInput{
		{"annotation-malformed", func(t *testing.T) string {
			return add(t, map[string]string{annotations.PodIPPool: `{"ipv4":["bad-v4"]`}, "bad-v4")
		}},
		{"annotation-wrong-shape", func(t *testing.T) string {
			return add(t, map[string]string{annotations.PodIPPools: `{"interface":"eth0","ipv4":["bad-v4"]}`}, "bad-v4")
		}},
		{"annotation-oversized", func(t *testing.T) string {
			p := podObj(ns, "oversized", node, map[string]string{annotations.PodIPPool: `{"ipv4":["` + strings.Repeat("a", 300<<10) + `"]}`})
			err := k8s.Create(rootCtx, p)
			if err == nil {
				deletePod(t, p)
				return "accepted"
			}
			return err.Error()
		}},
		{"annotation-10000-pools", func(t *testing.T) string {
			names := make([]string, 10000)
			for i := range names {
				names[i] = fmt.Sprintf(`"missing-%05d"`, i)
			}
			return add(t, map[string]string{annotations.PodIPPool: `{"ipv4":[` + strings.Join(names, ",") + `]}`}, "bad-v4")
		}},
		{"unknown-pool", func(t *testing.T) string {
			return add(t, map[string]string{annotations.PodIPPool: `{"ipv4":["no-such-pool"]}`}, "bad-v4")
		}},
		{"wrong-family-annotation", func(t *testing.T) string {
			return add(t, map[string]string{annotations.PodIPPool: `{"ipv4":["bad-v6"],"ipv6":["bad-v6"]}`})
		}},
		{"wrong-family-pool", func(*testing.T) string {
			return validatePool(v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](4), Subnet: "fd00:35::/64", IPs: []string{"fd00:35::10"}})
		}},
		{"ipv6-zone-pool", func(*testing.T) string {
			return validatePool(v2beta1.IPPoolSpec{Subnet: "fe80::/64", IPs: []string{"fe80::10%eth0"}})
		}},
		{"ipv6-zone-annotation", func(t *testing.T) string {
			return add(t, map[string]string{annotations.CalicoIPAddrs: `["fd00:34::11%eth0"]`})
		}},
		{"gateway-outside", func(*testing.T) string {
			return validatePool(v2beta1.IPPoolSpec{Subnet: "10.35.0.0/24", IPs: []string{"10.35.0.10"}, Gateway: ptr.To("10.36.0.1")})
		}},
		{"pool-65536", func(t *testing.T) string {
			spec := v2beta1.IPPoolSpec{Subnet: "10.37.0.0/16", IPs: []string{"10.37.0.0-10.37.255.255"}}
			if v := validatePool(spec); v != "accepted" {
				return v
			}
			createPool(t, "bad-65536", spec.Subnet, spec.IPs...)
			return add(t, nil, "bad-65536")
		}},
		{"node-10000-pods", func(t *testing.T) string { return tenThousandPods(t) }},
		{"cni-not-json", func(*testing.T) string { return loadConf(`{"cniVersion":"1.0.0","name":"n","ipam":`) }},
		{"cni-missing-ipam", func(*testing.T) string { return loadConf(`{"cniVersion":"1.0.0","name":"n","type":"macvlan"}`) }},
		{"cni-wrong-type", func(*testing.T) string {
			return loadConf(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"host-local"}}`)
		}},
		{"cni-relative-socket", func(*testing.T) string {
			return loadConf(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool","socket":"run/agent.sock"}}`)
		}},
		{"cni-bad-pool-name", func(*testing.T) string {
			return loadConf(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool","default_ipv4_ippool":["Bad_Pool"]}}`)
		}},
		{"cni-extra-keys", func(*testing.T) string {
			return loadConf(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool","log_level":"debug","default_ipv4_ippools":["typo"]}}`)
		}},
		{"cni-args-missing-pod", func(*testing.T) string {
			_, err := cniplugin.ParseArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns")
			return cniText(err)
		}},
		{"agent-truncated-body", func(t *testing.T) string {
			return pluginAdd(t, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 120\r\n\r\n{\"interface\":\"eth0\",\"ips\":[{\"addr")
		}},
		{"agent-truncated-headers", func(t *testing.T) string { return pluginAdd(t, "HTTP/1.0 200 OK\r\nContent-Le") }},
		{"agent-huge-length", func(t *testing.T) string {
			return pluginAdd(t, "HTTP/1.0 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n{}")
		}},
		{"agent-not-json", func(t *testing.T) string { return pluginAdd(t, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello") }},
		{"agent-down", func(t *testing.T) string {
			return cniText(pluginRun(t, "/run/spindle-no-agent/agent.sock"))
		}},
		{"agent-request-not-json", func(*testing.T) string {
			w := httptest.NewRecorder()
			nodeserver.Handler(a).ServeHTTP(w, httptest.NewRequest(http.MethodPost, nodeapi.PathAdd, strings.NewReader(`{"podName":`)))
			return fmt.Sprintf("HTTP %d %s", w.Code, strings.TrimSpace(w.Body.String()))
		}},
	}
	got := map[string]string{}
	for _, r := range rows {
		t.Run(r.id, func(t *testing.T) { got[r.id] = r.run(t) })
	}
	checkReliabilityDoc(t, got)
}

// tenThousandPods allocates for 10,000 pods of one node in the engine (the
// in-memory store, not the API server) from a 65,536-address pool and
// reports the outcome.
func tenThousandPods(t *testing.T) string {
	mem := allocator.NewMemory()
	mem.SetPool(&v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.38.0.0/16", IPs: []string{"10.38.0.0-10.38.255.255"}}})
	e := allocator.New(allocator.Config{Node: "n"}, mem, mem)
	seen := map[string]bool{}
	start := time.Now()
	for i := 0; i < 10000; i++ {
		got, err := e.Allocate(rootCtx, &allocator.Request{Holder: allocator.Holder{Namespace: "ns", Name: fmt.Sprintf("p%d", i), UID: fmt.Sprintf("u%d", i)},
			ContainerID: "c", Interface: "eth0", Families: []allocator.Family{{Family: ranges.V4, Pools: []string{"big"}}}})
		if err != nil {
			return fmt.Sprintf("pod %d: %v", i, err)
		}
		if seen[got[0].Spec.Address] {
			return "duplicate " + got[0].Spec.Address
		}
		seen[got[0].Spec.Address] = true
	}
	t.Logf("10,000 allocations in %s", time.Since(start))
	return fmt.Sprintf("accepted: %d distinct addresses", len(seen))
}

// pluginAdd runs the plugin's ADD against a socket that answers with raw.
func pluginAdd(t *testing.T, raw string) string {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(conn)
			for {
				line, err := r.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			_, _ = conn.Write([]byte(raw))
			conn.Close()
		}
	}()
	return cniText(pluginRun(t, sock))
}

func pluginRun(t *testing.T, sock string) error {
	p := &cniplugin.Plugin{Client: &nodeapi.Client{Socket: sock, Timeout: 5 * time.Second}, Print: func(types.Result, string) error { return nil }}
	return p.Add(&skel.CmdArgs{ContainerID: "c", Netns: "/var/run/netns/x", IfName: "eth0",
		Args:      "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u",
		StdinData: []byte(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"spiderpool"}}`)})
}

var docRow = regexp.MustCompile("^\\| `([a-z0-9-]+)` \\|(.*)\\| (`+) ?(.*?) ?(`+) \\|$")

// checkReliabilityDoc compares the error column of docs/reliability.md's
// bad-input table with got (or rewrites it with UPDATE_RELIABILITY_DOC=1).
func checkReliabilityDoc(t *testing.T, got map[string]string) {
	root, err := kubeapi.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", "reliability.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	inDoc := map[string]bool{}
	for i, line := range lines {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id, quoted := m[1], strings.ReplaceAll(m[4], `\|`, "|")
		inDoc[id] = true
		want, ok := got[id]
		if !ok {
			t.Errorf("docs/reliability.md row %q: no such bad input in TestBadInputTable", id)
			continue
		}
		if os.Getenv("UPDATE_RELIABILITY_DOC") == "1" {
			lines[i] = fmt.Sprintf("| `%s` |%s| %s |", id, m[2], codeSpan(want))
			continue
		}
		if quoted != want {
			t.Errorf("docs/reliability.md row %q quotes\n  %s\nbut the user gets\n  %s\n(UPDATE_RELIABILITY_DOC=1 rewrites the doc)", id, quoted, want)
		}
	}
	for id := range got {
		if !inDoc[id] {
			t.Errorf("bad input %q is not in the table of docs/reliability.md", id)
		}
	}
	if os.Getenv("UPDATE_RELIABILITY_DOC") == "1" {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// codeSpan quotes s as a Markdown code span inside a table cell.
func codeSpan(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if len(fence) > 1 || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}
