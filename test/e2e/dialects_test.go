package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// The manifests of the documents Spindle was specified from (Calico,
// Kube-OVN and kube-ipam on fixed pod addresses), applied as the documents
// write them. Only the addresses change, to the lab's underlay, and pods
// whose eth0 the document means to get from its IPAM name Spindle's network
// for eth0 with Multus' v1.multus-cni.io/default-network: the lab's default
// network is another plugin's.

// applyManifest decodes one YAML object of a document (after replacing
// the placeholders in subst) into obj, puts it into namespace ns, applies
// the lab adjustments and creates it.
func applyManifest(ctx context.Context, c client.Client, ns, manifest string, subst map[string]string, obj client.Object, adjust ...func()) {
	GinkgoHelper()
	for k, v := range subst {
		manifest = strings.ReplaceAll(manifest, k, v)
	}
	decodeInto(manifest, obj)
	obj.SetNamespace(ns)
	for _, a := range adjust {
		a()
	}
	offlineImages(obj)
	Expect(c.Create(ctx, obj)).To(Succeed())
}

// offlineImages makes the containers of obj use the images loaded into the
// kind cluster's nodes (test/kind/e2e.sh) instead of pulling: the cluster is
// offline, and an untagged image would be pulled every time. The lab runs no
// containers and leaves the manifest as written.
func offlineImages(obj client.Object) {
	if f.Testbed == nil || f.Testbed.Name() != "kind" {
		return
	}
	var spec *corev1.PodSpec
	switch o := obj.(type) {
	case *corev1.Pod:
		spec = &o.Spec
	case *appsv1.Deployment:
		spec = &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		spec = &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		spec = &o.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		spec = &o.Spec.Template.Spec
	default:
		return
	}
	for i := range spec.Containers {
		spec.Containers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
}

// eth0Through makes the pods of a workload template get eth0 from the
// NetworkAttachmentDefinition ns/nad.
func eth0Through(t *corev1.PodTemplateSpec, ns, nad string) {
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	t.Annotations[annotDefaultNetwork] = ns + "/" + nad
}

// underlayNAD creates a NetworkAttachmentDefinition named name: macvlan on
// the lab underlay with spiderpool IPAM (no default pools: the pods'
// annotations decide; defaultPools names the network's IPv4 and IPv6 default
// pools), chained with the coordinator when coordinator is set.
func (e *ipamEnv) underlayNAD(ctx context.Context, name string, coordinator bool, defaultPools ...string) {
	GinkgoHelper()
	ipam := map[string]any{"type": "spiderpool"}
	if len(defaultPools) > 0 {
		ipam["default_ipv4_ippool"] = defaultPools[:1]
	}
	if len(defaultPools) > 1 {
		ipam["default_ipv6_ippool"] = defaultPools[1:]
	}
	plugins := []any{map[string]any{"type": "macvlan", "master": e.lab.UnderlayIf, "mode": "bridge", "ipam": ipam}}
	if coordinator {
		plugins = append(plugins, map[string]any{"type": "coordinator"})
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": e.ns + "-" + name, "plugins": plugins})
	Expect(err).NotTo(HaveOccurred())
	_, err = f.CreateNAD(ctx, e.ns, name, string(conf))
	Expect(err).NotTo(HaveOccurred())
}

// nth returns the i-th address after start.
func nth(start netip.Addr, i int) netip.Addr {
	for range i {
		start = start.Next()
	}
	return start
}

// podAddrs returns the addresses of ifName inside the pod, without prefix
// lengths, IPv4 first.
func podAddrs(ctx context.Context, pod *corev1.Pod, ifName string) []netip.Addr {
	var out []netip.Addr
	for _, p := range ifaceAddrs(ctx, pod, ifName) {
		out = append(out, p.Addr())
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

var _ = Describe("Fixed-address manifests of other IPAMs", Ordered, func() {
	BeforeAll(func(ctx SpecContext) { requireCoordinatorLab(ctx) })

	It("Calico (seed 000): ipAddrs fixes eth0's address; a StatefulSet whose own metadata names ipv4pools gets its 6 replicas' addresses from exactly those pools", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-seed-calico")
		block := ipamBlockBase + 14
		// pool-1 and pool-2 as the document names them: no default, no
		// affinity, so nothing uses them unless asked (Calico's
		// nodeSelector: "!all()").
		p1 := e.pool(ctx, "pool-1", 4, block, 4)
		e.createPool(ctx, func() *v2beta1.SpiderIPPool {
			start, end, err := e.lab.UnderlayRangeV4(block, 200, 4)
			Expect(err).NotTo(HaveOccurred())
			return &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool-2"}, Spec: v2beta1.IPPoolSpec{
				Subnet: p1.Spec.Subnet, Gateway: p1.Spec.Gateway, IPs: []string{start.String() + "-" + end.String()}}}
		}())
		fixedPool := e.pool(ctx, "calico-fixed-"+e.ns, 4, block+50, 5)
		e.underlayNAD(ctx, "underlay", false)
		fixed, _, err := e.lab.UnderlayRangeV4(block+50, 102, 1)
		Expect(err).NotTo(HaveOccurred())

		By("a pod with cni.projectcalico.org/ipAddrs")
		pod := &corev1.Pod{}
		applyManifest(ctx, e.c, e.ns, `
apiVersion: v1
kind: Pod
metadata:
  name: fixed-ip
  annotations:
    cni.projectcalico.org/ipAddrs: "[\"ADDR\"]"
    v1.multus-cni.io/default-network: NS/underlay
spec:
  containers:
  - name: nginx
    image: nginx
`, map[string]string{"ADDR": fixed.String(), "NS": e.ns}, pod)
		pod, err = f.WaitPodRunning(ctx, e.ns, "fixed-ip")
		Expect(err).NotTo(HaveOccurred())
		Expect(podAddrs(ctx, pod, "eth0")).To(Equal([]netip.Addr{fixed}), "eth0 of fixed-ip: exactly the address asked for, and no IPv6 address")
		e.expectSp(ctx, fixedPool.Name, 1, 5)

		By("the StatefulSet of the document, with ipv4pools on its own metadata")
		sts := &appsv1.StatefulSet{}
		applyManifest(ctx, e.c, e.ns, `
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: redis-cluster
  annotations:
    cni.projectcalico.org/ipv4pools: '["pool-1", "pool-2"]'
spec:
  replicas: 6
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: redis-cluster
  template:
    metadata:
      labels:
        app: redis-cluster
    spec:
      containers:
      - name: redis
        image: redis
`, nil, sts, func() { eth0Through(&sts.Spec.Template, e.ns, "underlay") })
		pods := e.workloadPods(ctx, "app=redis-cluster", 6)
		seen := map[netip.Addr]string{}
		pools := map[string]int{}
		for i := range pods {
			addrs := podAddrs(ctx, &pods[i], "eth0")
			Expect(addrs).To(HaveLen(1), "%s eth0: %v", pods[i].Name, addrs)
			a := addrs[0]
			Expect(seen).NotTo(HaveKey(a), "%s and %s share %s", seen[a], pods[i].Name, a)
			seen[a] = pods[i].Name
			cl := &v2beta1.SpiderIPClaim{}
			Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(a)}, cl)).To(Succeed())
			Expect(cl.Spec.Pool).To(BeElementOf("pool-1", "pool-2"), "%s got %s", pods[i].Name, a)
			Expect(cl.Spec.OwnerKind).To(Equal("StatefulSet"))
			pools[cl.Spec.Pool]++
			GinkgoWriter.Printf("%s %s (%s)\n", pods[i].Name, a, cl.Spec.Pool)
		}
		Expect(pools).To(Equal(map[string]int{"pool-1": 4, "pool-2": 2}), "pool-1 first, in the order the annotation names them")
		e.show(ctx, "get", "pods", "-n", e.ns, "-o", "wide")
		e.show(ctx, "get", "sic", "-l", "ipam.spidernet.io/pool in (pool-1,pool-2)")
		By("scaled to 3, ordinals 3 to 5 keep their addresses for the StatefulSet")
		e.update(ctx, sts, func() { sts.Spec.Replicas = ptr.To[int32](3) })
		e.workloadPods(ctx, "app=redis-cluster", 3)
		Consistently(func() int {
			return len(e.claims(ctx, Default, "pool-1")) + len(e.claims(ctx, Default, "pool-2"))
		}).WithContext(ctx).WithTimeout(3*time.Second).Should(Equal(6), "addresses of scaled-away replicas released")
		e.show(ctx, "get", "sic", "-l", "ipam.spidernet.io/pool in (pool-1,pool-2)")
		e.expectSp(ctx, "pool-1", 4, 4)
		e.expectSp(ctx, "pool-2", 2, 4)
	})

	It("Kube-OVN (seed 001): a pod's ip_address and mac_address, a Deployment's ip_pool and a StatefulSet's ip_pool give eth0 exactly the listed addresses and MAC, kept across re-creation", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-seed-ovn")
		block := ipamBlockBase + 15
		e.pool(ctx, "ovn-v4-"+e.ns, 4, block, 12)
		e.pool(ctx, "ovn-v6-"+e.ns, 6, block, 12)
		e.underlayNAD(ctx, "underlay", true) // the coordinator sets the MAC
		v4, _, err := e.lab.UnderlayRangeV4(block, 100, 12)
		Expect(err).NotTo(HaveOccurred())
		v6, _, err := e.lab.UnderlayRangeV6(block, 100, 12)
		Expect(err).NotTo(HaveOccurred())

		By("the static-ip pod, dual stack, with its MAC")
		staticIP := `
apiVersion: v1
kind: Pod
metadata:
  name: static-ip
  annotations:
    ovn.kubernetes.io/ip_address: V4,V6
    ovn.kubernetes.io/mac_address: 00:00:00:53:6B:B6
    v1.multus-cni.io/default-network: NS/underlay
spec:
  containers:
  - name: static-ip
    image: docker.io/library/nginx:alpine
`
		subst := map[string]string{"V4": nth(v4, 0).String(), "V6": nth(v6, 0).String(), "NS": e.ns}
		for round := range 2 {
			pod := &corev1.Pod{}
			applyManifest(ctx, e.c, e.ns, staticIP, subst, pod)
			pod, err = f.WaitPodRunning(ctx, e.ns, "static-ip")
			Expect(err).NotTo(HaveOccurred())
			Expect(podAddrs(ctx, pod, "eth0")).To(Equal([]netip.Addr{nth(v4, 0), nth(v6, 0)}), "round %d", round)
			Expect(ifaceMAC(ctx, pod, "eth0")).To(Equal("00:00:00:53:6b:b6"), "round %d", round)
			if round == 0 {
				Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, "static-ip", metav1.DeleteOptions{})).To(Succeed())
				Eventually(func() error {
					_, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "static-ip", metav1.GetOptions{})
					return err
				}).WithContext(ctx).WithTimeout(time.Minute).ShouldNot(Succeed())
			}
		}

		By("the ippool Deployment: 2 replicas, 3 listed addresses")
		dep := &appsv1.Deployment{}
		applyManifest(ctx, e.c, e.ns, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ippool
  labels:
    app: ippool
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ippool
  template:
    metadata:
      labels:
        app: ippool
      annotations:
        ovn.kubernetes.io/ip_pool: A1,A2,A3
        v1.multus-cni.io/default-network: NS/underlay
    spec:
      containers:
      - name: ippool
        image: docker.io/library/nginx:alpine
`, map[string]string{"A1": nth(v4, 1).String(), "A2": nth(v4, 2).String(), "A3": nth(v4, 3).String(), "NS": e.ns}, dep)
		list := []netip.Addr{nth(v4, 1), nth(v4, 2), nth(v4, 3)}
		got := map[netip.Addr]bool{}
		for _, p := range e.workloadPods(ctx, "app=ippool", 2) {
			addrs := podAddrs(ctx, &p, "eth0")
			Expect(addrs).To(HaveLen(1), "%s eth0: %v (IPv4 list: no IPv6)", p.Name, addrs)
			Expect(list).To(ContainElement(addrs[0]), "%s got %s, not an entry of the list", p.Name, addrs[0])
			Expect(got).NotTo(HaveKey(addrs[0]))
			got[addrs[0]] = true
		}

		By("a StatefulSet with a dual-stack ip_pool: replica i gets entry i")
		sts := &appsv1.StatefulSet{}
		pairs := make([]string, 3)
		for i := range pairs {
			pairs[i] = nth(v4, 6+i).String() + "," + nth(v6, 6+i).String()
		}
		applyManifest(ctx, e.c, e.ns, `
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
      annotations:
        ovn.kubernetes.io/ip_pool: LIST
        v1.multus-cni.io/default-network: NS/underlay
    spec:
      containers:
      - name: web
        image: docker.io/library/nginx:alpine
`, map[string]string{"LIST": strings.Join(pairs, ";"), "NS": e.ns}, sts)
		pods := e.workloadPods(ctx, "app=web", 3)
		for i, p := range pods {
			Expect(p.Name).To(Equal(fmt.Sprintf("web-%d", i)))
			Expect(podAddrs(ctx, &p, "eth0")).To(Equal([]netip.Addr{nth(v4, 6+i), nth(v6, 6+i)}), "%s", p.Name)
		}
		e.show(ctx, "get", "pods", "-n", e.ns, "-o", "wide")
		e.show(ctx, "get", "sic", "-o", "wide", "-l", "ipam.spidernet.io/pool in (ovn-v4-"+e.ns+",ovn-v6-"+e.ns+")")
	})

	It("kube-ipam (seed 002): the fixed-ip-test Deployment keeps 10.188.0.216's counterpart across pod re-creation; web and database pods reach each other on the database network by fixed address; a netmask that disagrees with the pool is refused with both values", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-seed-kubeipam")
		block := ipamBlockBase + 16
		db := e.pool(ctx, "kubeipam-db-"+e.ns, 4, block, 10)
		e.underlayNAD(ctx, "db", false)
		v4, _, err := e.lab.UnderlayRangeV4(block, 100, 10)
		Expect(err).NotTo(HaveOccurred())
		// 10.188.0.0/16 with gateway 10.188.0.1 in the document; the
		// lab's underlay is a /16 as well.
		subst := map[string]string{"NETMASK": "255.255.0.0", "GATEWAY": e.lab.GatewayV4.String(), "NS": e.ns}

		By("the document's fixed-ip-test Deployment, its pod on the database network")
		subst["ADDR"] = nth(v4, 6).String() // 10.188.0.216 in the document
		dep := &appsv1.Deployment{}
		applyManifest(ctx, e.c, e.ns, `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fixed-ip-test
  namespace: default
  labels:
    k8s-app: cloudnativer-test
spec:
  replicas: 1
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  selector:
    matchLabels:
      k8s-app: cloudnativer-test
  template:
    metadata:
      labels:
        k8s-app: cloudnativer-test
      annotations:
        kube-ipam.ip: "ADDR"
        kube-ipam.netmask: "NETMASK"
        kube-ipam.gateway: "GATEWAY"
        k8s.v1.cni.cncf.io/networks: db
    spec:
      containers:
      - name: fixed-ip-test
        image: nginx:1.7.9
        imagePullPolicy: IfNotPresent
        ports:
        - name: http
          containerPort: 80
`, subst, dep)
		first := e.workloadPods(ctx, "k8s-app=cloudnativer-test", 1)[0]
		Expect(podAddrs(ctx, &first, "net1")).To(Equal([]netip.Addr{nth(v4, 6)}))
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, first.Name, metav1.DeleteOptions{})).To(Succeed())
		var second corev1.Pod
		Eventually(func(g Gomega) {
			pods := e.workloadPods(ctx, "k8s-app=cloudnativer-test", 1)
			g.Expect(pods[0].UID).NotTo(Equal(first.UID))
			second = pods[0]
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
		Expect(podAddrs(ctx, &second, "net1")).To(Equal([]netip.Addr{nth(v4, 6)}), "the re-created pod %s", second.Name)
		e.show(ctx, "get", "pods", "-n", e.ns, "-o", "wide")
		e.show(ctx, "get", "sic", "-l", "ipam.spidernet.io/pool="+db.Name)

		By("the layered layout: two database pods and a web pod, fixed on the database network")
		layered := `
apiVersion: v1
kind: Pod
metadata:
  name: NAME
  labels:
    tier: TIER
  annotations:
    kube-ipam.ip: "ADDR"
    kube-ipam.netmask: "NETMASK"
    kube-ipam.gateway: "GATEWAY"
    k8s.v1.cni.cncf.io/networks: db
spec:
  containers:
  - name: app
    image: mysql
`
		addrOf := map[string]netip.Addr{"db-0": nth(v4, 1), "db-1": nth(v4, 2), "web": nth(v4, 3)}
		running := map[string]*corev1.Pod{}
		for _, name := range []string{"db-0", "db-1", "web"} {
			tier := strings.TrimSuffix(strings.TrimSuffix(name, "-0"), "-1")
			s := map[string]string{"NAME": name, "TIER": tier, "ADDR": addrOf[name].String()}
			for _, k := range []string{"NETMASK", "GATEWAY"} {
				s[k] = subst[k]
			}
			applyManifest(ctx, e.c, e.ns, layered, s, &corev1.Pod{})
		}
		for _, name := range []string{"db-0", "db-1", "web"} {
			p, err := f.WaitPodRunning(ctx, e.ns, name)
			Expect(err).NotTo(HaveOccurred())
			running[name] = p
			Expect(podAddrs(ctx, p, "net1")).To(Equal([]netip.Addr{addrOf[name]}), "%s net1", name)
			// eth0 stays the lab's default network, dynamic.
			Expect(podAddrs(ctx, p, "eth0")).NotTo(ContainElement(addrOf[name]))
		}
		for _, c := range [][2]string{{"web", "db-0"}, {"web", "db-1"}, {"db-0", "db-1"}, {"db-1", "db-0"}} {
			out := podSh(ctx, running[c[0]], "ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "net1", addrOf[c[1]].String())
			Expect(out).To(ContainSubstring("2 received"), "%s -> %s", c[0], c[1])
		}
		e.expectSp(ctx, db.Name, 4, 10)

		By("a pod whose kube-ipam.netmask disagrees with the pool waits, its event naming both")
		s := map[string]string{"NAME": "wrong-mask", "TIER": "db", "ADDR": nth(v4, 4).String(), "NETMASK": "255.255.255.0", "GATEWAY": subst["GATEWAY"]}
		applyManifest(ctx, e.c, e.ns, layered, s, &corev1.Pod{})
		msg := e.sandboxErrors(ctx, "wrong-mask")
		GinkgoWriter.Printf("wrong-mask events:\n%s\n", msg)
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: kube-ipam.netmask 255.255.255.0 (/24) disagrees with the pool's subnet %s`, db.Name, db.Spec.Subnet)))
	})
})
