package controllermanager

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// inlineRanges (part of TestIntegrationWithAPIServer, whose controller and
// webhooks run): the controller turns a NetworkAttachmentDefinition with
// inline ranges into pools the webhooks accept, follows its edits, keeps its
// pools while an address is held after it is deleted, and reports bad
// ranges and overlaps as events on it.
func inlineRanges(ctx context.Context, t *testing.T, c client.Client) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "db"}}); err != nil {
		t.Fatal(err)
	}
	nad := func(name, ipam string) *netv1.NetworkAttachmentDefinition {
		return &netv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name},
			Spec: netv1.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"0.3.1","name":"` + name + `","type":"macvlan","master":"eth0","ipam":{"type":"spiderpool",` + ipam + `}}`}}
	}
	kube := nad("kube", `"etcdConfig":{"etcdURL":"https://x:2379"},"subnet":"10.188.0.0/16","fixedStart":"10.188.0.10","fixedEnd":"10.188.0.255",
		"rangeStart":"10.188.1.0","rangeEnd":"10.188.1.99","gateway":"10.188.0.1","routes":[{"dst":"0.0.0.0/0"}]`)
	if err := c.Create(ctx, kube); err != nil {
		t.Fatal(err)
	}
	pool := func(name string) (*v2beta1.SpiderIPPool, error) {
		p := &v2beta1.SpiderIPPool{}
		return p, c.Get(ctx, client.ObjectKey{Name: name}, p)
	}
	eventually(t, "pools of db/kube", 30*time.Second, func() error {
		for name, ips := range map[string]string{"db.kube.v4": "10.188.1.0-10.188.1.99", "db.kube.fixed-v4": "10.188.0.10-10.188.0.255"} {
			p, err := pool(name)
			if err != nil {
				return err
			}
			if strings.Join(p.Spec.IPs, ",") != ips || len(p.Finalizers) == 0 || strings.Join(p.Spec.MultusName, ",") != "db/kube" {
				return fmt.Errorf("pool %s: %+v %v", name, p.Spec, p.Finalizers)
			}
		}
		return nil
	})
	expectEvent(ctx, t, c, "kube", "InlinePoolCreated", "created SpiderIPPool db.kube.v4 (10.188.0.0/16)")

	// An edit of the range updates the pool.
	cur := &netv1.NetworkAttachmentDefinition{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(kube), cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Config = strings.Replace(cur.Spec.Config, "10.188.1.99", "10.188.1.199", 1)
	if err := c.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "db.kube.v4 follows the edit", 30*time.Second, func() error {
		p, err := pool("db.kube.v4")
		if err == nil && strings.Join(p.Spec.IPs, ",") != "10.188.1.0-10.188.1.199" {
			err = fmt.Errorf("ips %v", p.Spec.IPs)
		}
		return err
	})

	// Deleted while a pod holds an address: the pool stays until it is
	// released; the unused fixed pool goes at once.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	held := &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: "10.188.1.0", Labels: map[string]string{v2beta1.LabelPool: "db.kube.v4"}},
		Spec: v2beta1.IPClaimSpec{Pool: "db.kube.v4", Address: "10.188.1.0", IPVersion: 4, PodNamespace: "db", PodName: "web", PodUID: string(pod.UID), Interface: "net1", Node: "n1"}}
	if err := c.Create(ctx, held); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, cur); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fixed pool gone, v4 pool terminating", 30*time.Second, func() error {
		if _, err := pool("db.kube.fixed-v4"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("fixed pool: %v", err)
		}
		p, err := pool("db.kube.v4")
		if err == nil && p.DeletionTimestamp == nil {
			err = fmt.Errorf("db.kube.v4 is not being deleted")
		}
		return err
	})
	time.Sleep(2 * time.Second)
	if _, err := pool("db.kube.v4"); err != nil {
		t.Fatalf("pool with a held address went: %v", err)
	}
	if err := c.Delete(ctx, held); err != nil {
		t.Fatal(err)
	}
	eventually(t, "db.kube.v4 gone after its address is released", 30*time.Second, func() error {
		if _, err := pool("db.kube.v4"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})

	// Bad ranges: an event naming the network and the key.
	if err := c.Create(ctx, nad("typo", `"range":"10.30.0.0/24","exclude":["10.30.0.x"]`)); err != nil {
		t.Fatal(err)
	}
	expectEvent(ctx, t, c, "typo", "InvalidInlineRanges", `NetworkAttachmentDefinition db/typo: spec.config ipam.exclude[0]: "10.30.0.x" is not a CIDR or an address`)

	// Two networks over one range: refused unless both share one network.
	if err := c.Create(ctx, nad("lan-a", `"range":"10.31.0.0/24"`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pool of lan-a", 30*time.Second, func() error { _, err := pool("db.lan-a.v4"); return err })
	if err := c.Create(ctx, nad("lan-b", `"range":"10.31.0.0/24"`)); err != nil {
		t.Fatal(err)
	}
	expectEvent(ctx, t, c, "lan-b", "InlinePoolRefused", `the inline ranges of NetworkAttachmentDefinitions db/lan-b and db/lan-a overlap; if both attach to one network, give both the same "sharedNetwork" in their ipam object`)
	for _, name := range []string{"lan-a", "lan-b"} {
		n := &netv1.NetworkAttachmentDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "db", Name: name}, n); err != nil {
			t.Fatal(err)
		}
		n.Spec.Config = strings.Replace(n.Spec.Config, `"range"`, `"sharedNetwork":"lan","range"`, 1)
		if err := c.Update(ctx, n); err != nil {
			t.Fatal(err)
		}
		if name == "lan-a" {
			eventually(t, "db.lan-a.v4 in the shared network", 30*time.Second, func() error {
				p, err := pool("db.lan-a.v4")
				if err == nil && p.Labels[v2beta1.LabelSharedNetwork] != "lan" {
					err = fmt.Errorf("labels %v", p.Labels)
				}
				return err
			})
		}
	}
	eventually(t, "both pools of the shared network", 60*time.Second, func() error {
		for _, name := range []string{"db.lan-a.v4", "db.lan-b.v4"} {
			p, err := pool(name)
			if err != nil {
				return err
			}
			if p.Labels[v2beta1.LabelSharedNetwork] != "lan" {
				return fmt.Errorf("pool %s labels %v", name, p.Labels)
			}
		}
		return nil
	})
}

// expectEvent waits for an event of reason on NetworkAttachmentDefinition
// db/name whose note contains note.
func expectEvent(ctx context.Context, t *testing.T, c client.Client, name, reason, note string) {
	t.Helper()
	eventually(t, reason+" event on db/"+name, 30*time.Second, func() error {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace("db")); err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				if strings.Contains(e.Note, note) {
					return nil
				}
				seen = append(seen, e.Note)
			}
		}
		return fmt.Errorf("no such event; %s events: %q", reason, seen)
	})
}
