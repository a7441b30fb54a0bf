package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func nad(ns, name, config string) *nadv1.NetworkAttachmentDefinition {
	return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: config}}
}

const spiderpoolNAD = `{"cniVersion":"1.0.0","name":"u","type":"macvlan","master":"ul0","ipam":{"type":"spiderpool","default_ipv4_ippool":["dflt"]}}`

// why on live objects: the pool the pod names is refused by node affinity,
// the CNI default pool of the other interface is full, and a third pod
// would get an address; dry runs of a Deployment inherit its annotations.
func TestWhy(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	pinned := pool("n2only", "10.6.0.100-10.6.0.110", func(p *v2beta1.SpiderIPPool) { p.Spec.NodeName = []string{"n2"} })
	dflt := pool("dflt", "10.6.1.2-10.6.1.2")
	holder := runningPod("ns", "holder", "u-h", "n1", map[string]string{"k8s.v1.cni.cncf.io/networks": "underlay"})
	aff := runningPod("ns", "aff", "u-aff", "n1", map[string]string{"k8s.v1.cni.cncf.io/networks": "underlay", "ipam.spidernet.io/ippool": `{"ipv4":["n2only"]}`})
	aff.Status.Phase = corev1.PodPending
	full := runningPod("ns", "full", "u-full", "n1", map[string]string{"k8s.v1.cni.cncf.io/networks": "underlay"})
	full.Status.Phase = corev1.PodPending
	env, out, errb := newEnv(t, ns, n1, pinned, dflt, holder, aff, full, nad("ns", "underlay", spiderpoolNAD),
		claim("10.6.1.2", "dflt", "ns", "holder", "u-h", "net1", time.Hour))

	if code := Run(context.Background(), env, []string{"why", "ns/aff"}); code != ExitFindings {
		t.Fatalf("why ns/aff: exit %d\n%s%s", code, out, errb)
	}
	if s := out.String(); !strings.Contains(s, `n2only   refused`) || !strings.Contains(s, `nodeName [n2] does not include node "n1"`) ||
		!strings.Contains(s, "enable-ipv4=true  (spindle-agent default)") || !strings.Contains(s, "assumed not served by Spindle") {
		t.Errorf("why ns/aff:\n%s", s)
	}
	out.Reset()
	if code := Run(context.Background(), env, []string{"why", "ns/full"}); code != ExitFindings {
		t.Fatalf("why ns/full: exit %d\n%s%s", code, out, errb)
	}
	if s := out.String(); !strings.Contains(s, "CNI default pools: IPv4 [dflt]") || !strings.Contains(s, "dflt   full") || !strings.Contains(s, "every usable candidate pool is full") {
		t.Errorf("why ns/full:\n%s", s)
	}
	out.Reset()
	if code := Run(context.Background(), env, []string{"why", "ns/holder"}); code != ExitOK {
		t.Fatalf("why ns/holder: exit %d\n%s%s", code, out, errb)
	}
	if s := out.String(); !strings.Contains(s, "holds 10.6.1.2 from pool dflt") {
		t.Errorf("why ns/holder:\n%s", s)
	}

	// Dry run: a Deployment whose own annotations name the pinned pool.
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {ipam.spidernet.io/ippool: '{"ipv4":["n2only"]}'}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {k8s.v1.cni.cncf.io/networks: underlay}
    spec:
      containers: [{name: c, image: busybox}]
`
	for node, want := range map[string]int{"n1": ExitFindings, "n2": ExitOK} {
		out.Reset()
		env.Stdin = strings.NewReader(deploy)
		if code := Run(context.Background(), env, []string{"why", "-n", "ns", "-f", "-", "--node", node}); code != want {
			t.Errorf("dry run on %s: exit %d, want %d\n%s%s", node, code, want, out, errb)
		}
		if s := out.String(); !strings.Contains(s, "Pod (dry run) ns/web-dry-run") || !strings.Contains(s, "inherited from: Deployment ns/web") {
			t.Errorf("dry run on %s:\n%s", node, s)
		}
	}
	// An unscheduled dry-run pod needs --node.
	env.Stdin = strings.NewReader(deploy)
	if code := Run(context.Background(), env, []string{"why", "-n", "ns", "-f", "-"}); code != ExitUsage {
		t.Errorf("dry run without --node: exit %d", code)
	}
}

func TestNetworkIPAM(t *testing.T) {
	for _, c := range []struct {
		conf          string
		known, served bool
		v4            string
	}{
		{"", false, false, ""},
		{spiderpoolNAD, true, true, "dflt"},
		{`{"cniVersion":"1.0.0","name":"l","plugins":[{"type":"macvlan","ipam":{"type":"spiderpool","default_ipv4_ippool":["a"]}},{"type":"tuning"}]}`, true, true, "a"},
		{`{"type":"macvlan","ipam":{"type":"host-local"}}`, true, false, ""},
	} {
		known, served, v4, _, err := NetworkIPAM(c.conf)
		if err != nil || known != c.known || served != c.served || strings.Join(v4, ",") != c.v4 {
			t.Errorf("NetworkIPAM(%s) = %v %v %v %v", c.conf, known, served, v4, err)
		}
	}
	if _, _, _, _, err := NetworkIPAM("{"); err == nil {
		t.Error("a broken configuration parsed")
	}
}

func TestInlinePools(t *testing.T) {
	v4, v6, ok := inlinePools("db/lan", `{"type":"macvlan","ipam":{"type":"spiderpool","ranges":[[{"subnet":"10.1.0.0/24"},{"subnet":"10.2.0.0/24"}],[{"subnet":"fd00::/120"}]]}}`)
	if !ok || strings.Join(v4, ",") != "db.lan.v4,db.lan.v4-2" || strings.Join(v6, ",") != "db.lan.v6" {
		t.Errorf("inlinePools = %v %v %v", v4, v6, ok)
	}
	v4, _, ok = inlinePools("db/kube", `{"type":"macvlan","ipam":{"type":"spiderpool","subnet":"10.188.0.0/16","fixedStart":"10.188.0.10","fixedEnd":"10.188.0.20"}}`)
	if !ok || strings.Join(v4, ",") != "db.kube.v4" {
		t.Errorf("kube-ipam form: %v %v (the fixed-only pool is no default)", v4, ok)
	}
	if _, _, ok := inlinePools("db/p", spiderpoolNAD); ok {
		t.Error("a configuration that names pools has inline pools")
	}
}
