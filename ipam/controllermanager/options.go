// Package controllermanager assembles spindle-controller: the flags, the
// controller-runtime manager, the webhook server with its certificates and
// configurations, and every controller (pool status, pool finalizer, IP
// garbage collection, SpiderMultusConfig, SpiderCoordinator status).
package controllermanager

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/logformat"
	"github.com/spindle-net/spindle/ipam/migrate"
)

// Options are the command-line settings of spindle-controller.
type Options struct {
	QPS   float64
	Burst int

	MetricsAddr   string
	MetricsSecure bool
	HealthAddr    string

	// Version is the build's version, the version label of
	// spindle_build_info (set by the binary, not a flag).
	Version string

	LeaderElect          bool
	LeaderElectionNS     string
	LeaderElectionID     string
	LeaseDuration        time.Duration
	LeaderRenewDeadline  time.Duration
	LeaderRetryPeriod    time.Duration
	GracefulShutdownTime time.Duration

	EnableWebhooks            bool
	WebhookHost               string
	WebhookPort               int
	WebhookCertDir            string
	WebhookCertSecret         string
	WebhookDNSNames           string
	WebhookURL                string
	WebhookServiceName        string
	WebhookServiceNamespace   string
	WebhookServicePort        int
	WebhookManageConfigs      bool
	WebhookPatchCABundle      bool
	WebhookMutatingName       string
	WebhookValidatingName     string
	WebhookFailurePolicy      string
	WebhookTimeoutSeconds     int
	WebhookConfigRefreshEvery time.Duration

	EnableGC                 bool
	GCInterval               time.Duration
	GCTerminatingDelay       time.Duration
	GCTerminatingOnReady     bool
	GCTerminatingOnNotReady  bool
	EnableStatefulSet        bool
	SubnetDefaultSpareIPs    int
	DefaultSubnetIPv4        string
	DefaultSubnetIPv6        string
	EnablePoolStatus         bool
	EnableMultusConfig       bool
	EnableInlineRanges       bool
	EnableCoordinator        bool
	CoordinatorCreateDefault bool
	CoordinatorResync        time.Duration
	SystemNamespace          string
	MaxConcurrentReconciles  int
	LogFormat                logformat.Format

	// Import, when set, runs the one-shot import of another IPAM's
	// allocations (migrate.FromSpiderpool or migrate.FromWhereabouts)
	// instead of the controllers, and exits.
	Import       string
	ImportDryRun bool
}

// AddFlags registers every flag on fs with its default.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.Float64Var(&o.QPS, "kube-api-qps", 200, "queries per second to the API server")
	fs.IntVar(&o.Burst, "kube-api-burst", 400, "burst of queries to the API server")

	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":5721", "address of the Prometheus /metrics endpoint (\"0\" disables it)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":5721", "deprecated alias of --metrics-bind-address")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to clients whose bearer token the API server authenticates and authorises to get /metrics (false: plain HTTP, for a loopback address)")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":5720", "address of the /healthz and /readyz probes (\"0\" disables them)")
	fs.StringVar(&o.HealthAddr, "health-addr", ":5720", "deprecated alias of --health-probe-bind-address")

	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the controllers only while holding the leader Lease (webhooks are served by every replica)")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "kube-system", "namespace of the leader Lease")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "spindle-controller", "name of the leader Lease")
	fs.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a non-leader waits before taking over an unrenewed Lease")
	fs.DurationVar(&o.LeaderRenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader retries renewing before giving up leadership")
	fs.DurationVar(&o.LeaderRetryPeriod, "leader-election-retry-period", 2*time.Second, "interval between leader election attempts")
	fs.DurationVar(&o.GracefulShutdownTime, "graceful-shutdown-timeout", 30*time.Second, "how long to wait for controllers to stop on shutdown")

	fs.BoolVar(&o.EnableWebhooks, "enable-webhooks", true, "serve the admission webhooks")
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "address the webhook server listens on (empty: all addresses)")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the webhook server")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "spindle-controller", "certs"), "directory holding tls.crt, tls.key and ca.crt; a valid bundle found there is used, otherwise one is generated into it")
	fs.StringVar(&o.WebhookCertSecret, "webhook-cert-secret", "", "namespace/name of a Secret that holds the webhook certificate for every replica; created with a generated bundle when absent (needed with more than one replica)")
	fs.StringVar(&o.WebhookDNSNames, "webhook-dns-names", "", "comma-separated DNS names the serving certificate covers (default: the Service's names, from --webhook-service-name/--webhook-service-namespace)")
	fs.StringVar(&o.WebhookURL, "webhook-url", "", "base URL the API server calls, e.g. https://127.0.0.1:9443; used instead of a Service in the managed configurations (default with --webhook-manage-configurations and no Service: https://<webhook-host>:<webhook-port>)")
	fs.StringVar(&o.WebhookServiceName, "webhook-service-name", "", "Service in front of the webhook server (production)")
	fs.StringVar(&o.WebhookServiceNamespace, "webhook-service-namespace", "kube-system", "namespace of --webhook-service-name")
	fs.IntVar(&o.WebhookServicePort, "webhook-service-port", 443, "port of --webhook-service-name")
	fs.BoolVar(&o.WebhookManageConfigs, "webhook-manage-configurations", false, "create and update the Mutating/ValidatingWebhookConfigurations (instead of only patching the caBundle of existing ones)")
	fs.BoolVar(&o.WebhookPatchCABundle, "webhook-patch-cabundle", true, "patch the caBundle of existing webhook configurations (ignored with --webhook-manage-configurations, which writes them entirely)")
	fs.StringVar(&o.WebhookMutatingName, "webhook-mutating-configuration", "spindle-controller", "name of the MutatingWebhookConfiguration")
	fs.StringVar(&o.WebhookValidatingName, "webhook-validating-configuration", "spindle-controller", "name of the ValidatingWebhookConfiguration")
	fs.StringVar(&o.WebhookFailurePolicy, "webhook-failure-policy", "Fail", "failurePolicy of the managed webhooks: Fail or Ignore")
	fs.IntVar(&o.WebhookTimeoutSeconds, "webhook-timeout-seconds", 10, "timeoutSeconds of the managed webhooks (1-30)")
	fs.DurationVar(&o.WebhookConfigRefreshEvery, "webhook-configuration-resync", 5*time.Minute, "how often the webhook configurations (or their caBundle) are re-asserted")

	fs.BoolVar(&o.EnableGC, "gc-enabled", true, "reclaim addresses of pods that no longer need them")
	fs.DurationVar(&o.GCInterval, "gc-interval", 5*time.Minute, "interval of the full garbage collection pass (0 disables it; events still trigger collection)")
	fs.DurationVar(&o.GCTerminatingDelay, "gc-terminating-pod-delay", 30*time.Second, "extra time after a terminating pod's grace period before its addresses are reclaimed")
	fs.BoolVar(&o.GCTerminatingOnReady, "gc-terminating-pod-on-ready-node", true, "reclaim addresses of pods stuck terminating on Ready nodes")
	fs.BoolVar(&o.GCTerminatingOnNotReady, "gc-terminating-pod-on-not-ready-node", true, "reclaim addresses of pods stuck terminating on NotReady or missing nodes")
	fs.IntVar(&o.SubnetDefaultSpareIPs, "subnet-default-spare-ips", 1, "addresses beyond its replicas that an application's pool carved from a SpiderSubnet gets when its pod template sets no ipam.spidernet.io/ippool-ip-number")
	fs.StringVar(&o.DefaultSubnetIPv4, "cluster-default-subnet-v4", "", "SpiderSubnet that every application naming no pools, subnets or addresses gets an IPv4 pool for eth0 carved from (the agents must name the same)")
	fs.StringVar(&o.DefaultSubnetIPv6, "cluster-default-subnet-v6", "", "SpiderSubnet that every application naming no pools, subnets or addresses gets an IPv6 pool for eth0 carved from (the agents must name the same)")
	fs.BoolVar(&o.EnableStatefulSet, "enable-statefulset", true, "keep the addresses of StatefulSet replicas within their ordinals for the next incarnation (must match the agents' --enable-statefulset)")
	fs.BoolVar(&o.EnablePoolStatus, "pool-status-enabled", true, "keep SpiderIPPool status counters (allocatedIPCount, totalIPCount) current")
	fs.BoolVar(&o.EnableMultusConfig, "multus-config-enabled", true, "generate NetworkAttachmentDefinitions from SpiderMultusConfigs (needs the NetworkAttachmentDefinition CRD)")
	fs.BoolVar(&o.EnableInlineRanges, "inline-ranges-enabled", true, "create the SpiderIPPools of NetworkAttachmentDefinitions whose spiderpool ipam object carries its own ranges (needs the NetworkAttachmentDefinition CRD)")
	fs.BoolVar(&o.EnableCoordinator, "coordinator-enabled", true, "maintain the status of the SpiderCoordinator \"default\"")
	fs.BoolVar(&o.CoordinatorCreateDefault, "coordinator-create-default", true, "create the SpiderCoordinator \"default\" when it is missing")
	fs.DurationVar(&o.CoordinatorResync, "coordinator-resync", time.Minute, "how often the SpiderCoordinator status is rediscovered")
	fs.StringVar(&o.SystemNamespace, "system-namespace", "kube-system", "namespace of kubeadm-config, cilium-config and the kube-controller-manager pods")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "workers per controller")
	logformat.AddFlag(fs, &o.LogFormat)
	fs.StringVar(&o.Import, "import", "", "import the allocations of another IPAM and exit instead of running the controllers: \"spiderpool\" (SpiderIPPool status.allocatedIPs and SpiderEndpoints) or \"whereabouts\" (IPPools and OverlappingRangeIPReservations); see docs/migrate-from-spiderpool.md")
	fs.BoolVar(&o.ImportDryRun, "import-dry-run", false, "with --import: print the report only, write nothing")
}

// Validate checks flag combinations.
func (o *Options) Validate() error {
	switch o.Import {
	case "", migrate.FromSpiderpool, migrate.FromWhereabouts:
	default:
		return fmt.Errorf("invalid --import %q: use %q or %q", o.Import, migrate.FromSpiderpool, migrate.FromWhereabouts)
	}
	if o.ImportDryRun && o.Import == "" {
		return fmt.Errorf("--import-dry-run needs --import=%s or --import=%s", migrate.FromSpiderpool, migrate.FromWhereabouts)
	}
	if o.QPS <= 0 || o.Burst <= 0 {
		return fmt.Errorf("invalid --kube-api-qps %v / --kube-api-burst %d: both must be positive", o.QPS, o.Burst)
	}
	if o.WebhookFailurePolicy != "Fail" && o.WebhookFailurePolicy != "Ignore" {
		return fmt.Errorf("invalid --webhook-failure-policy %q: use Fail or Ignore", o.WebhookFailurePolicy)
	}
	if o.WebhookTimeoutSeconds < 1 || o.WebhookTimeoutSeconds > 30 {
		return fmt.Errorf("invalid --webhook-timeout-seconds %d: use 1 to 30", o.WebhookTimeoutSeconds)
	}
	if o.WebhookCertSecret != "" {
		if _, err := o.certSecret(); err != nil {
			return err
		}
	}
	if o.EnableWebhooks && o.WebhookManageConfigs && o.webhookURL() == "" && o.WebhookServiceName == "" {
		return fmt.Errorf("--webhook-manage-configurations needs --webhook-url, --webhook-host or --webhook-service-name to tell the API server where the webhooks are")
	}
	return nil
}

func (o *Options) certSecret() (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(o.WebhookCertSecret, "/")
	if !ok || ns == "" || name == "" {
		return types.NamespacedName{}, fmt.Errorf("invalid --webhook-cert-secret %q: write namespace/name", o.WebhookCertSecret)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// webhookURL is the base URL for URL-based configurations: --webhook-url, or
// derived from --webhook-host when no Service is given.
func (o *Options) webhookURL() string {
	if o.WebhookURL != "" {
		return o.WebhookURL
	}
	if o.WebhookServiceName == "" && o.WebhookHost != "" {
		return "https://" + net.JoinHostPort(o.WebhookHost, fmt.Sprint(o.WebhookPort))
	}
	return ""
}

// certNames returns the DNS names and IP addresses the serving certificate
// must cover.
func (o *Options) certNames() ([]string, []net.IP) {
	var dns []string
	var ips []net.IP
	add := func(h string) {
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			return
		}
		dns = append(dns, h)
	}
	for _, n := range strings.Split(o.WebhookDNSNames, ",") {
		add(strings.TrimSpace(n))
	}
	if o.WebhookServiceName != "" {
		svc, ns := o.WebhookServiceName, o.WebhookServiceNamespace
		add(svc + "." + ns + ".svc")
		add(svc + "." + ns + ".svc.cluster.local")
		add(svc + "." + ns)
	}
	if u := o.webhookURL(); u != "" {
		host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		host = strings.SplitN(host, "/", 2)[0]
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		add(strings.Trim(host, "[]"))
	}
	if len(dns) == 0 && len(ips) == 0 {
		add("localhost")
		add("127.0.0.1")
	}
	return dns, ips
}
