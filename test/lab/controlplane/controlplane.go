// Package controlplane runs the lab's real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler) on loopback and
// applies the lab's own manifests.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/proc"
)

// Deps are the directories of the third-party binaries.
type Deps struct {
	K8s, Etcd, Multus, CNI string
}

// ResolveDeps asks the repository's build-deps script for the binary
// directories (LAB_<NAME>_DIR overrides each) and checks the binaries exist.
func ResolveDeps(ctx context.Context, repoRoot string) (Deps, error) {
	script := filepath.Join(repoRoot, "test/lab/tools/build-deps.sh")
	get := func(name, env string, bins ...string) (string, error) {
		dir := os.Getenv(env)
		if dir == "" {
			out, err := exec.CommandContext(ctx, "bash", script, "path", name).Output()
			if err != nil {
				return "", fmt.Errorf("failed to locate %s binaries with %q: %w", name, script, err)
			}
			dir = strings.TrimSpace(string(out))
		}
		for _, b := range bins {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return "", fmt.Errorf("failed to find %s binary %q in %q (build it with `bash test/lab/tools/build-deps.sh %s`): %w", name, b, dir, name, err)
			}
		}
		return dir, nil
	}
	var d Deps
	var err error
	if d.K8s, err = get("k8s", "LAB_K8S_DIR", "kube-apiserver", "kube-controller-manager", "kube-scheduler"); err != nil {
		return d, err
	}
	if d.Etcd, err = get("etcd", "LAB_ETCD_DIR", "etcd"); err != nil {
		return d, err
	}
	if d.Multus, err = get("multus", "LAB_MULTUS_DIR", "multus"); err != nil {
		return d, err
	}
	if d.CNI, err = get("cni", "LAB_CNI_DIR", "macvlan", "bridge", "ptp", "loopback", "host-local", "static", "tuning"); err != nil {
		return d, err
	}
	return d, nil
}

// Component is one control-plane process.
type Component struct {
	Name  string
	Argv  []string
	Ready func(context.Context) error
}

// Components returns the control plane in start order.
func Components(c config.Config, d Deps) []Component {
	p := func(name string) string { return PKIFile(c, name) }
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(c.EtcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(c.EtcdPeerPort)
	cmKC := KubeconfigFor(c, ControllerManager)
	schedKC := KubeconfigFor(c, Scheduler)
	return []Component{
		{
			Name: "etcd",
			Argv: []string{filepath.Join(d.Etcd, "etcd"),
				"--name=lab", "--data-dir=" + filepath.Join(c.Dir, "etcd"),
				"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
				"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
				"--initial-cluster=lab=" + peerURL,
				"--unsafe-no-fsync", "--quota-backend-bytes=2147483648", "--log-level=warn",
			},
			Ready: func(ctx context.Context) error {
				body, err := get(ctx, plainClient(), etcdURL+"/health")
				if err != nil {
					return err
				}
				if !strings.Contains(body, `"health":"true"`) {
					return fmt.Errorf("etcd health: %s", body)
				}
				return nil
			},
		},
		{
			Name: "kube-apiserver",
			Argv: []string{filepath.Join(d.K8s, "kube-apiserver"),
				"--etcd-servers=" + etcdURL,
				"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
				"--secure-port=" + strconv.Itoa(c.APIServerPort),
				"--endpoint-reconciler-type=none",
				"--tls-cert-file=" + p("apiserver.crt"), "--tls-private-key-file=" + p("apiserver.key"),
				"--client-ca-file=" + p("ca.crt"),
				"--service-account-key-file=" + p("sa.pub"),
				"--service-account-signing-key-file=" + p("sa.key"),
				"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
				"--service-cluster-ip-range=" + c.ServiceCIDR,
				"--authorization-mode=Node,RBAC",
				"--allow-privileged=true",
				"--event-ttl=1h",
				"--profiling=false",
			},
			Ready: func(ctx context.Context) error {
				hc, err := AdminHTTPClient(c)
				if err != nil {
					return err
				}
				_, err = get(ctx, hc, c.APIServerURL()+"/readyz")
				return err
			},
		},
		{
			Name: "kube-controller-manager",
			Argv: []string{filepath.Join(d.K8s, "kube-controller-manager"),
				"--kubeconfig=" + cmKC, "--authentication-kubeconfig=" + cmKC, "--authorization-kubeconfig=" + cmKC,
				"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(c.ControllerManagerPort),
				"--cert-dir=" + filepath.Join(c.PKIDir(), "controller-manager-serving"),
				"--leader-elect=false",
				"--use-service-account-credentials=true",
				"--service-account-private-key-file=" + p("sa.key"),
				"--root-ca-file=" + p("ca.crt"),
				"--cluster-signing-cert-file=" + p("ca.crt"), "--cluster-signing-key-file=" + p("ca.key"),
				"--node-monitor-grace-period=10s", "--node-monitor-period=2s",
				"--allocate-node-cidrs=false", "--configure-cloud-routes=false",
				"--cluster-cidr=" + c.PodCIDR + "," + c.PodCIDRV6,
				"--service-cluster-ip-range=" + c.ServiceCIDR,
				"--controllers=*,-node-ipam-controller",
				"--profiling=false",
			},
			Ready: func(ctx context.Context) error {
				_, err := get(ctx, insecureClient(), "https://127.0.0.1:"+strconv.Itoa(c.ControllerManagerPort)+"/healthz")
				return err
			},
		},
		{
			Name: "kube-scheduler",
			Argv: []string{filepath.Join(d.K8s, "kube-scheduler"),
				"--kubeconfig=" + schedKC, "--authentication-kubeconfig=" + schedKC, "--authorization-kubeconfig=" + schedKC,
				"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(c.SchedulerPort),
				"--cert-dir=" + filepath.Join(c.PKIDir(), "scheduler-serving"),
				"--leader-elect=false",
				"--profiling=false",
			},
			Ready: func(ctx context.Context) error {
				_, err := get(ctx, insecureClient(), "https://127.0.0.1:"+strconv.Itoa(c.SchedulerPort)+"/healthz")
				return err
			},
		},
	}
}

// Ensure starts every control-plane component that is not running and waits
// for each to be healthy before starting the next.
func Ensure(ctx context.Context, c config.Config, d Deps, m proc.Manager) error {
	for _, comp := range Components(c, d) {
		log := filepath.Join(c.LogDir(), comp.Name+".log")
		pid, running := m.Pid(comp.Name)
		if !running {
			var err error
			pid, err = m.Start(proc.Spec{Name: comp.Name, Argv: comp.Argv, Log: log, Dir: c.Dir})
			if err != nil {
				return err
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		err := proc.WaitReady(wctx, comp.Name, pid, log, 250*time.Millisecond, comp.Ready)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// AdminHTTPClient is an HTTP client authenticating as the lab admin.
func AdminHTTPClient(c config.Config) (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(PKIFile(c, "admin.crt"), PKIFile(c, "admin.key"))
	if err != nil {
		return nil, fmt.Errorf("failed to load admin certificate: %w", err)
	}
	caPEM, err := os.ReadFile(PKIFile(c, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("failed to read CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool},
	}}, nil
}

func plainClient() *http.Client { return &http.Client{Timeout: 3 * time.Second} }

func insecureClient() *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		// The components' serving certificates are self-signed; only their
		// health endpoints on loopback are read.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
}

func get(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
