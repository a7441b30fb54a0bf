package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestGenerateServesNamesAndChainsToCA(t *testing.T) {
	now := time.Now()
	b, err := Generate([]string{"svc.ns.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check([]string{"svc.ns.svc"}, []net.IP{net.ParseIP("127.0.0.1")}, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Check([]string{"other.ns.svc"}, nil, now, time.Hour); err == nil {
		t.Fatal("certificate accepted for a name it does not cover")
	}
	if err := b.Check(nil, nil, now, 48*time.Hour); err == nil {
		t.Fatal("certificate expiring too soon accepted")
	}
	// A TLS handshake with the CA as the only root succeeds.
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b.CA)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake with generated CA: %v", err)
	}
	conn.Close()
}

func TestEnsureDirReusesValidBundle(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, DNSNames: []string{"a.b.svc"}}
	b1, err := Ensure(context.Background(), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Ensure(context.Background(), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if string(b1.CA) != string(b2.CA) {
		t.Fatal("valid bundle in the directory was replaced")
	}
	// A bundle for other names is replaced.
	o.DNSNames = []string{"c.d.svc"}
	b3, err := Ensure(context.Background(), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if string(b3.CA) == string(b1.CA) {
		t.Fatal("bundle for the wrong names kept")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, CertFile)); string(data) != string(b3.Cert) {
		t.Fatal("directory does not hold the new certificate")
	}
}

func TestEnsureSecretSharedBetweenReplicas(t *testing.T) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	c := fake.NewClientBuilder().WithScheme(s).Build()
	key := types.NamespacedName{Namespace: "kube-system", Name: "spindle-webhook"}
	o1 := Options{Dir: t.TempDir(), Secret: key, DNSNames: []string{"x.kube-system.svc"}}
	o2 := o1
	o2.Dir = t.TempDir()
	b1, err := Ensure(context.Background(), c, o1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Ensure(context.Background(), c, o2)
	if err != nil {
		t.Fatal(err)
	}
	if string(b1.CA) != string(b2.CA) || string(b1.Cert) != string(b2.Cert) {
		t.Fatal("replicas got different certificates")
	}
	var sec corev1.Secret
	if err := c.Get(context.Background(), key, &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeTLS || string(sec.Data[CAFile]) != string(b1.CA) {
		t.Fatalf("secret %v", sec.Type)
	}
}

func TestEnsureTrustsReadOnlyMountedBundle(t *testing.T) {
	dir := t.TempDir()
	mounted, err := Generate([]string{"svc.ns.svc"}, nil, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir, mounted); err != nil {
		t.Fatal(err)
	}
	// Make writing the certificate fail (a directory sits where its
	// temporary file would go); root ignores read-only permissions.
	blocker := filepath.Join(dir, CertFile+".tmp")
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := Ensure(context.Background(), nil, Options{Dir: dir, DNSNames: []string{"other.name"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.CA) != string(mounted.CA) {
		t.Fatal("mounted bundle not used")
	}
	onDisk, err := ReadDir(dir)
	if err != nil || string(onDisk.CA) != string(mounted.CA) || string(onDisk.Key) != string(mounted.Key) {
		t.Fatal("a failed write left a mixed bundle in the directory")
	}
}
