package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// The selftest specs use the underlay blocks 220-222, which no other
// spec uses. They run the spindle-selftest binary `make build` wrote to
// bin/ from outside the cluster, as an operator would (the chart's
// `helm test` runs the same binary in a pod).
const selftestBlockBase = 220

// spindleSelftest runs the binary against the cluster under test.
func spindleSelftest(ctx context.Context, args ...string) binResult {
	GinkgoHelper()
	return runBin(ctx, "spindle-selftest", "spindle-selftest", append([]string{"--kubeconfig", f.Kubeconfig}, args...)...)
}

// agentStandIn creates a DaemonSet in the spec's namespace that runs a
// host-network pod on every lab node, standing in for the chart's agent
// DaemonSet (the lab runs the agents as node processes): the agents check
// reads its status as kube-controller-manager keeps it.
func (e *ipamEnv) agentStandIn(ctx context.Context, name string) {
	GinkgoHelper()
	labels := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork:                   true,
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers:                    []corev1.Container{{Name: "agent", Image: f.PodImage}},
				},
			},
		},
	}
	_, err := f.Client.AppsV1().DaemonSets(e.ns).Create(ctx, ds, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
}

// selftestImage is the image of the address check's pod, which runs
// spindle-selftest inside: E2E_SELFTEST_IMAGE (Spindle's image on the kind
// cluster, as the chart's helm test uses), else the test pods' image (the
// lab runs no container).
func selftestImage() string {
	if img := os.Getenv("E2E_SELFTEST_IMAGE"); img != "" {
		return img
	}
	return f.PodImage
}

var _ = Describe("spindle-selftest", Serial, func() {
	BeforeEach(func() {
		requireCluster()
	})

	It("passes the agents, webhook and address checks and leaves nothing behind", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-selftest")
		e.nad(ctx, "underlay", nil)
		e.agentStandIn(ctx, "agents")
		start, end, err := e.lab.UnderlayRangeV4(selftestBlockBase, 100, 2)
		Expect(err).NotTo(HaveOccurred())
		const pool = "selftest-created"
		// The binary deletes the pool it creates; this only cleans up
		// after a failed run.
		e.pools = append(e.pools, pool)

		r := spindleSelftest(ctx, "--namespace", e.ns, "--agent-daemonset", e.ns+"/agents",
			"--pool", pool, "--pool-subnet", e.lab.UnderlayV4.Masked().String(), "--pool-ips", start.String()+"-"+end.String(),
			"--pool-gateway", e.lab.GatewayV4.String(), "--network", e.ns+"/underlay", "--image", selftestImage(), "--timeout", "90s")
		Expect(r.code).To(Equal(0), r.String())
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		Expect(lines).To(HaveLen(3), r.String())
		Expect(lines[0]).To(HavePrefix(fmt.Sprintf("PASS agents: DaemonSet %s/agents is ready on all %d nodes", e.ns, len(e.lab.Nodes))))
		Expect(lines[1]).To(And(HavePrefix("PASS webhook: "), ContainSubstring(`admission webhook "spiderippool.validate.spindle.spidernet.io" denied the request: spec.ips[0]`)))
		Expect(lines[2]).To(MatchRegexp(`^PASS address: pod %s/spindle-selftest-\S+ got (%s|%s) from SpiderIPPool "%s" on net1 \(node \S+\) and gave it back`,
			e.ns, regexp.QuoteMeta(start.String()), regexp.QuoteMeta(end.String()), pool))

		// The test pool and pod are gone: the binary waited for them.
		Expect(apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: pool}, &v2beta1.SpiderIPPool{}))).To(BeTrue(), "SpiderIPPool %s is still there", pool)
		pods, err := f.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=spindle-selftest"})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(BeEmpty())
	})

	It("fails with a message naming the pool when it does not exist or is full, and the DaemonSet when it is missing", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-selftest-fail")
		e.nad(ctx, "underlay", nil)

		r := spindleSelftest(ctx, "--checks", "address", "--namespace", e.ns, "--pool", "selftest-missing", "--image", selftestImage(), "--timeout", "30s")
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stdout).To(HavePrefix(`FAIL address: SpiderIPPool "selftest-missing" does not exist: create it, or give --pool-subnet and --pool-ips`))

		// A pool of one address, held by a pod.
		e.pool(ctx, "selftest-full", 4, selftestBlockBase+1, 1)
		e.pod(ctx, "holder", "", map[string]string{annotNetworks: "underlay", annotIPPool: `{"ipv4":["selftest-full"]}`})
		Eventually(func(g Gomega) {
			var p v2beta1.SpiderIPPool
			g.Expect(e.c.Get(ctx, client.ObjectKey{Name: "selftest-full"}, &p)).To(Succeed())
			g.Expect(p.Status.AllocatedIPCount).To(HaveValue(BeEquivalentTo(1)))
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
		r = spindleSelftest(ctx, "--checks", "address", "--namespace", e.ns, "--pool", "selftest-full", "--network", e.ns+"/underlay", "--image", selftestImage(), "--timeout", "30s")
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stdout).To(HavePrefix(`FAIL address: SpiderIPPool "selftest-full" is full: 1 of 1 addresses allocated`))

		r = spindleSelftest(ctx, "--checks", "agents", "--agent-daemonset", e.ns+"/no-such-agent", "--timeout", "30s")
		Expect(r.code).To(Equal(1), r.String())
		Expect(r.stdout).To(HavePrefix(fmt.Sprintf("FAIL agents: DaemonSet %s/no-such-agent does not exist", e.ns)))
	})
})
