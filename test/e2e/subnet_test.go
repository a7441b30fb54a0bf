package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
	"github.com/spindle-net/spindle/test/e2e/framework"
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

var _ = Describe("Pools carved from a SpiderSubnet for each application", func() {
	It("a Deployment and a StatefulSet asking ipam.spidernet.io/subnets get a pool each, sized to their replicas, that grows and shrinks with them and goes with the Deployment; the kept pool of a StatefulSet with ippool-reclaim false serves it again; a bare pod with the annotation is told why it waits", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-autopool")
		suffix := e.ns[len(e.ns)-5:]
		team := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "team-" + suffix}, Spec: v2beta1.SubnetSpec{
			Subnet: "10.252.0.0/16", IPs: []string{"10.252.1.1-10.252.1.30"}, Gateway: ptr.To("10.252.0.1")}}
		Expect(e.c.Create(ctx, team)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = e.c.Delete(ctx, team) })
		e.nad(ctx, "underlay", nil)
		tmpl := func(app string, extra map[string]string) corev1.PodTemplateSpec {
			ann := map[string]string{annotNetworks: "underlay",
				"ipam.spidernet.io/subnets": fmt.Sprintf(`[{"interface":"net1","ipv4":[%q]}]`, team.Name)}
			for k, v := range extra {
				ann[k] = v
			}
			p := f.NewPod(e.ns, "", framework.PodOptions{Annotations: ann})
			return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: p.Annotations}, Spec: p.Spec}
		}
		web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: tmpl("web", map[string]string{"ipam.spidernet.io/ippool-ip-number": "+1"})}}
		db := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"}, Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: tmpl("db", map[string]string{"ipam.spidernet.io/ippool-ip-number": "2", "ipam.spidernet.io/ippool-reclaim": "false"})}}
		Expect(e.c.Create(ctx, web)).To(Succeed())
		Expect(e.c.Create(ctx, db)).To(Succeed())
		webPool := subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: e.ns, Name: "web"}, "net1", 4)
		dbPool := subnets.AutoPoolName(subnets.App{Kind: "StatefulSet", Namespace: e.ns, Name: "db"}, "net1", 4)
		e.pools = append(e.pools, webPool, dbPool) // deleted (and checked for leftover claims) with the spec
		size := func(pool string) int {
			p := &v2beta1.SpiderIPPool{}
			if err := e.c.Get(ctx, client.ObjectKey{Name: pool}, p); err != nil {
				return -1
			}
			s, _ := subnets.PoolUsable(p)
			return int(s.Count())
		}
		podsOn := func(app, pool string, n int) {
			GinkgoHelper()
			for _, p := range e.workloadPods(ctx, "app="+app, n) {
				e.expectNIC(ctx, &p, "net1", pool, "")
			}
		}

		Eventually(func() []int { return []int{size(webPool), size(dbPool)} }).WithContext(ctx).WithTimeout(time.Minute).
			Should(Equal([]int{3, 2}), "web: 2 replicas + 1 spare; db: 2 fixed")
		podsOn("web", webPool, 2)
		podsOn("db", dbPool, 1)
		wp, dp := &v2beta1.SpiderIPPool{}, &v2beta1.SpiderIPPool{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: webPool}, wp)).To(Succeed())
		Expect(e.c.Get(ctx, client.ObjectKey{Name: dbPool}, dp)).To(Succeed())
		a, _ := subnets.PoolUsable(wp)
		b, _ := subnets.PoolUsable(dp)
		Expect(a.Subtract(a.Subtract(b)).Empty()).To(BeTrue(), "the applications' pools share addresses: %v %v", a.Strings(), b.Strings())
		Expect(metav1.GetControllerOf(wp)).To(HaveField("Name", team.Name))
		e.show(ctx, "get", "ss", "-o", "wide", team.Name)
		e.show(ctx, "get", "sp", "-o", "wide", webPool, dbPool)

		By("scaled to 4, the Deployment's pool grows to 5; scaled to 1, it shrinks to 2")
		scale := func(n int32) {
			GinkgoHelper()
			e.update(ctx, web, func() { web.Spec.Replicas = ptr.To(n) })
		}
		scale(4)
		Eventually(func() int { return size(webPool) }).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(5))
		podsOn("web", webPool, 4)
		scale(1)
		e.workloadPods(ctx, "app=web", 1)
		Eventually(func() int { return size(webPool) }).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(2))
		podsOn("web", webPool, 1)

		By("a bare pod with the annotation never starts, and its event says why")
		bare := f.NewPod(e.ns, "bare", framework.PodOptions{Annotations: tmpl("bare", nil).Annotations})
		_, err := f.CreatePod(ctx, bare)
		Expect(err).NotTo(HaveOccurred())
		Expect(e.sandboxErrors(ctx, "bare")).To(ContainSubstring(`annotation "ipam.spidernet.io/subnets" gives pools to the pods of an application, and this pod has no controller`))
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, "bare", metav1.DeleteOptions{})).To(Succeed())

		By("the Deployment deleted, its pool goes; the StatefulSet deleted, its pool stays and serves it again")
		Expect(e.c.Delete(ctx, web)).To(Succeed())
		Expect(e.c.Delete(ctx, db)).To(Succeed())
		Eventually(func() int { return size(webPool) }).WithContext(ctx).WithTimeout(2*time.Minute).Should(Equal(-1), "pool of the deleted Deployment")
		Consistently(func() int { return size(dbPool) }).WithContext(ctx).WithTimeout(3 * time.Second).Should(Equal(2))
		Eventually(func() int { return len(e.claims(ctx, Default, dbPool)) }).WithContext(ctx).WithTimeout(time.Minute).Should(BeZero())
		db = &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"}, Spec: db.Spec}
		Expect(e.c.Create(ctx, db)).To(Succeed())
		podsOn("db", dbPool, 1)
		// The kept pool serves the new StatefulSet's pods by its name, before
		// the controller, busy with other applications, has written the new
		// UID into the pool's labels.
		Eventually(func() map[string]string {
			if err := e.c.Get(ctx, client.ObjectKey{Name: dbPool}, dp); err != nil {
				return nil
			}
			return dp.Labels
		}).WithContext(ctx).WithTimeout(time.Minute).Should(HaveKeyWithValue(subnets.LabelAppUID, string(db.UID)), "pool %s relabelled for the new StatefulSet", dbPool)
		e.show(ctx, "get", "ss", "-o", "wide", team.Name)
		Expect(e.c.Delete(ctx, db)).To(Succeed())
	})
})

var _ = Describe("Pools carved from a SpiderSubnet under load", func() {
	It("30 Deployments created at once, each asking a fixed 5 addresses of one 150-address subnet, get 30 disjoint pools covering it exactly; their pods run on them, also after all are scaled at once", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-carve30")
		suffix := e.ns[len(e.ns)-5:]
		team := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "carve-" + suffix}, Spec: v2beta1.SubnetSpec{
			Subnet: "10.253.0.0/16", IPs: []string{"10.253.1.1-10.253.1.150"}}}
		Expect(e.c.Create(ctx, team)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = e.c.Delete(ctx, team) })
		e.nad(ctx, "underlay", nil)
		const apps = 30
		deps := make([]*appsv1.Deployment, apps)
		for i := range deps {
			name := fmt.Sprintf("app%02d", i)
			p := f.NewPod(e.ns, "", framework.PodOptions{Annotations: map[string]string{annotNetworks: "underlay",
				"ipam.spidernet.io/subnets":          fmt.Sprintf(`[{"interface":"net1","ipv4":[%q]}]`, team.Name),
				"ipam.spidernet.io/ippool-ip-number": "5"}})
			deps[i] = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"carve": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"carve": name, "suite": "carve"}, Annotations: p.Annotations}, Spec: p.Spec}}}
			e.pools = append(e.pools, subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: e.ns, Name: name}, "net1", 4))
		}
		created := make(chan error, apps)
		for _, d := range deps {
			go func() { created <- e.c.Create(ctx, d) }()
		}
		for range deps {
			Expect(<-created).To(Succeed())
		}
		check := func(replicas int) {
			GinkgoHelper()
			var union ranges.Set
			total := 0
			for i, d := range deps {
				pool := e.pools[i]
				p := &v2beta1.SpiderIPPool{}
				Eventually(func() error { return e.c.Get(ctx, client.ObjectKey{Name: pool}, p) }).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
				u, _ := subnets.PoolUsable(p)
				Expect(u.Count()).To(BeEquivalentTo(5), "pool of %s", d.Name)
				Expect(u.Subtract(union).Count()).To(Equal(u.Count()), "pool of %s shares addresses with another: %v", d.Name, u.Strings())
				union = union.Union(u)
				total += int(u.Count())
			}
			Expect(total).To(Equal(150))
			pods := e.workloadPods(ctx, "suite=carve", apps*replicas)
			for i := range pods {
				pool := subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: e.ns, Name: pods[i].Labels["carve"]}, "net1", 4)
				e.expectNIC(ctx, &pods[i], "net1", pool, "")
			}
		}
		check(1)
		Eventually(func(g Gomega) {
			g.Expect(e.c.Get(ctx, client.ObjectKeyFromObject(team), team)).To(Succeed())
			g.Expect(team.Status.AllocatedIPCount).To(HaveValue(BeEquivalentTo(150)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("all scaled to 2 at once: the pools keep their 5 addresses each")
		scaled := make(chan error, apps)
		for _, d := range deps {
			go func() {
				scaled <- retry.RetryOnConflict(retry.DefaultRetry, func() error {
					cur := &appsv1.Deployment{}
					if err := e.c.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
						return err
					}
					cur.Spec.Replicas = ptr.To[int32](2)
					return e.c.Update(ctx, cur)
				})
			}()
		}
		for range deps {
			Expect(<-scaled).To(Succeed())
		}
		check(2)
	})
})

var _ = Describe("Pools carved from a SpiderSubnet for every kind", func() {
	It("a StatefulSet, a DaemonSet, a ReplicaSet and ten Deployments with \"+0\" get pools of their replicas, all gone when they are deleted; a Deployment with two interfaces gets one pool per interface; its two spare addresses (\"+2\") are refused to another application's pod", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-kinds")
		suffix := e.ns[len(e.ns)-5:]
		mk := func(name, cidr, ips string) *v2beta1.SpiderSubnet {
			GinkgoHelper()
			s := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + suffix}, Spec: v2beta1.SubnetSpec{Subnet: cidr, IPs: []string{ips}}}
			Expect(e.c.Create(ctx, s)).To(Succeed())
			DeferCleanup(func(ctx SpecContext) { _ = e.c.Delete(ctx, s) })
			return s
		}
		s1, s2 := mk("front", "10.254.0.0/16", "10.254.1.1-10.254.1.40"), mk("back", "10.249.0.0/16", "10.249.1.1-10.249.1.40")
		e.nad(ctx, "underlay", nil)
		e.nad(ctx, "eth0net", nil)
		// The DaemonSet runs a pod on every schedulable node, Ready or not
		// (its pods tolerate a node that is briefly NotReady), and its pool
		// has one address per pod.
		nodeList, err := f.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		var nodes []string
		for _, n := range nodeList.Items {
			if !n.Spec.Unschedulable {
				nodes = append(nodes, n.Name)
			}
		}
		tmpl := func(app string, ann map[string]string) corev1.PodTemplateSpec {
			ann[annotNetworks] = "underlay"
			p := f.NewPod(e.ns, "", framework.PodOptions{Annotations: ann})
			return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: p.Annotations}, Spec: p.Spec}
		}
		net1 := func(extra string) map[string]string {
			return map[string]string{"ipam.spidernet.io/subnets": fmt.Sprintf(`[{"interface":"net1","ipv4":[%q]}]`, s1.Name), "ipam.spidernet.io/ippool-ip-number": extra}
		}
		sel := func(app string) *metav1.LabelSelector {
			return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
		}
		objs := []client.Object{
			&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "sts"}, Spec: appsv1.StatefulSetSpec{
				Replicas: ptr.To[int32](2), PodManagementPolicy: appsv1.ParallelPodManagement, Selector: sel("sts"), Template: tmpl("sts", net1("+0"))}},
			&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "ds"}, Spec: appsv1.DaemonSetSpec{
				Selector: sel("ds"), Template: tmpl("ds", net1("+0"))}},
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "rs"}, Spec: appsv1.ReplicaSetSpec{
				Replicas: ptr.To[int32](1), Selector: sel("rs"), Template: tmpl("rs", net1("+0"))}},
		}
		two := tmpl("two", map[string]string{annotDefaultNetwork: e.ns + "/eth0net", "ipam.spidernet.io/ippool-ip-number": "+2",
			"ipam.spidernet.io/subnets": fmt.Sprintf(`[{"interface":"eth0","ipv4":[%q]},{"interface":"net1","ipv4":[%q]}]`, s2.Name, s1.Name)})
		objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "two"}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: sel("two"), Template: two}})
		pool := func(kind, name, iface string) string {
			return subnets.AutoPoolName(subnets.App{Kind: kind, Namespace: e.ns, Name: name}, iface, 4)
		}
		want := map[string]int{
			pool("StatefulSet", "sts", "net1"): 2, pool("DaemonSet", "ds", "net1"): len(nodes), pool("ReplicaSet", "rs", "net1"): 1,
			pool("Deployment", "two", "eth0"): 3, pool("Deployment", "two", "net1"): 3,
		}
		// Ten Deployments with "+0" and 1 to 3 replicas.
		tenReplicas := map[string]int{}
		for i := range 10 {
			name := fmt.Sprintf("web%d", i)
			n := i%3 + 1
			tenReplicas[name] = n
			want[pool("Deployment", name, "net1")] = n
			objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(int32(n)), Selector: sel(name), Template: tmpl(name, net1("+0"))}})
		}
		for p := range want {
			e.pools = append(e.pools, p)
		}
		for _, o := range objs {
			Expect(e.c.Create(ctx, o)).To(Succeed())
		}
		for p, n := range want {
			Eventually(func() int {
				sp := &v2beta1.SpiderIPPool{}
				if err := e.c.Get(ctx, client.ObjectKey{Name: p}, sp); err != nil {
					return -1
				}
				u, _ := subnets.PoolUsable(sp)
				return int(u.Count())
			}).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(n), "size of pool %s", p)
		}
		for app, kind := range map[string]string{"sts": "StatefulSet", "ds": "DaemonSet", "rs": "ReplicaSet"} {
			n := want[pool(kind, app, "net1")]
			for _, p := range e.workloadPods(ctx, "app="+app, n) {
				e.expectNIC(ctx, &p, "net1", pool(kind, app, "net1"), "")
			}
		}
		for app, n := range tenReplicas {
			for _, p := range e.workloadPods(ctx, "app="+app, n) {
				e.expectNIC(ctx, &p, "net1", pool("Deployment", app, "net1"), "")
			}
		}
		p2 := e.workloadPods(ctx, "app=two", 1)[0]
		e.expectNICFrom(ctx, &p2, "eth0", pool("Deployment", "two", "eth0"), "", false)
		e.expectNIC(ctx, &p2, "net1", pool("Deployment", "two", "net1"), "")
		e.show(ctx, "get", "sp", "-o", "wide", "-l", subnets.LabelAppNamespace+"="+e.ns)

		By("another application's pod cannot take the spare addresses")
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "thief", framework.PodOptions{Annotations: map[string]string{annotNetworks: "underlay",
			annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool("Deployment", "two", "net1"))}}))
		Expect(err).NotTo(HaveOccurred())
		Expect(e.sandboxErrors(ctx, "thief")).To(ContainSubstring(fmt.Sprintf(`pool %q: pod affinity does not match pod %s/thief`, pool("Deployment", "two", "net1"), e.ns)))

		By("every application deleted, every pool goes")
		for _, o := range objs {
			Expect(e.c.Delete(ctx, o)).To(Succeed())
		}
		Eventually(func(g Gomega) {
			var left v2beta1.SpiderIPPoolList
			g.Expect(e.c.List(ctx, &left, client.MatchingLabels{subnets.LabelAppNamespace: e.ns})).To(Succeed())
			var names []string
			for _, p := range left.Items {
				names = append(names, p.Name)
			}
			g.Expect(names).To(BeEmpty(), "pools of deleted applications")
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
	})
})

var _ = Describe("Pools carved from a SpiderSubnet beyond the built-in controllers", func() {
	It("pods of a third-party controller asking a fixed number get one pool of that size, kept when the controller is gone and serving one of the same name again; asking \"+1\" they are told to ask a fixed number", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-thirdparty")
		suffix := e.ns[len(e.ns)-5:]
		team := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "operators-" + suffix}, Spec: v2beta1.SubnetSpec{
			Subnet: "10.248.0.0/16", IPs: []string{"10.248.1.1-10.248.1.20"}, Gateway: ptr.To("10.248.0.1")}}
		Expect(e.c.Create(ctx, team)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = e.c.Delete(ctx, team) })
		e.nad(ctx, "underlay", nil)

		By("a custom resource stands for the third-party controller; its pods name it as their controller")
		widgets := widgetCRD(ctx, e.c)
		newWidget := func(name string) *unstructured.Unstructured {
			GinkgoHelper()
			w := &unstructured.Unstructured{}
			w.SetGroupVersionKind(widgets)
			w.SetNamespace(e.ns)
			w.SetName(name)
			Eventually(func() error { return e.c.Create(ctx, w) }).WithContext(ctx).WithTimeout(30*time.Second).Should(Succeed(), "Widget %s", name)
			return w
		}
		podOf := func(w *unstructured.Unstructured, name string, extra map[string]string) string {
			GinkgoHelper()
			ann := map[string]string{annotNetworks: "underlay",
				"ipam.spidernet.io/subnets": fmt.Sprintf(`[{"interface":"net1","ipv4":[%q]}]`, team.Name)}
			for k, v := range extra {
				ann[k] = v
			}
			p := f.NewPod(e.ns, name, framework.PodOptions{Annotations: ann})
			p.Labels = map[string]string{"widget": w.GetName()}
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: widgets.GroupVersion().String(), Kind: widgets.Kind,
				Name: w.GetName(), UID: w.GetUID(), Controller: ptr.To(true)}}
			_, err := f.CreatePod(ctx, p)
			Expect(err).NotTo(HaveOccurred())
			return name
		}
		cache := newWidget("cache")
		podOf(cache, "cache-a", map[string]string{"ipam.spidernet.io/ippool-ip-number": "3"})
		podOf(cache, "cache-b", map[string]string{"ipam.spidernet.io/ippool-ip-number": "3"})
		app := subnets.App{Kind: widgets.Kind, Namespace: e.ns, Name: "cache"}
		pool := subnets.AutoPoolName(app, "net1", 4)
		e.pools = append(e.pools, pool)
		pods := e.workloadPods(ctx, "widget=cache", 2)
		p := &v2beta1.SpiderIPPool{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: pool}, p)).To(Succeed())
		usable, _ := subnets.PoolUsable(p)
		Expect(usable.Count()).To(BeEquivalentTo(3), "the fixed size asked for")
		Expect(p.Labels).To(HaveKeyWithValue(subnets.LabelAppKind, widgets.Kind))
		Expect(p.Labels).To(HaveKeyWithValue(subnets.LabelAppUID, string(cache.GetUID())))
		Expect(p.Labels).To(HaveKeyWithValue(subnets.LabelReclaim, "false"), "nothing tells when a third-party application is gone")
		held := map[string]bool{}
		for i := range pods {
			v4, _ := e.expectNIC(ctx, &pods[i], "net1", pool, "")
			held[v4.String()] = true
		}
		Expect(held).To(HaveLen(2))
		e.show(ctx, "get", "sp", "-o", "wide", pool)

		By("a pod of another one asking \"+1\" never starts, and is told to ask a fixed number")
		flex := newWidget("flex")
		podOf(flex, "flex-a", nil)
		Expect(e.sandboxErrors(ctx, "flex-a")).To(ContainSubstring(fmt.Sprintf(
			`gives pools to the pods of Widget %s/flex, a controller whose replicas spindle-controller cannot read; set "ipam.spidernet.io/ippool-ip-number" to a fixed number of addresses such as "5"`, e.ns)))
		Eventually(func() string { return e.events(ctx) }).WithContext(ctx).WithTimeout(30 * time.Second).Should(ContainSubstring("FixedIPNumberRequired"))

		By("the controller and its pods gone, the pool stays; a controller of the same name gets it again")
		Expect(e.c.Delete(ctx, cache)).To(Succeed())
		for _, n := range []string{"cache-a", "cache-b"} {
			Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, n, metav1.DeleteOptions{})).To(Succeed())
		}
		Eventually(func() int { return len(e.claims(ctx, Default, pool)) }).WithContext(ctx).WithTimeout(time.Minute).Should(BeZero())
		Consistently(func() error { return e.c.Get(ctx, client.ObjectKey{Name: pool}, p) }).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
		again := newWidget("cache")
		podOf(again, "cache-c", map[string]string{"ipam.spidernet.io/ippool-ip-number": "3"})
		pods = e.workloadPods(ctx, "widget=cache", 1)
		v4, _ := e.expectNIC(ctx, &pods[0], "net1", pool, "")
		GinkgoWriter.Printf("the new Widget's pod got %s from the kept pool %s\n", v4, pool)
		Eventually(func(g Gomega) {
			g.Expect(e.c.Get(ctx, client.ObjectKey{Name: pool}, p)).To(Succeed())
			g.Expect(p.Labels).To(HaveKeyWithValue(subnets.LabelAppUID, string(again.GetUID())))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	})

	It("with cluster default subnets set, an application naming nothing gets its own pool for eth0, sized by its replicas (or its ippool-ip-number), growing with it and gone with it", Label(labOnly), func(ctx SpecContext) {
		daemons := requireLab("restarts the agents and the controller with --cluster-default-subnet-v4 through bin/lab daemons restart --with")
		e := newIPAMEnv(ctx, "e2e-defsubnet")
		suffix := e.ns[len(e.ns)-5:]
		def := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "cluster-default-" + suffix}, Spec: v2beta1.SubnetSpec{
			Subnet: "10.247.0.0/16", IPs: []string{"10.247.1.1-10.247.1.40"}, Gateway: ptr.To("10.247.0.1")}}
		Expect(e.c.Create(ctx, def)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = e.c.Delete(ctx, def) })
		e.underlayNAD(ctx, "underlay", false)

		By("the agents and the controller restarted with --cluster-default-subnet-v4")
		flag := "--cluster-default-subnet-v4=" + def.Name
		_, err := daemons.Run(ctx, "daemons", "restart", "--with", "controller="+flag, "--with", "agent="+flag)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := daemons.Run(ctx, "daemons", "restart")
			Expect(err).NotTo(HaveOccurred())
		})

		deploy := func(name string, replicas int32, ann map[string]string) *appsv1.Deployment {
			GinkgoHelper()
			p := f.NewPod(e.ns, "", framework.PodOptions{Annotations: ann})
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}, Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: p.Annotations}, Spec: p.Spec}}}
			eth0Through(&d.Spec.Template, e.ns, "underlay")
			// The controller's webhooks may still be starting.
			Eventually(func() error { return e.c.Create(ctx, d) }).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			return d
		}
		size := func(pool string) int {
			p := &v2beta1.SpiderIPPool{}
			if err := e.c.Get(ctx, client.ObjectKey{Name: pool}, p); err != nil {
				return -1
			}
			s, _ := subnets.PoolUsable(p)
			return int(s.Count())
		}
		web := deploy("web", 2, nil)
		deploy("sized", 1, map[string]string{"ipam.spidernet.io/ippool-ip-number": "5"})
		webPool := subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: e.ns, Name: "web"}, "eth0", 4)
		sizedPool := subnets.AutoPoolName(subnets.App{Kind: "Deployment", Namespace: e.ns, Name: "sized"}, "eth0", 4)
		e.pools = append(e.pools, webPool, sizedPool)
		Eventually(func() []int { return []int{size(webPool), size(sizedPool)} }).WithContext(ctx).WithTimeout(time.Minute).
			Should(Equal([]int{3, 5}), "web: 2 replicas + 1 spare (--subnet-default-spare-ips); sized: 5 as asked")
		for _, p := range e.workloadPods(ctx, "app=web", 2) {
			e.expectNIC(ctx, &p, "eth0", webPool, "")
		}
		for _, p := range e.workloadPods(ctx, "app=sized", 1) {
			e.expectNIC(ctx, &p, "eth0", sizedPool, "")
		}
		e.show(ctx, "get", "sp", "-o", "wide", webPool, sizedPool)

		By("scaled to 4, web's pool grows to 5; deleted, it goes")
		e.update(ctx, web, func() { web.Spec.Replicas = ptr.To[int32](4) })
		Eventually(func() int { return size(webPool) }).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(5))
		for _, p := range e.workloadPods(ctx, "app=web", 4) {
			e.expectNIC(ctx, &p, "eth0", webPool, "")
		}
		Expect(e.c.Delete(ctx, web)).To(Succeed())
		Eventually(func() int { return size(webPool) }).WithContext(ctx).WithTimeout(2*time.Minute).Should(Equal(-1), "pool of the deleted Deployment")
	})
})

// widgetCRD installs (once) a namespaced custom resource kind that e2e
// specs use as a third-party controller of pods, and returns its kind.
func widgetCRD(ctx context.Context, c client.Client) schema.GroupVersionKind {
	GinkgoHelper()
	gvk := schema.GroupVersionKind{Group: "e2e.spindle.lab", Version: "v1", Kind: "Widget"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.e2e.spindle.lab"},
		"spec": map[string]any{
			"group": gvk.Group,
			"scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": gvk.Kind, "listKind": gvk.Kind + "List"},
			"versions": []any{map[string]any{"name": gvk.Version, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if err := c.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	return gvk
}

var _ = Describe("SpiderSubnets created at the same moment", func() {
	It("the same subnet created four times at once exists once; two overlapping subnets created at once leave exactly one that adopts pools, and the other, if admitted, says why it gives nothing", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-subnet-race")
		suffix := e.ns[len(e.ns)-5:]
		createAtOnce := func(objs ...*v2beta1.SpiderSubnet) []error {
			errs := make([]error, len(objs))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, s := range objs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = e.c.Create(ctx, s)
				}()
				DeferCleanup(func(ctx SpecContext) {
					_ = e.c.Delete(ctx, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: s.Name}})
				})
			}
			close(start)
			wg.Wait()
			return errs
		}
		spec := v2beta1.SubnetSpec{Subnet: "10.246.0.0/16", IPs: []string{"10.246.1.1-10.246.1.20"}}

		By("four creates of one subnet: one succeeds, three find it exists")
		var same []*v2beta1.SpiderSubnet
		for range 4 {
			same = append(same, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "twin-" + suffix}, Spec: spec})
		}
		created := 0
		for _, err := range createAtOnce(same...) {
			if err == nil {
				created++
				continue
			}
			Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "%v", err)
		}
		Expect(created).To(Equal(1))
		Expect(e.c.Delete(ctx, same[0])).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: same[0].Name}, &v2beta1.SpiderSubnet{}))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeTrue())

		By("two subnets of one prefix under different names at once")
		a := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "left-" + suffix}, Spec: spec}
		b := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "right-" + suffix}, Spec: *spec.DeepCopy()}
		errs := createAtOnce(a, b)
		var admitted []v2beta1.SpiderSubnet
		for i, s := range []*v2beta1.SpiderSubnet{a, b} {
			if errs[i] != nil {
				Expect(errs[i]).To(MatchError(ContainSubstring("SpiderSubnets must not overlap")))
				continue
			}
			Expect(e.c.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			admitted = append(admitted, *s)
		}
		Expect(admitted).NotTo(BeEmpty(), "both creates refused: %v", errs)
		winner := &admitted[0]
		if len(admitted) == 2 {
			if subnets.Shadowing(winner, admitted) != nil {
				winner = &admitted[1]
			}
			loser := &admitted[0]
			if loser.Name == winner.Name {
				loser = &admitted[1]
			}
			GinkgoWriter.Printf("both passed the webhook; %s was first and %s yields to it\n", winner.Name, loser.Name)
			Eventually(func(g Gomega) {
				evs, err := f.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + loser.Name + ",reason=SubnetOverlaps"})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(evs.Items).NotTo(BeEmpty(), "no SubnetOverlaps event for %s", loser.Name)
				g.Expect(evs.Items[0].Message).To(ContainSubstring(fmt.Sprintf("overlaps SpiderSubnet %q", winner.Name)))
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		} else {
			GinkgoWriter.Printf("the webhook refused one: %v\n", errs)
		}

		By("a pool of that prefix has the first subnet as its only parent")
		p := e.createPool(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "race-" + suffix},
			Spec: v2beta1.IPPoolSpec{Subnet: spec.Subnet, IPs: []string{"10.246.1.1-10.246.1.4"}}})
		Eventually(func(g Gomega) {
			g.Expect(e.c.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
			g.Expect(metav1.GetControllerOf(p)).To(HaveField("UID", winner.UID))
			var parents []string
			for _, r := range p.OwnerReferences {
				if r.Kind == "SpiderSubnet" {
					parents = append(parents, r.Name)
				}
			}
			g.Expect(parents).To(Equal([]string{winner.Name}))
			for _, s := range admitted {
				var got v2beta1.SpiderSubnet
				g.Expect(e.c.Get(ctx, client.ObjectKeyFromObject(&s), &got)).To(Succeed())
				if s.Name == winner.Name {
					g.Expect(got.Status.AllocatedIPCount).To(HaveValue(Equal(int64(4))), "status.allocatedIPCount of %s", s.Name)
				} else {
					g.Expect(got.Status.AllocatedIPCount).To(Or(BeNil(), HaveValue(BeZero())), "status.allocatedIPCount of %s, which yields", s.Name)
				}
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	})
})
