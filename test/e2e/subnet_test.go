package e2e

import (
	"fmt"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/subnets"
)

var _ = Describe("SpiderSubnet", func() {
	// The subnets use prefixes of their own, outside the lab's underlay:
	// SpiderSubnets must not overlap, and one on the underlay would adopt
	// every other spec's pools.
	It("owns the pools of its prefix whichever comes first: owner reference, label, inherited gateway and routes seen in the pod; pools stay inside its addresses; its status counts them; deleting it removes its pools", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-subnet")
		suffix := e.ns[len(e.ns)-5:]
		mkSubnet := func(name, cidr, ips, gw string) *v2beta1.SpiderSubnet {
			GinkgoHelper()
			s := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + suffix}, Spec: v2beta1.SubnetSpec{
				Subnet: cidr, IPs: []string{ips}, Gateway: ptr.To(gw),
				Routes: []v2beta1.Route{{Dst: "10.99.0.0/16", Gw: gw}}}}
			Expect(e.c.Create(ctx, s)).To(Succeed())
			DeferCleanup(func(ctx SpecContext) {
				_ = e.c.Delete(ctx, s)
			})
			return s
		}
		mkPool := func(name, cidr, ips string) *v2beta1.SpiderIPPool {
			GinkgoHelper()
			return e.createPool(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + suffix},
				Spec: v2beta1.IPPoolSpec{Subnet: cidr, IPs: []string{ips}}})
		}
		adopted := func(pool string, s *v2beta1.SpiderSubnet) *v2beta1.SpiderIPPool {
			GinkgoHelper()
			p := &v2beta1.SpiderIPPool{}
			Eventually(func(g Gomega) {
				g.Expect(e.c.Get(ctx, client.ObjectKey{Name: pool}, p)).To(Succeed())
				ref := metav1.GetControllerOf(p)
				g.Expect(ref).NotTo(BeNil(), "pool %s has no controller", pool)
				g.Expect(ref.Kind).To(Equal("SpiderSubnet"))
				g.Expect(ref.UID).To(Equal(s.UID))
				g.Expect(p.Labels).To(HaveKeyWithValue(subnets.LabelSubnetCIDR, subnets.CIDRLabel(netip.MustParsePrefix(s.Spec.Subnet))))
				g.Expect(p.Spec.Gateway).To(Equal(s.Spec.Gateway))
				g.Expect(p.Spec.Routes).To(Equal(s.Spec.Routes))
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			return p
		}

		By("subnet first: a pool created into it is its child at once")
		team := mkSubnet("team", "10.250.0.0/16", "10.250.1.1-10.250.1.100", "10.250.0.1")
		a := mkPool("app-a", "10.250.0.0/16", "10.250.1.10-10.250.1.14")
		adopted(a.Name, team)

		By("pool first: a subnet created later adopts it")
		b := mkPool("app-b", "10.251.0.0/16", "10.251.1.10-10.251.1.12")
		other := mkSubnet("other", "10.251.0.0/16", "10.251.1.1-10.251.1.50", "10.251.0.1")
		adopted(b.Name, other)

		By("a pool with addresses the subnet does not give is refused")
		err := e.c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "outside-" + suffix},
			Spec: v2beta1.IPPoolSpec{Subnet: "10.250.0.0/16", IPs: []string{"10.250.2.1-10.250.2.3"}}})
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`spec.ips: 10.250.2.1-10.250.2.3 are not given to pools by SpiderSubnet %q`, team.Name))))
		GinkgoWriter.Printf("refused pool: %v\n", err)

		By("excluding an address a pool uses is refused")
		Expect(e.c.Get(ctx, client.ObjectKeyFromObject(team), team)).To(Succeed())
		team.Spec.ExcludeIPs = []string{"10.250.1.12"}
		err = e.c.Update(ctx, team)
		Expect(err).To(MatchError(ContainSubstring(fmt.Sprintf(`spec.excludeIPs: 10.250.1.12 are used by SpiderIPPool %q`, a.Name))))
		GinkgoWriter.Printf("refused exclusion: %v\n", err)

		By("its status counts what its pools take")
		Eventually(func(g Gomega) {
			g.Expect(e.c.Get(ctx, client.ObjectKeyFromObject(team), team)).To(Succeed())
			g.Expect(team.Status.TotalIPCount).To(HaveValue(BeEquivalentTo(100)), "spec.ips (the gateway is outside them)")
			g.Expect(team.Status.AllocatedIPCount).To(HaveValue(BeEquivalentTo(5)))
			g.Expect(team.Status.ControlledIPPools).To(HaveValue(ContainSubstring(a.Name)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		e.show(ctx, "get", "ss", "-o", "wide", team.Name, other.Name)
		e.show(ctx, "get", "sp", "-o", "wide", "-l", subnets.LabelSubnetCIDR+"=10-250-0-0-16")

		By("a pod of the pool gets the subnet's gateway and routes")
		e.nad(ctx, "underlay", map[string]any{"default_ipv4_ippool": []string{a.Name}})
		pod := e.pod(ctx, "p", "", map[string]string{annotNetworks: "underlay"})
		v4, _ := e.expectNIC(ctx, pod, "net1", a.Name, "")
		routes, _, err := requireExec().ExecInPod(ctx, pod, "ip", "-4", "route", "show", "dev", "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(routes).To(ContainSubstring("10.99.0.0/16 via 10.250.0.1"), "routes of net1:\n%s", routes)
		GinkgoWriter.Printf("pod p: net1 %s\n%s\n", v4, routes)

		By("deleting the subnet removes its pools once nothing uses them")
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue())
		Expect(e.c.Delete(ctx, team)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: a.Name}, &v2beta1.SpiderIPPool{}))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue(), "pool %s of the deleted subnet is still there", a.Name)
	})
})
