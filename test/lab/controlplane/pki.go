package controlplane

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/pki"
)

// Identity is a client certificate the lab issues, with the kubeconfig that
// uses it.
type Identity struct {
	File         string // base name of .crt/.key/.kubeconfig in the PKI dir
	CommonName   string
	Organization []string
}

// Identities are the client identities of the control plane and the lab.
var (
	Admin             = Identity{File: "admin", CommonName: "lab-admin", Organization: []string{"system:masters"}}
	ControllerManager = Identity{File: "controller-manager", CommonName: "system:kube-controller-manager"}
	Scheduler         = Identity{File: "scheduler", CommonName: "system:kube-scheduler"}
	Multus            = Identity{File: "multus", CommonName: MultusUser}
)

// MultusUser is the user name Multus authenticates as; RBAC binds it.
const MultusUser = "lab:multus"

// PKIFile returns the path of a file in the lab's PKI directory.
func PKIFile(c config.Config, name string) string { return filepath.Join(c.PKIDir(), name) }

// KubeconfigFor returns the kubeconfig path of an identity.
func KubeconfigFor(c config.Config, id Identity) string {
	if id.File == Admin.File {
		return c.KubeconfigPath()
	}
	return PKIFile(c, id.File+".kubeconfig")
}

// EnsurePKI creates the CA, serving certificate, client certificates,
// kubeconfigs and service-account key unless the CA already exists.
func EnsurePKI(c config.Config) error {
	dir := c.PKIDir()
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
		return nil
	}
	ca, err := pki.NewCA("spindle-lab-ca")
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := pki.WriteFile(dir, "ca.key", caKey); err != nil {
		return err
	}
	srv, err := ca.Issue(pki.Request{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.IP(c.FirstServiceIP().AsSlice())},
		Server:     true,
	})
	if err != nil {
		return err
	}
	if err := writePair(dir, "apiserver", srv); err != nil {
		return err
	}
	for _, id := range []Identity{Admin, ControllerManager, Scheduler, Multus} {
		p, err := ca.Issue(pki.Request{CommonName: id.CommonName, Organization: id.Organization, Client: true})
		if err != nil {
			return err
		}
		if err := writePair(dir, id.File, p); err != nil {
			return err
		}
		kc, err := RenderKubeconfig(c.APIServerURL(), ca.CertPEM(), p)
		if err != nil {
			return err
		}
		if err := config.WriteFileAtomic(KubeconfigFor(c, id), kc, 0o600); err != nil {
			return err
		}
	}
	priv, pub, err := pki.NewSigningKey()
	if err != nil {
		return err
	}
	if err := pki.WriteFile(dir, "sa.key", priv); err != nil {
		return err
	}
	if err := pki.WriteFile(dir, "sa.pub", pub); err != nil {
		return err
	}
	// The CA certificate is written last: its presence marks a complete PKI.
	return pki.WriteFile(dir, "ca.crt", ca.CertPEM())
}

func writePair(dir, name string, p pki.Pair) error {
	if err := pki.WriteFile(dir, name+".crt", p.CertPEM); err != nil {
		return err
	}
	return pki.WriteFile(dir, name+".key", p.KeyPEM)
}

// RenderKubeconfig renders a kubeconfig with embedded credentials.
func RenderKubeconfig(server string, caPEM []byte, client pki.Pair) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["lab"] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM, ClientKeyData: client.KeyPEM}
	cfg.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "lab"}
	cfg.CurrentContext = "lab"
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to render kubeconfig for %q: %w", server, err)
	}
	return out, nil
}
