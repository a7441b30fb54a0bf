package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// gcRace records what the garbage-collector race spec saw: the addresses
// each verified live pod holds, and every violation.
type gcRace struct {
	mu         sync.Mutex
	live       map[string]types.UID // address -> verified live pod
	verified   map[types.UID]bool
	violations []string
	freed      atomic.Int64 // an address of a running pod lost its claim
	duplicates atomic.Int64 // one address in two live pods
	leaked     atomic.Int64 // an old incarnation's claim not released
}

func claimSummary(claims []v2beta1.SpiderIPClaim) []string {
	var out []string
	for _, cl := range claims {
		out = append(out, fmt.Sprintf("%s (pod uid %s)", cl.Spec.Address, cl.Spec.PodUID))
	}
	return out
}

func (r *gcRace) violate(counter *atomic.Int64, format string, args ...any) {
	counter.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations = append(r.violations, fmt.Sprintf(format, args...))
}

// check compares a running pod's net1 addresses with its claims: each must
// be claimed for the pod's UID (else it was freed while the pod runs). With
// record, the pod's addresses are registered as live, and an address that
// another live pod holds is a duplicate.
func (r *gcRace) check(ctx context.Context, c client.Client, lab *framework.Testbed, p pools, pod *corev1.Pod, record bool) {
	GinkgoHelper()
	v4, v6, err := readNet1Addrs(ctx, lab, pod)
	Expect(err).NotTo(HaveOccurred())
	for _, x := range []struct{ pool, addr string }{{p.V4.Name, v4}, {p.V6.Name, v6}} {
		held := claimsOf(ctx, c, x.pool, pod.Namespace, pod.Name)
		if !slices.ContainsFunc(held, func(cl v2beta1.SpiderIPClaim) bool {
			return cl.Spec.Address == x.addr && cl.Spec.PodUID == string(pod.UID)
		}) {
			r.violate(&r.freed, "pod %s/%s (uid %s) runs with %s on net1, but no claim of pool %s holds it for that pod: %v",
				pod.Namespace, pod.Name, pod.UID, x.addr, x.pool, held)
		}
		if !record {
			continue
		}
		r.mu.Lock()
		other, taken := r.live[x.addr]
		r.live[x.addr] = pod.UID
		r.verified[pod.UID] = true
		r.mu.Unlock()
		if taken && other != pod.UID {
			r.violate(&r.duplicates, "address %s is configured in pod %s/%s (uid %s) while live pod uid %s holds it", x.addr, pod.Namespace, pod.Name, pod.UID, other)
		}
	}
}

func (r *gcRace) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.violations) > 0
}

// forget drops the addresses of a pod about to be deleted.
func (r *gcRace) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a, u := range r.live {
		if u == uid {
			delete(r.live, a)
		}
	}
}

// sample checks, from the API alone, that every verified pod still running
// (the same UID before and after the claims were read) has a claim in each
// pool.
func (r *gcRace) sample(ctx context.Context, c client.Client, ns string, p pools) {
	GinkgoHelper()
	before, err := f.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	byUID := map[string][]string{}
	for _, pool := range p.names() {
		for _, cl := range poolClaims(ctx, c, pool) {
			byUID[cl.Spec.PodUID] = append(byUID[cl.Spec.PodUID], pool)
		}
	}
	after, err := f.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	still := map[types.UID]bool{}
	for _, pod := range after.Items {
		if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
			still[pod.UID] = true
		}
	}
	for _, pod := range before.Items {
		r.mu.Lock()
		ok := r.verified[pod.UID]
		r.mu.Unlock()
		if ok && still[pod.UID] && pod.DeletionTimestamp == nil && len(byUID[string(pod.UID)]) != 2 {
			r.violate(&r.freed, "running pod %s/%s (uid %s) has claims in %v only", pod.Namespace, pod.Name, pod.UID, byUID[string(pod.UID)])
		}
	}
}

var _ = Describe("IP garbage collector race", Serial, func() {
	// Pods are force-deleted and re-created under the same name, on several
	// names at once, while the controller's garbage collector runs a full
	// pass every second besides its event-driven passes: the collector and
	// the agents' DEL of the old incarnation race the ADD of the new one.
	// No address may be freed while its pod runs, and no address may be in
	// two live pods. E2E_GC_RACE_ROUNDS (default 200) sets the number of
	// re-creations, E2E_GC_RACE_PODS (default 8) the pod names churned at
	// once; `make race-gc` runs 1,000 rounds.
	It("frees no address of a running pod while pods are deleted and re-created under the same name during garbage collection", Label(labOnly), func(ctx SpecContext) {
		daemons := requireLab("restarts the controller with --gc-interval=1s through bin/lab daemons restart --with")
		lab := requireCluster()
		c := crClient()
		requireController(ctx, c)
		rounds := envInt("E2E_GC_RACE_ROUNDS", 200)
		names := envInt("E2E_GC_RACE_PODS", 8)
		size := 3 * names
		p := underlayPools(ctx, c, lab, "e2e-gcrace-"+framework.RandSuffix(4), blockGCRace, size)
		ns := newTestNamespace(ctx, "e2e-gc-race")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, false)

		By("restarting the controller with a full garbage-collection pass every second")
		_, err := daemons.Run(ctx, "daemons", "restart", "--with", "controller=--gc-interval=1s")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := daemons.Run(ctx, "daemons", "restart")
			Expect(err).NotTo(HaveOccurred())
		}, NodeTimeout(2*time.Minute))

		r := &gcRace{live: map[string]types.UID{}, verified: map[types.UID]bool{}}
		pods := make([]*corev1.Pod, names)
		for i := range pods {
			name := fmt.Sprintf("race-%d", i)
			// The agents restart with the controller: ADDs are retried
			// until they are ready.
			_, err := f.CreatePod(ctx, net1Pod(ns, name, smc.Name, ""))
			Expect(err).NotTo(HaveOccurred())
		}
		for i := range pods {
			pods[i], err = f.WaitPodRunning(ctx, ns, fmt.Sprintf("race-%d", i))
			Expect(err).NotTo(HaveOccurred())
			r.check(ctx, c, lab, p, pods[i], true)
		}

		m0 := scrape(ctx)
		start := time.Now()
		var next, completed atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		for i := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer GinkgoRecover()
				defer func() {
					if x := recover(); x != nil {
						stop.Store(true)
						panic(x)
					}
				}()
				name := pods[i].Name
				// The first violation ends the churn (the line reports it).
				for !stop.Load() && !r.failed() && ctx.Err() == nil && next.Add(1) <= int64(rounds) {
					old := pods[i]
					r.check(ctx, c, lab, p, old, false) // still intact up to its deletion
					r.forget(old.UID)
					Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
						GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &old.UID},
					})).To(Succeed())
					Eventually(func() error {
						_, err := f.Client.CoreV1().Pods(ns).Create(ctx, net1Pod(ns, name, smc.Name, ""), metav1.CreateOptions{})
						return err
					}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
					pod, err := f.WaitPodRunning(ctx, ns, name)
					Expect(err).NotTo(HaveOccurred())
					Expect(pod.UID).NotTo(Equal(old.UID))
					// The old incarnation's claims go (DEL or collector);
					// the new one's stay.
					var held []v2beta1.SpiderIPClaim
					for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
						held = podClaims(ctx, c, p, ns, name)
						if len(held) == 2 && held[0].Spec.PodUID == string(pod.UID) && held[1].Spec.PodUID == string(pod.UID) || time.Now().After(deadline) {
							break
						}
					}
					freed := r.freed.Load()
					r.check(ctx, c, lab, p, pod, true)
					if len(held) != 2 && r.freed.Load() == freed {
						r.violate(&r.leaked, "pod %s/%s (uid %s): claims after 60s: %v", ns, name, pod.UID, claimSummary(held))
					}
					pods[i] = pod
					completed.Add(1)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		samples := 0
	sampling:
		for {
			select {
			case <-done:
				break sampling
			case <-time.After(500 * time.Millisecond):
				r.sample(ctx, c, ns, p)
				samples++
			}
		}
		elapsed := time.Since(start)

		By("after the churn every pod still holds its addresses and no claim is left of an old incarnation")
		for _, pod := range pods {
			r.check(ctx, c, lab, p, pod, false)
		}
		for range 6 {
			r.sample(ctx, c, ns, p)
			time.Sleep(500 * time.Millisecond)
		}
		// Claims of old incarnations go within a minute.
		var leaked []string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			leaked = nil
			want := map[string]bool{}
			for _, pod := range pods {
				want[string(pod.UID)] = true
			}
			for _, pool := range p.names() {
				for _, cl := range poolClaims(ctx, c, pool) {
					if !want[cl.Spec.PodUID] {
						leaked = append(leaked, fmt.Sprintf("%s (pod %s/%s uid %s)", cl.Spec.Address, cl.Spec.PodNamespace, cl.Spec.PodName, cl.Spec.PodUID))
					}
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
		}

		m := scrape(ctx)
		delta := func(name string, labels ...string) int {
			a, _ := m0.Get(name, labels...)
			b, _ := m.Get(name, labels...)
			return int(b - a)
		}
		line := fmt.Sprintf("gc-race: rounds=%d pods=%d gc_interval=1s samples=%d wrongly_freed=%d duplicates=%d leaked=%d gc_collected_uid_mismatch=%d gc_collected_deleted=%d gc_precondition_conflicts=%d elapsed=%s",
			completed.Load(), names, samples, r.freed.Load(), r.duplicates.Load(), int(r.leaked.Load())+len(leaked),
			delta("spindle_controller_gc_collected_total", "reason", "PodUIDMismatch"), delta("spindle_controller_gc_collected_total", "reason", "PodDeleted"),
			delta("spindle_controller_gc_precondition_conflicts_total"), elapsed.Round(time.Second))
		GinkgoWriter.Println(line)
		AddReportEntry("gc-race", line)
		Expect(r.violations).To(BeEmpty(), "%s\nfirst violations:\n%s", line, strings.Join(r.violations[:min(len(r.violations), 10)], "\n"))
		Expect(leaked).To(BeEmpty(), "%s\nclaims of deleted incarnations", line)
		Expect(completed.Load()).To(BeEquivalentTo(rounds))
	})
})
