package chart

import (
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"

	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/controllermanager"
)

// agentFlags and controllerFlags register the binaries' flags exactly as
// their mains do.
func agentFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("spindle-agent", flag.ContinueOnError)
	var o agent.Options
	o.BindFlags(fs)
	klog.InitFlags(fs)
	return fs
}

func controllerFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("spindle-controller", flag.ContinueOnError)
	var o controllermanager.Options
	o.AddFlags(fs)
	klog.InitFlags(fs)
	return fs
}

var (
	helpMu    sync.Mutex
	helpFlags = map[string][]string{}
	helpLine  = regexp.MustCompile(`(?m)^\s+-{1,2}([A-Za-z0-9_.-]+)`)
)

// binaryFlags builds a binary and lists the flags its -h prints: the ground
// truth, including flags that imported packages register on the process's
// flag set (e.g. controller-runtime's --kubeconfig).
func binaryFlags(t *testing.T, name string) []string {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if f, ok := helpFlags[name]; ok {
		return f
	}
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 2 after printing
	var flags []string
	for _, m := range helpLine.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("%s -h printed no flags:\n%s", name, out)
	}
	helpFlags[name] = flags
	return flags
}

// exposed is a flag set from values: rendering with set must give want, which
// differs from what the default values render.
type exposed struct {
	set  string
	want string
}

// klogFlags are klog's output plumbing. Logs go to stderr, where the container
// runtime collects them; -v is exposed as agent.logLevel/controller.logLevel
// and the rest stays reachable through agent.extraArgs/controller.extraArgs.
var klogFlags = []string{"add_dir_header", "alsologtostderr", "log_backtrace_at", "log_dir", "log_file",
	"log_file_max_size", "logtostderr", "alsologtostderrthreshold", "legacy_stderr_threshold_behavior", "one_output", "skip_headers", "skip_log_headers", "stderrthreshold", "vmodule"}

// flagPlan says, for every flag of a binary, how the chart treats it:
// exposed through a value, derived by the chart from the release (rendered,
// not a value of its own), or deliberately not rendered.
type flagPlan struct {
	exposed  map[string]exposed
	derived  map[string]string // flag -> what it is derived from
	excluded map[string]string // flag -> why it is not rendered
}

var agentPlan = flagPlan{
	exposed: map[string]exposed{
		"enable-ipv4":               {"ipam.enableIPv4=false,ipam.enableIPv6=true", "false"},
		"enable-ipv6":               {"ipam.enableIPv6=true", "true"},
		"enable-statefulset":        {"ipam.enableStatefulSet=false", "false"},
		"cluster-default-network":   {"ipam.clusterDefaultNetwork=kube-system/calico", "kube-system/calico"},
		"cluster-default-subnet-v4": {"ipam.clusterDefaultSubnet.enabled=true,ipam.clusterDefaultSubnet.ipv4=team-v4", "team-v4"},
		"cluster-default-subnet-v6": {"ipam.clusterDefaultSubnet.enabled=true,ipam.clusterDefaultSubnet.ipv6=team-v6", "team-v6"},
		"endpoint-writes":           {"ipam.endpointWrites=sync", "sync"},
		"endpoint-workers":          {"ipam.endpointWorkers=7", "7"},
		"gc-interval":               {"ipam.gc.nodeInterval=3m", "3m"},
		"conflict-quarantine":       {"ipam.conflictQuarantine=20m", "20m"},
		"socket":                    {"agent.socketDir=/run/spx", "/run/spx/agent.sock"},
		"health-addr":               {"agent.healthPort=6710", ":6710"},
		"metrics-addr":              {"agent.metrics.port=6711", "127.0.0.1:6711"},
		"metrics-secure":            {"metrics.secure=false", "false"},
		"kube-api-qps":              {"agent.kubeAPIQPS=33", "33"},
		"kube-api-burst":            {"agent.kubeAPIBurst=66", "66"},
		"v":                         {"agent.logLevel=4", "4"},
		"log-format":                {"agent.logFormat=json", "json"},
	},
	derived: map[string]string{
		"system-namespace":    "the release namespace (also POD_NAMESPACE)",
		"daemonset":           "the release namespace and the agent DaemonSet's name (with agent.installCNIPlugins)",
		"remove-on-uninstall": "the files agent.installCNIPlugins and multus.install copy to the node",
	},
	excluded: map[string]string{
		"kubeconfig": "for running the agent outside a cluster; the pod uses its ServiceAccount (in-cluster configuration)",
	},
}

var controllerPlan = flagPlan{
	exposed: map[string]exposed{
		"kube-api-qps":                         {"controller.kubeAPIQPS=33", "33"},
		"kube-api-burst":                       {"controller.kubeAPIBurst=66", "66"},
		"metrics-bind-address":                 {"controller.metricsPort=6721", ":6721"},
		"metrics-secure":                       {"metrics.secure=false", "false"},
		"health-probe-bind-address":            {"controller.healthPort=6720", ":6720"},
		"leader-elect":                         {"controller.leaderElection.enabled=false", "false"},
		"leader-election-lease-duration":       {"controller.leaderElection.leaseDuration=31s", "31s"},
		"leader-election-renew-deadline":       {"controller.leaderElection.renewDeadline=21s", "21s"},
		"leader-election-retry-period":         {"controller.leaderElection.retryPeriod=3s", "3s"},
		"graceful-shutdown-timeout":            {"controller.gracefulShutdownTimeout=50s", "50s"},
		"enable-webhooks":                      {"webhook.enabled=false", "false"},
		"webhook-port":                         {"controller.webhookPort=9555", "9555"},
		"webhook-cert-secret":                  {"webhook.certs.source=controller", namespace + "/spindle-webhook-tls"},
		"webhook-patch-cabundle":               {"webhook.patchCABundle=false", "false"},
		"webhook-failure-policy":               {"webhook.failurePolicy=Ignore", "Ignore"},
		"webhook-timeout-seconds":              {"webhook.timeoutSeconds=7", "7"},
		"webhook-configuration-resync":         {"webhook.configurationResync=9m", "9m"},
		"gc-enabled":                           {"ipam.gc.enabled=false", "false"},
		"gc-interval":                          {"ipam.gc.interval=11m", "11m"},
		"gc-terminating-pod-delay":             {"ipam.gc.terminatingPodDelay=45s", "45s"},
		"gc-terminating-pod-on-ready-node":     {"ipam.gc.terminatingPodOnReadyNode=false", "false"},
		"gc-terminating-pod-on-not-ready-node": {"ipam.gc.terminatingPodOnNotReadyNode=false", "false"},
		"enable-statefulset":                   {"ipam.enableStatefulSet=false", "false"},
		"subnet-default-spare-ips":             {"ipam.subnetDefaultSpareIPs=3", "3"},
		"cluster-default-subnet-v4":            {"ipam.clusterDefaultSubnet.enabled=true,ipam.clusterDefaultSubnet.ipv4=team-v4", "team-v4"},
		"cluster-default-subnet-v6":            {"ipam.clusterDefaultSubnet.enabled=true,ipam.clusterDefaultSubnet.ipv6=team-v6", "team-v6"},
		"pool-status-enabled":                  {"controller.poolStatusEnabled=false", "false"},
		"multus-config-enabled":                {"controller.multusConfigEnabled=false", "false"},
		"inline-ranges-enabled":                {"controller.inlineRangesEnabled=false", "false"},
		"coordinator-enabled":                  {"coordinator.statusEnabled=false", "false"},
		"coordinator-create-default":           {"coordinator.createDefault=false", "true"},
		"coordinator-resync":                   {"coordinator.resync=2m", "2m"},
		"system-namespace":                     {"controller.clusterSystemNamespace=kube-admin", "kube-admin"},
		"max-concurrent-reconciles":            {"controller.maxConcurrentReconciles=9", "9"},
		"v":                                    {"controller.logLevel=4", "4"},
		"log-format":                           {"controller.logFormat=json", "json"},
	},
	derived: map[string]string{
		"leader-election-namespace":        "the release namespace",
		"leader-election-id":               "<fullname>-controller, the Lease the Role grants",
		"webhook-cert-dir":                 "the mount of the certificate Secret (or an emptyDir with source controller)",
		"webhook-service-name":             "the chart's controller Service",
		"webhook-service-namespace":        "the release namespace",
		"webhook-service-port":             "443, the Service's webhook port",
		"webhook-mutating-configuration":   "the chart's MutatingWebhookConfiguration",
		"webhook-validating-configuration": "the chart's ValidatingWebhookConfiguration",
	},
	excluded: map[string]string{
		"metrics-addr":                  "deprecated alias of --metrics-bind-address",
		"health-addr":                   "deprecated alias of --health-probe-bind-address",
		"webhook-host":                  "listen address; the chart listens on every address of the pod",
		"webhook-dns-names":             "the chart's certificates cover exactly the Service names the controller derives",
		"webhook-url":                   "for API servers that cannot reach the Service; the chart always uses the Service",
		"webhook-manage-configurations": "the chart owns the webhook configurations; the controller only patches their caBundle",
		"kubeconfig":                    "the pods use their ServiceAccount (in-cluster configuration)",
		"import":                        "one-shot import mode: run by the migration hook Job (templates/migration.yaml, migration.from), never by the Deployment",
		"import-dry-run":                "one-shot import mode, for users previewing an import; never rendered",
	},
}

func init() {
	for _, f := range klogFlags {
		agentPlan.excluded[f] = "klog output plumbing"
		controllerPlan.excluded[f] = "klog output plumbing"
	}
	for _, p := range []*flagPlan{&agentPlan, &controllerPlan} {
		p.excluded["version"] = "prints the version and exits: for users, never for the DaemonSet or Deployment"
	}
}

// TestFlagsReachableFromValues lists every flag the binaries accept and checks
// the chart's plan for it: an exposed flag is rendered and follows its value,
// a derived flag is rendered, an excluded flag is not rendered. A new flag
// without a plan fails the test.
func TestFlagsReachableFromValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		binary, workload, kind, container string
		fs                                *flag.FlagSet
		plan                              flagPlan
	}{
		{"spindle-agent", "spindle-agent", "DaemonSet", "agent", agentFlags(), agentPlan},
		{"spindle-controller", "spindle-controller", "Deployment", "controller", controllerFlags(), controllerPlan},
	} {
		t.Run(tc.binary, func(t *testing.T) {
			all := binaryFlags(t, tc.binary)
			for _, f := range all {
				if tc.fs.Lookup(f) == nil && tc.plan.excluded[f] == "" {
					t.Errorf("%s -h lists --%s, which its options do not register: plan it as excluded with the reason", tc.binary, f)
				}
			}
			planned := map[string]int{}
			for f := range tc.plan.exposed {
				planned[f]++
			}
			for f := range tc.plan.derived {
				planned[f]++
			}
			for f := range tc.plan.excluded {
				planned[f]++
			}
			for _, f := range all {
				switch planned[f] {
				case 0:
					t.Errorf("--%s of %s has no plan: expose it in values.yaml and the settings of templates/_helpers.tpl, or add it to the excluded list with the reason", f, tc.binary)
				case 1:
				default:
					t.Errorf("--%s of %s is planned more than once", f, tc.binary)
				}
				delete(planned, f)
			}
			for f := range planned {
				t.Errorf("the plan names --%s, which %s does not accept", f, tc.binary)
			}

			def := render(t)
			defFlags := def.flags(t, container(t, def.get(t, tc.kind, tc.workload), tc.container))
			for f := range defFlags {
				if !contains(all, f) {
					t.Errorf("the chart passes --%s, which %s does not accept", f, tc.binary)
				}
			}
			for f, why := range tc.plan.excluded {
				if _, ok := defFlags[f]; ok {
					t.Errorf("--%s is rendered but listed as excluded (%s)", f, why)
				}
			}
			for f := range tc.plan.derived {
				if _, ok := defFlags[f]; !ok {
					t.Errorf("derived --%s is not rendered", f)
				}
			}
			names := make([]string, 0, len(tc.plan.exposed))
			for f := range tc.plan.exposed {
				names = append(names, f)
			}
			sort.Strings(names)
			for _, f := range names {
				e := tc.plan.exposed[f]
				t.Run(f, func(t *testing.T) {
					t.Parallel()
					if _, ok := defFlags[f]; !ok {
						t.Errorf("--%s is not rendered with the default values", f)
					}
					m := render(t, e.set)
					got := m.flags(t, container(t, m.get(t, tc.kind, tc.workload), tc.container))
					if got[f] != e.want {
						t.Errorf("with --set %s: --%s=%q, want %q", e.set, f, got[f], e.want)
					}
					if defFlags[f] == e.want {
						t.Errorf("--%s=%q both with the defaults and with --set %s: the test does not show the value reaches the flag", f, e.want, e.set)
					}
				})
			}
		})
	}
}

// TestFlagValuesParse feeds the rendered command lines to the binaries' own
// flag sets: every value must parse (durations, numbers, booleans).
func TestFlagValuesParse(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			m := render(t, sc.set...)
			for _, tc := range []struct {
				kind, name, container string
				fs                    *flag.FlagSet
			}{
				{"DaemonSet", "spindle-agent", "agent", agentFlags()},
				{"Deployment", "spindle-controller", "controller", controllerFlags()},
			} {
				var args []string
				for f, v := range m.flags(t, container(t, m.get(t, tc.kind, tc.name), tc.container)) {
					args = append(args, "--"+f+"="+v)
				}
				tc.fs.SetOutput(new(strings.Builder))
				if err := tc.fs.Parse(args); err != nil {
					t.Errorf("%s %s: %v", tc.kind, tc.name, err)
				}
				if tc.container == "controller" {
					var o controllermanager.Options
					fs := flag.NewFlagSet("spindle-controller", flag.ContinueOnError)
					o.AddFlags(fs)
					klog.InitFlags(fs)
					if err := fs.Parse(args); err == nil {
						if err := o.Validate(); err != nil {
							t.Errorf("the controller refuses the rendered flags: %v", err)
						}
					}
				}
			}
		})
	}
}
