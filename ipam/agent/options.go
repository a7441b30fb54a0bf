package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/logformat"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

// Default listen addresses.
const (
	DefaultMetricsAddr = "127.0.0.1:5711"
	DefaultHealthAddr  = ":5710"
)

// Options are the spindle-agent command line.
type Options struct {
	Config
	Socket        string
	MetricsAddr   string
	MetricsSecure bool
	HealthAddr    string
	Kubeconfig    string
	QPS           float64
	Burst         int
	LogFormat     logformat.Format

	daemonSet, removeOnUninstall string
}

// BindFlags registers the flags; NODE_NAME comes from the environment.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Socket, "socket", nodeapi.DefaultSocket, "unix socket the spiderpool CNI plugin talks to (created with mode 0600)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", DefaultMetricsAddr, "address of the Prometheus /metrics endpoint (empty: off)")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to clients whose bearer token the API server authenticates and authorises to get /metrics (false: plain HTTP, for a loopback address)")
	fs.StringVar(&o.HealthAddr, "health-addr", DefaultHealthAddr, "address of the /healthz and /readyz probes (empty: off)")
	fs.BoolVar(&o.EnableIPv4, "enable-ipv4", true, "allocate an IPv4 address to every interface")
	fs.BoolVar(&o.EnableIPv6, "enable-ipv6", false, "allocate an IPv6 address to every interface")
	fs.BoolVar(&o.EnableStatefulSet, "enable-statefulset", true, "StatefulSet pods keep their addresses when re-created")
	fs.StringVar(&o.ClusterDefaultNetwork, "cluster-default-network", "", "NetworkAttachmentDefinition (namespace/name) Multus uses for eth0, matched against pools' multusName")
	fs.StringVar(&o.DefaultSubnet.IPv4, "cluster-default-subnet-v4", "", "SpiderSubnet that gives eth0 of an application naming no pools, subnets or addresses its IPv4 pool (spindle-controller must name the same)")
	fs.StringVar(&o.DefaultSubnet.IPv6, "cluster-default-subnet-v6", "", "SpiderSubnet that gives eth0 of an application naming no pools, subnets or addresses its IPv6 pool (spindle-controller must name the same)")
	fs.StringVar(&o.SystemNamespace, "system-namespace", envOr("POD_NAMESPACE", "kube-system"), "namespace Spindle runs in; multusName entries without a namespace refer to it")
	fs.StringVar(&o.EndpointWrites, "endpoint-writes", EndpointAsync, "write SpiderEndpoints asynchronously from claims (async) or before ADD returns (sync)")
	fs.IntVar(&o.EndpointWorkers, "endpoint-workers", 1, "background SpiderEndpoint writers (few, so SpiderEndpoint writes never crowd out allocations)")
	fs.DurationVar(&o.GCInterval, "gc-interval", 10*time.Minute, "period of the node-local garbage collection of claims")
	fs.DurationVar(&o.ConflictQuarantine, "conflict-quarantine", DefaultConflictQuarantine, "how long an address released after the coordinator found it used by another machine is not offered again by this agent")
	fs.Float64Var(&o.QPS, "kube-api-qps", 200, "API server requests per second (client-side limit)")
	fs.IntVar(&o.Burst, "kube-api-burst", 400, "API server request burst (client-side limit)")
	logformat.AddFlag(fs, &o.LogFormat)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file of the API server (default $KUBECONFIG; empty: the pod's ServiceAccount)")
	fs.StringVar(&o.daemonSet, "daemonset", "", "namespace/name of the agent's DaemonSet: when it is deleted (helm uninstall), the agent removes the files of --remove-on-uninstall as it stops")
	fs.StringVar(&o.removeOnUninstall, "remove-on-uninstall", "", "comma-separated absolute paths the agent removes when it stops because its DaemonSet (--daemonset) was deleted, such as the CNI plugins the installation copied to the node")
	o.NodeName = os.Getenv("NODE_NAME")
}

// RestConfig loads --kubeconfig, or the in-cluster configuration when unset.
func (o *Options) RestConfig() (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load API server configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
	// No gzip: the API server compresses a streamed watch separately for
	// every watcher that accepts it, so each claim event would be
	// compressed once per agent, and each agent would decompress it. Inside
	// a cluster the bytes are cheaper than that CPU (make bench-e2e,
	// docs/design/pod-path.md).
	cfg.DisableCompression = true
	cfg.UserAgent = "spindle-agent/" + o.NodeName
	return cfg, nil
}

// Run starts the agent and serves until ctx is done.
func Run(ctx context.Context, o *Options, log logr.Logger) error {
	restCfg, err := o.RestConfig()
	if err != nil {
		return err
	}
	o.Logger = log
	uninstall, err := parseUninstall(o.daemonSet, o.removeOnUninstall)
	if err != nil {
		return err
	}
	a, err := New(restCfg, o.Config)
	if err != nil {
		return err
	}
	// Stopped for good (its DaemonSet deleted), the agent removes what the
	// installation put on the node: also when it is stopped before it was
	// ready, as right after its node restarted.
	defer func() {
		if ctx.Err() != nil {
			removeInstalled(uninstall, a.live, log)
		}
	}()
	errc := make(chan error, 3)
	if o.HealthAddr != "" {
		go func() { errc <- a.ServeHealth(ctx, o.HealthAddr) }()
	}
	if o.MetricsAddr != "" {
		go func() { errc <- a.ServeMetrics(ctx, o.MetricsAddr, o.MetricsSecure) }()
	}
	if err := a.Start(ctx); err != nil {
		return err
	}
	log.Info("spindle-agent ready", "node", o.NodeName, "socket", o.Socket)
	go func() { errc <- a.Serve(ctx, o.Socket) }()
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if err == nil {
			err = errors.New("server stopped")
		}
		return err
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// removeInstalled runs u's clean-up as the agent stops, with a deadline of
// its own (the agent's context is done by then), and logs what it did.
func removeInstalled(u Uninstall, c client.Reader, log logr.Logger) {
	stopping, cancel := context.WithTimeout(context.Background(), uninstallTimeout)
	defer cancel()
	removed, err := u.cleanUp(stopping, c)
	if len(removed) > 0 {
		log.Info("the agent's DaemonSet was deleted: removed what the installation put on the node", "daemonSet", u.DaemonSet, "files", removed)
	}
	if err != nil {
		// A stop is not a failure; the files stay, as on any restart.
		log.Error(err, "could not tell whether the agent's DaemonSet was deleted; the installed files stay on the node", "daemonSet", u.DaemonSet)
	}
}
