package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spindle-net/spindle/test/e2e/framework"
)

// agentMetricsURL is where the lab's agents serve their metrics inside each
// node's network namespace (E2E_AGENT_METRICS overrides it).
func agentMetricsURL() string {
	if u := os.Getenv("E2E_AGENT_METRICS"); u != "" {
		return u
	}
	return "https://127.0.0.1:5711/metrics"
}

var _ = Describe("metrics", func() {
	It("are served only to identities allowed to get /metrics, with the build and the pools' IP version and subnet", func(ctx SpecContext) {
		lab := requireCluster()
		c := crClient()
		requireController(ctx, c)
		p := underlayPools(ctx, c, lab, "e2e-metrics-"+framework.RandSuffix(5), blockMetrics, 4)

		By("the controller refuses a scrape without a token (401) and one whose ServiceAccount may not get /metrics (403)")
		status, body, err := framework.FetchMetrics(ctx, controllerMetricsURL(ctx), "")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusUnauthorized), "anonymous scrape answered: %.200s", body)
		Expect(body).NotTo(ContainSubstring("spindle_"))
		nobody, err := framework.MetricsReaderToken(ctx, f.Client, "default", "spindle-e2e-metrics-nobody", false)
		Expect(err).NotTo(HaveOccurred())
		status, body, err = framework.FetchMetrics(ctx, controllerMetricsURL(ctx), nobody)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusForbidden), "unauthorised scrape answered: %.200s", body)

		By("a ServiceAccount bound to get /metrics reads the build information and the pool gauges with their labels")
		Eventually(func(g Gomega) {
			m, err := framework.ScrapeMetrics(ctx, controllerMetricsURL(ctx), readerToken(ctx))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(buildInfo(m)).To(HaveKeyWithValue("version", Not(BeEmpty())))
			g.Expect(buildInfo(m)).To(HaveKeyWithValue("go_version", HavePrefix("go")))
			g.Expect(buildInfo(m)).To(HaveKey("revision"))
			for _, pool := range []struct{ name, version, subnet string }{
				{p.V4.Name, "4", p.V4.Spec.Subnet}, {p.V6.Name, "6", p.V6.Spec.Subnet},
			} {
				for _, gauge := range []string{"spindle_controller_ippool_allocated_ips", "spindle_controller_ippool_total_ips"} {
					_, ok := m.Get(gauge, "pool", pool.name, "ip_version", pool.version, "subnet", pool.subnet)
					g.Expect(ok).To(BeTrue(), "no %s{pool=%q,ip_version=%q,subnet=%q}", gauge, pool.name, pool.version, pool.subnet)
				}
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("every agent refuses an anonymous scrape and answers the reader's token")
		for _, node := range lab.Nodes {
			code, _, err := lab.ExecInNodeNetwork(ctx, node, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", agentMetricsURL())
			Expect(err).NotTo(HaveOccurred())
			Expect(code).To(Equal("401"), "agent on %s answered an anonymous scrape", node)
			out, _, err := lab.ExecInNodeNetwork(ctx, node, "curl", "-sk", "--fail", "-H", "Authorization: Bearer "+readerToken(ctx), agentMetricsURL())
			Expect(err).NotTo(HaveOccurred(), "agent on %s refused the reader's token", node)
			m, err := framework.ParseMetrics(out)
			Expect(err).NotTo(HaveOccurred())
			Expect(buildInfo(m)).To(HaveKeyWithValue("version", Not(BeEmpty())), "agent on %s", node)
			Expect(strings.Contains(out, "spindle_ipam_add_duration_seconds_bucket")).To(BeTrue(), fmt.Sprintf("agent on %s exports no ADD latency histogram", node))
		}
	})
})

// buildInfo returns the labels of the spindle_build_info sample (nil when
// there is none or its value is not 1).
func buildInfo(m framework.Metrics) map[string]string {
	for _, s := range m {
		if s.Name == "spindle_build_info" && s.Value == 1 {
			return s.Labels
		}
	}
	return nil
}
