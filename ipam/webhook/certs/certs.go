// Package certs provides the serving certificate of the controller's admission
// webhook server: a self-signed CA and a leaf certificate signed by it, either
// generated at start, read from a directory, or shared between replicas through
// a Secret.
package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// File names inside the certificate directory (the names a kubernetes.io/tls
// Secret uses, so a mounted Secret works unchanged).
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// Bundle is a serving certificate, its key and the CA that signed it, all PEM.
type Bundle struct {
	CA   []byte
	Cert []byte
	Key  []byte
}

// Generate creates a self-signed CA and a serving certificate for the given DNS
// names and IP addresses, valid from now for validity.
func Generate(dnsNames []string, ips []net.IP, validity time.Duration, now time.Time) (*Bundle, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("failed to generate serving certificate: no DNS name or IP address given")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "spindle-controller-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate serving key: %w", err)
	}
	cn := "spindle-controller"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("failed to create serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to encode serving key: %w", err)
	}
	return &Bundle{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// Check verifies that the bundle is usable for serving the given names at
// time now: the key matches, the certificate chains to the CA and covers every
// name, and it does not expire within minValidity.
func (b *Bundle) Check(dnsNames []string, ips []net.IP, now time.Time, minValidity time.Duration) error {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("failed to load serving key pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("failed to parse serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CA) {
		return errors.New("failed to parse CA bundle: no PEM certificate found")
	}
	if now.Add(minValidity).After(leaf.NotAfter) {
		return fmt.Errorf("serving certificate expires at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range dnsNames {
		if err := leaf.VerifyHostname(n); err != nil {
			return fmt.Errorf("serving certificate does not cover %q: %w", n, err)
		}
	}
	for _, ip := range ips {
		if err := leaf.VerifyHostname(ip.String()); err != nil {
			return fmt.Errorf("serving certificate does not cover %q: %w", ip, err)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("failed to verify serving certificate against the CA bundle: %w", err)
	}
	return nil
}

// ReadDir reads a bundle from dir. It returns os.ErrNotExist (wrapped) when any
// of the three files is missing.
func ReadDir(dir string) (*Bundle, error) {
	var b Bundle
	for name, dst := range map[string]*[]byte{CAFile: &b.CA, CertFile: &b.Cert, KeyFile: &b.Key} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("failed to read %q: %w", filepath.Join(dir, name), err)
		}
		*dst = data
	}
	return &b, nil
}

// WriteDir writes the bundle into dir (created if needed). All three files
// are written to temporary names first and renamed only when every write
// succeeded, so the directory never mixes two bundles and the webhook
// server's certificate watcher never sees a partial file.
func WriteDir(dir string, b *Bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create certificate directory %q: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
	}{{CAFile, b.CA}, {KeyFile, b.Key}, {CertFile, b.Cert}}
	var written []string
	for _, f := range files {
		tmp := filepath.Join(dir, f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			for _, w := range written {
				_ = os.Remove(w)
			}
			return fmt.Errorf("failed to write %q: %w", tmp, err)
		}
		written = append(written, tmp)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("failed to replace %q: %w", path, err)
		}
	}
	return nil
}

// Options says where the bundle comes from.
type Options struct {
	// Dir is where the webhook server reads tls.crt and tls.key.
	Dir string
	// Secret, when its name is set, is the Secret that holds the bundle so that
	// every replica serves the same certificate. It is created when absent.
	Secret types.NamespacedName
	// DNSNames and IPs are the names the certificate must cover.
	DNSNames []string
	IPs      []net.IP
	// Validity of generated certificates.
	Validity time.Duration
	// Now returns the current time (time.Now when nil).
	Now func() time.Time
}

// minValidity is how long a reused certificate must still be valid; a shorter
// one is replaced by a new bundle.
const minValidity = 30 * 24 * time.Hour

// Ensure makes sure Dir holds a usable bundle and returns it. Without a
// Secret an existing, still valid bundle in Dir is kept (so a mounted Secret or
// a bundle written by another tool is used as is) and a new one is generated
// otherwise. With a Secret the Secret is the source: it is read, or created
// with a new bundle when absent or unusable, and then written to Dir.
func Ensure(ctx context.Context, c client.Client, o Options) (*Bundle, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Validity == 0 {
		o.Validity = 10 * 365 * 24 * time.Hour
	}
	if o.Secret.Name == "" {
		existing, rerr := ReadDir(o.Dir)
		if rerr == nil && existing.Check(o.DNSNames, o.IPs, now(), minValidity) == nil {
			return existing, nil
		}
		b, err := Generate(o.DNSNames, o.IPs, o.Validity, now())
		if err != nil {
			return nil, err
		}
		if werr := WriteDir(o.Dir, b); werr != nil {
			// A read-only directory was provided by the installer (a mounted
			// Secret): trust a bundle that is at least valid in itself.
			if rerr == nil && existing.Check(nil, nil, now(), 0) == nil {
				return existing, nil
			}
			return nil, werr
		}
		return b, nil
	}
	b, err := ensureSecret(ctx, c, o, now())
	if err != nil {
		return nil, err
	}
	return b, WriteDir(o.Dir, b)
}

func ensureSecret(ctx context.Context, c client.Client, o Options, now time.Time) (*Bundle, error) {
	for attempt := 0; attempt < 3; attempt++ {
		var s corev1.Secret
		err := c.Get(ctx, o.Secret, &s)
		switch {
		case err == nil:
			b := &Bundle{CA: s.Data[CAFile], Cert: s.Data[CertFile], Key: s.Data[KeyFile]}
			if b.Check(o.DNSNames, o.IPs, now, minValidity) == nil {
				return b, nil
			}
			nb, gerr := Generate(o.DNSNames, o.IPs, o.Validity, now)
			if gerr != nil {
				return nil, gerr
			}
			s.Data = map[string][]byte{CAFile: nb.CA, CertFile: nb.Cert, KeyFile: nb.Key}
			s.Type = corev1.SecretTypeTLS
			if uerr := c.Update(ctx, &s); uerr != nil {
				if apierrors.IsConflict(uerr) {
					continue // another replica replaced it first: use theirs
				}
				return nil, fmt.Errorf("failed to update secret %q: %w", o.Secret, uerr)
			}
			return nb, nil
		case apierrors.IsNotFound(err):
			nb, gerr := Generate(o.DNSNames, o.IPs, o.Validity, now)
			if gerr != nil {
				return nil, gerr
			}
			s = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: o.Secret.Namespace, Name: o.Secret.Name},
				Type:       corev1.SecretTypeTLS,
				Data:       map[string][]byte{CAFile: nb.CA, CertFile: nb.Cert, KeyFile: nb.Key},
			}
			if cerr := c.Create(ctx, &s); cerr != nil {
				if apierrors.IsAlreadyExists(cerr) {
					continue // another replica created it first: use theirs
				}
				return nil, fmt.Errorf("failed to create secret %q: %w", o.Secret, cerr)
			}
			return nb, nil
		default:
			return nil, fmt.Errorf("failed to get secret %q: %w", o.Secret, err)
		}
	}
	return nil, fmt.Errorf("failed to settle secret %q: it kept changing under us", o.Secret)
}
