package controlplane

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/manifests"
	"github.com/spindle-net/spindle/test/lab/pki"
)

func TestRenderKubeconfigLoads(t *testing.T) {
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue(pki.Request{CommonName: "u", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := RenderKubeconfig("https://127.0.0.1:36443", ca.CertPEM(), p)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		t.Fatalf("kubeconfig does not load: %v", err)
	}
	if rc.Host != "https://127.0.0.1:36443" || len(rc.CertData) == 0 || len(rc.KeyData) == 0 || len(rc.CAData) == 0 {
		t.Fatalf("rest config = %+v", rc)
	}
}

func TestEnsurePKIWritesEverythingOnce(t *testing.T) {
	c := config.Default("/repo")
	c.Dir = t.TempDir()
	if err := EnsurePKI(c); err != nil {
		t.Fatal(err)
	}
	for _, id := range []Identity{Admin, ControllerManager, Scheduler, Multus} {
		if _, err := clientcmd.LoadFromFile(KubeconfigFor(c, id)); err != nil {
			t.Errorf("kubeconfig of %s: %v", id.CommonName, err)
		}
	}
	ca1, err := pki.LoadCA(PKIFile(c, "ca.crt"), PKIFile(c, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsurePKI(c); err != nil {
		t.Fatal(err)
	}
	ca2, err := pki.LoadCA(PKIFile(c, "ca.crt"), PKIFile(c, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Cert.Equal(ca2.Cert) {
		t.Fatal("a second EnsurePKI replaced the CA of a running lab")
	}
}

func TestComponentFlags(t *testing.T) {
	c := config.Default("/repo")
	byName := map[string]string{}
	for _, comp := range Components(c, Deps{K8s: "/k", Etcd: "/e"}) {
		byName[comp.Name] = strings.Join(comp.Argv, " ")
	}
	for name, wants := range map[string][]string{
		"kube-apiserver":          {"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none", "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/16", "--bind-address=127.0.0.1"},
		"kube-controller-manager": {"--node-monitor-grace-period=10s", "--use-service-account-credentials=true", "--allocate-node-cidrs=false", "-node-ipam-controller", "--cluster-signing-cert-file="},
		"kube-scheduler":          {"--leader-elect=false", "--bind-address=127.0.0.1"},
		"etcd":                    {"--listen-client-urls=http://127.0.0.1:32379"},
	} {
		for _, w := range wants {
			if !strings.Contains(byName[name], w) {
				t.Errorf("%s lacks %q: %s", name, w, byName[name])
			}
		}
	}
}

func TestDecodeObjects(t *testing.T) {
	objs, err := DecodeObjects(manifests.MultusRBAC)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "ClusterRole" || objs[1].GetKind() != "ClusterRoleBinding" {
		t.Fatalf("decoded %d objects", len(objs))
	}
	crd, err := DecodeObjects(manifests.NADCRD)
	if err != nil || len(crd) != 1 || crd[0].GetName() != "network-attachment-definitions.k8s.cni.cncf.io" {
		t.Fatalf("NAD CRD: %v %v", crd, err)
	}
	if objs, err := DecodeObjects([]byte("---\n---\n")); err != nil || len(objs) != 0 {
		t.Fatalf("empty documents: %v %v", objs, err)
	}
	if _, err := DecodeObjects([]byte("metadata: {name: x}\n")); err == nil {
		t.Fatal("accepted an object without apiVersion/kind")
	}
}
