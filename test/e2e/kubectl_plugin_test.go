package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The kubectl plugin specs use the underlay blocks 90-99, between the
// sandbox specs' (50-89) and the IPAM specs' (100-199). They run the
// plugin binary `make build` wrote to bin/ as an operator would.
const kubectlBlockBase = 90

// binResult is one run of a binary `make build` wrote to bin/.
type binResult struct {
	stdout, stderr string
	code           int
}

func (r binResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runBin runs bin/NAME with args (the kubeconfig of the cluster under test
// is among them) and prints the command line and its output to the spec's
// log; shown is how the log names the command.
func runBin(ctx context.Context, name, shown string, args ...string) binResult {
	GinkgoHelper()
	wd, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	bin := filepath.Join(framework.RepoRoot(wd), "bin", name)
	if _, err := os.Stat(bin); err != nil {
		missing(fmt.Sprintf("%s not built: run make build", bin))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	r := binResult{stdout: stdout.String(), stderr: stderr.String()}
	var xe *exec.ExitError
	switch {
	case errors.As(err, &xe):
		r.code = xe.ExitCode()
	case err != nil:
		Fail(fmt.Sprintf("failed to run %s: %v", bin, err))
	}
	GinkgoWriter.Printf("$ %s %s   (%s)\n%s%s(exit %d)\n", shown, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), r.stdout, r.stderr, r.code)
	return r
}

// kubectlSpindle runs the plugin against the cluster under test.
func kubectlSpindle(ctx context.Context, args ...string) binResult {
	GinkgoHelper()
	return runBin(ctx, "kubectl-spindle", "kubectl spindle", append(args, "--kubeconfig", f.Kubeconfig)...)
}

// claimOf returns the claim of the pod's address on net1 of family 4.
func (e *ipamEnv) claimOf(ctx context.Context, pool string, pod *corev1.Pod) v2beta1.SpiderIPClaim {
	GinkgoHelper()
	for _, c := range e.claims(ctx, Default, pool) {
		if c.Spec.PodUID == string(pod.UID) {
			return c
		}
	}
	Fail(fmt.Sprintf("no claim of pod %s/%s in pool %s", pod.Namespace, pod.Name, pool))
	return v2beta1.SpiderIPClaim{}
}

// spindleConfig writes the chart's ConfigMap of agent settings into the
// spec's namespace, so why reads the lab agents' settings from it
// (--spindle-namespace) as it would from an installation.
func (e *ipamEnv) spindleConfig(ctx context.Context) {
	GinkgoHelper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "spindle-config"},
		Data: map[string]string{"SPINDLE_AGENT_ENABLE_IPV4": "true", "SPINDLE_AGENT_ENABLE_IPV6": "true", "SPINDLE_AGENT_CLUSTER_DEFAULT_NETWORK": ""}}
	_, err := f.Client.CoreV1().ConfigMaps(e.ns).Create(ctx, cm, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

var _ = Describe("kubectl spindle", Serial, func() {
	BeforeEach(func() {
		requireCluster()
	})

	It("pools and ips show what the pools and claims hold", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-kubectl-pools")
		n1, n2 := e.lab.Nodes[0], e.lab.Nodes[len(e.lab.Nodes)-1]
		e.pool(ctx, "kubectl-pools-v4", 4, kubectlBlockBase, 5)
		e.pool(ctx, "kubectl-pools-n2", 4, kubectlBlockBase+1, 3, func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = []string{n2} })
		e.nad(ctx, "underlay", nil)
		pod := e.pod(ctx, "a", n1, map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["kubectl-pools-v4"]}`})
		cl := e.claimOf(ctx, "kubectl-pools-v4", pod)

		kubectlSpindle(ctx, "pools")
		r := kubectlSpindle(ctx, "pools", "-o", "json")
		Expect(r.code).To(Equal(0), r.String())
		var rows []map[string]any
		Expect(json.Unmarshal([]byte(r.stdout), &rows)).To(Succeed())
		byName := map[string]map[string]any{}
		for _, row := range rows {
			byName[row["name"].(string)] = row
		}
		Expect(byName).To(HaveKey("kubectl-pools-v4"))
		v4 := byName["kubectl-pools-v4"]
		Expect(v4).To(And(HaveKeyWithValue("family", "IPv4"), HaveKeyWithValue("total", 5.0), HaveKeyWithValue("allocated", 1.0),
			HaveKeyWithValue("free", 4.0), HaveKeyWithValue("usedPercent", 20.0), HaveKeyWithValue("subnet", e.lab.UnderlayV4.Masked().String())))
		Expect(byName["kubectl-pools-n2"]).To(And(HaveKeyWithValue("allocated", 0.0), HaveKeyWithValue("affinity", "nodes="+n2)))

		names := func(args ...string) []string {
			r := kubectlSpindle(ctx, append(args, "-o", "json")...)
			Expect(r.code).To(Equal(0), r.String())
			var rows []map[string]any
			Expect(json.Unmarshal([]byte(r.stdout), &rows)).To(Succeed())
			var out []string
			for _, row := range rows {
				out = append(out, row["name"].(string))
			}
			return out
		}
		if n1 != n2 {
			Expect(names("pools", "--node", n1)).To(And(ContainElement("kubectl-pools-v4"), Not(ContainElement("kubectl-pools-n2"))))
		}
		Expect(names("pools", "--node", n2)).To(ContainElements("kubectl-pools-v4", "kubectl-pools-n2"))
		Expect(kubectlSpindle(ctx, "pools", "-o", "table").code).To(Equal(2))

		kubectlSpindle(ctx, "ips", "-n", e.ns)
		r = kubectlSpindle(ctx, "ips", "--pod", e.ns+"/a", "-o", "json")
		Expect(r.code).To(Equal(0), r.String())
		var ips []map[string]any
		Expect(json.Unmarshal([]byte(r.stdout), &ips)).To(Succeed())
		net1, err := framework.InterfaceStatus(pod, "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(ips).To(ConsistOf(And(HaveKeyWithValue("address", cl.Spec.Address), HaveKeyWithValue("pool", "kubectl-pools-v4"),
			HaveKeyWithValue("interface", "net1"), HaveKeyWithValue("node", n1), HaveKeyWithValue("state", "Running"),
			HaveKeyWithValue("podUID", string(pod.UID)), HaveKeyWithValue("mac", strings.ToLower(net1.Mac)))))
		Expect(framework.InIPList(net1.IPs, netip.MustParseAddr(cl.Spec.Address))).To(BeTrue())
		r = kubectlSpindle(ctx, "ips", "--pool", "kubectl-pools-v4")
		Expect(r.stdout).To(ContainSubstring(cl.Spec.Address))
		Expect(kubectlSpindle(ctx, "ips", "--pool", "kubectl-pools-n2").stdout).NotTo(ContainSubstring(e.ns))
	})

	It("why explains a pod refused by affinity, one refused because its pool is full, and a manifest not yet applied", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-kubectl-why")
		e.spindleConfig(ctx)
		n1, n2 := e.lab.Nodes[0], e.lab.Nodes[len(e.lab.Nodes)-1]
		if n1 == n2 {
			missing("needs two lab nodes (NODES=2)")
		}
		e.pool(ctx, "kubectl-why-n2", 4, kubectlBlockBase+2, 3, func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = []string{n2} })
		e.pool(ctx, "kubectl-why-one", 4, kubectlBlockBase+3, 1)
		e.nad(ctx, "underlay", nil)
		settings := []string{"--spindle-namespace", e.ns}

		// Refused by node affinity.
		p := f.NewPod(e.ns, "aff", framework.PodOptions{Node: n1, Annotations: map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["kubectl-why-n2"]}`}})
		_, err := f.CreatePod(ctx, p)
		Expect(err).NotTo(HaveOccurred())
		Expect(e.sandboxErrors(ctx, "aff")).To(ContainSubstring("kubectl-why-n2"))
		r := kubectlSpindle(ctx, append([]string{"why", e.ns + "/aff"}, settings...)...)
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stdout).To(MatchRegexp(`kubectl-why-n2\s+refused\s+3/3\s+nodeName \[%s\] does not include node "%s"`, n2, n1))
		Expect(r.stdout).To(ContainSubstring(fmt.Sprintf("enable-ipv6=true  (ConfigMap %s/spindle-config key SPINDLE_AGENT_ENABLE_IPV6)", e.ns)))
		Expect(r.stdout).To(ContainSubstring("net1 (network " + e.ns + "/underlay)"))

		// Refused because the only pool is exhausted by another pod.
		e.pod(ctx, "first", n1, map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["kubectl-why-one"]}`})
		p = f.NewPod(e.ns, "second", framework.PodOptions{Node: n1, Annotations: map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["kubectl-why-one"]}`}})
		_, err = f.CreatePod(ctx, p)
		Expect(err).NotTo(HaveOccurred())
		e.sandboxErrors(ctx, "second")
		r = kubectlSpindle(ctx, append([]string{"why", e.ns + "/second"}, settings...)...)
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stdout).To(MatchRegexp(`kubectl-why-one\s+full\s+0/1`))
		Expect(r.stdout).To(ContainSubstring("every usable candidate pool is full"))
		r = kubectlSpindle(ctx, append([]string{"why", e.ns + "/first", "-o", "json"}, settings...)...)
		Expect(r.code).To(Equal(0), r.String())
		Expect(r.stdout).To(ContainSubstring(`"verdict": "holds"`))

		// Dry run of a manifest that is not applied: served on n2, refused on n1.
		manifest := filepath.Join(GinkgoT().TempDir(), "pod.yaml")
		Expect(os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: planned
  namespace: %s
  annotations:
    k8s.v1.cni.cncf.io/networks: underlay
    ipam.spidernet.io/ippool: '{"ipv4":["kubectl-why-n2"]}'
spec:
  containers: [{name: c, image: busybox}]
`, e.ns)), 0o600)).To(Succeed())
		r = kubectlSpindle(ctx, append([]string{"why", "-f", manifest, "--node", n2}, settings...)...)
		Expect(r.code).To(Equal(0), r.String())
		Expect(r.stdout).To(ContainSubstring("Pod (dry run) " + e.ns + "/planned"))
		Expect(r.stdout).To(MatchRegexp(`kubectl-why-n2\s+use`))
		r = kubectlSpindle(ctx, append([]string{"why", "-f", manifest, "--node", n1}, settings...)...)
		Expect(r.code).To(Equal(1), r.String())
		Expect(kubectlSpindle(ctx, append([]string{"why", "-f", manifest}, settings...)...).code).To(Equal(2), "an unscheduled pod needs --node")
		_, err = f.Client.CoreV1().Pods(e.ns).Get(ctx, "planned", metav1.GetOptions{})
		Expect(err).To(HaveOccurred(), "a dry run must not create the pod")
	})

	It("check finds a leaked address, a lost one and counter drift; release refuses a live pod's address and frees the leaked one with an Event", Label(labOnly), func(ctx SpecContext) {
		daemons := requireLab("stops every Spindle daemon (bin/lab daemons stop) while a leak and a counter drift are planted")
		e := newIPAMEnv(ctx, "e2e-kubectl-check")
		n1 := e.lab.Nodes[0]
		const poolName = "kubectl-check"
		e.pool(ctx, poolName, 4, kubectlBlockBase+4, 10)
		e.nad(ctx, "underlay", nil)
		ann := map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["` + poolName + `"]}`}
		ok := e.pod(ctx, "ok", n1, ann)
		victim := e.pod(ctx, "victim", n1, ann)
		okClaim, victimClaim := e.claimOf(ctx, poolName, ok), e.claimOf(ctx, poolName, victim)
		_, err := framework.WaitPoolAllocated(ctx, e.c, poolName, 2, 30*time.Second)
		Expect(err).NotTo(HaveOccurred())

		ours := func(rep map[string]any) []map[string]any {
			var out []map[string]any
			for _, x := range rep["findings"].([]any) {
				fd := x.(map[string]any)
				if fd["pool"] == poolName || strings.HasPrefix(fmt.Sprint(fd["pod"]), e.ns+"/") {
					out = append(out, fd)
				}
			}
			return out
		}
		report := func(args ...string) (map[string]any, binResult) {
			r := kubectlSpindle(ctx, append([]string{"check", "--grace", "0s", "-o", "json"}, args...)...)
			var rep map[string]any
			Expect(json.Unmarshal([]byte(r.stdout), &rep)).To(Succeed(), r.String())
			return rep, r
		}
		rep, _ := report()
		Expect(ours(rep)).To(BeEmpty(), "findings before anything was planted")

		// Lost: the victim keeps its address, its claim goes. Nothing
		// recreates a claim of a running pod; the address is free for the
		// allocator, and no other pod of this spec asks for one.
		Expect(e.c.Delete(ctx, &victimClaim)).To(Succeed())

		// The controller's garbage collection would collect a planted leak
		// at once, and its status reconciler would correct a drifted
		// counter: stop the daemons while they are planted.
		start := time.Now()
		_, err = daemons.Run(ctx, "daemons", "stop")
		Expect(err).NotTo(HaveOccurred())
		restarted := false
		DeferCleanup(func(ctx SpecContext) {
			if restarted {
				return
			}
			_, err := daemons.Run(ctx, "daemons", "restart")
			Expect(err).NotTo(HaveOccurred())
		}, NodeTimeout(3*time.Minute))
		GinkgoWriter.Printf("daemons stopped in %s\n", time.Since(start).Round(time.Millisecond))
		// The leak takes an address of the pool that neither pod was given
		// (the allocator may have handed out any of the ten).
		first, end, err := e.lab.UnderlayRangeV4(kubectlBlockBase+4, 100, 10)
		Expect(err).NotTo(HaveOccurred())
		var last netip.Addr
		for a := end; a.Compare(first) >= 0; a = a.Prev() {
			if a.String() != okClaim.Spec.Address && a.String() != victimClaim.Spec.Address {
				last = a
				break
			}
		}
		Expect(last.IsValid()).To(BeTrue())
		ghostUID := string(uuid.NewUUID())
		leak := v2beta1.NewClaim(last, v2beta1.IPClaimSpec{Pool: poolName, PodNamespace: e.ns, PodName: "ghost", PodUID: ghostUID, Interface: "net1", Node: n1})
		Expect(e.c.Create(ctx, leak)).To(Succeed())
		sp := &v2beta1.SpiderIPPool{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: poolName}, sp)).To(Succeed())
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"allocatedIPCount":42}}`))
		Expect(e.c.Status().Patch(ctx, sp, patch)).To(Succeed())

		out := filepath.Join(GinkgoT().TempDir(), "report.json")
		r := kubectlSpindle(ctx, "check", "--grace", "0s", "-o", out)
		Expect(r.code).To(Equal(1), r.String())
		data, err := os.ReadFile(out)
		Expect(err).NotTo(HaveOccurred())
		Expect(json.Unmarshal(data, &rep)).To(Succeed())
		found := ours(rep)
		Expect(found).To(ContainElements(
			And(HaveKeyWithValue("kind", "leaked"), HaveKeyWithValue("address", last.String()), HaveKeyWithValue("pod", e.ns+"/ghost"),
				HaveKeyWithValue("claimUID", string(leak.UID))),
			And(HaveKeyWithValue("kind", "lost"), HaveKeyWithValue("address", victimClaim.Spec.Address), HaveKeyWithValue("pod", e.ns+"/victim"),
				HaveKeyWithValue("interface", "net1")),
			And(HaveKeyWithValue("kind", "counter-drift"), HaveKeyWithValue("pool", poolName),
				HaveKeyWithValue("detail", "status.allocatedIPCount is 42, the pool has 2 claims")),
		))
		for _, fd := range found {
			Expect(fd["kind"]).NotTo(Equal("duplicate"), "no address of this spec is in two pods: %v", fd)
		}
		// The grace protects young claims from being called leaked.
		rep2, _ := report("--grace", "1h")
		for _, fd := range ours(rep2) {
			Expect(fd["kind"]).NotTo(Equal("leaked"))
		}
		kubectlSpindle(ctx, "check", "--grace", "0s")

		// release refuses the address of a live pod, and leaves its claim.
		r = kubectlSpindle(ctx, "release", "--ip", okClaim.Spec.Address)
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stderr).To(ContainSubstring(fmt.Sprintf("pod %s/ok (UID %s) is alive", e.ns, ok.UID)))
		Expect(e.c.Get(ctx, client.ObjectKey{Name: okClaim.Name}, &v2beta1.SpiderIPClaim{})).To(Succeed())

		// release --from-report frees the leaked address (a report limited
		// to this spec's finding: the lab is shared).
		var leakedOnly []map[string]any
		for _, fd := range found {
			if fd["kind"] == "leaked" {
				leakedOnly = append(leakedOnly, fd)
			}
		}
		mine, err := json.Marshal(map[string]any{"findings": leakedOnly})
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(out, mine, 0o600)).To(Succeed())
		r = kubectlSpindle(ctx, "release", "--from-report", out)
		Expect(r.code).To(Equal(0), r.String())
		Expect(r.stdout).To(ContainSubstring("released " + last.String()))
		Expect(e.c.Get(ctx, client.ObjectKey{Name: leak.Name}, &v2beta1.SpiderIPClaim{})).NotTo(Succeed())
		evs, err := f.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + poolName + ",reason=AddressReleasedByOperator"})
		Expect(err).NotTo(HaveOccurred())
		Expect(evs.Items).To(ContainElement(And(HaveField("InvolvedObject.Kind", "SpiderIPPool"), HaveField("InvolvedObject.UID", sp.UID),
			HaveField("Message", ContainSubstring(last.String())), HaveField("Type", corev1.EventTypeNormal))))
		GinkgoWriter.Printf("event: %s\n", evs.Items[len(evs.Items)-1].Message)
		// Released again: nothing left to release.
		Expect(kubectlSpindle(ctx, "release", "--ip", last.String()).code).To(Equal(1))

		// With the daemons back, the controller corrects the counter.
		start = time.Now()
		_, err = daemons.Run(ctx, "daemons", "restart")
		Expect(err).NotTo(HaveOccurred())
		restarted = true
		GinkgoWriter.Printf("daemons restarted in %s\n", time.Since(start).Round(time.Millisecond))
		Eventually(func(g Gomega) {
			rep, _ := report()
			for _, fd := range ours(rep) {
				g.Expect(fd["kind"]).NotTo(Equal("counter-drift"))
			}
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(2 * time.Second).Should(Succeed())
	}, NodeTimeout(8*time.Minute))
})
