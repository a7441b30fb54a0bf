// Package selftest checks a running Spindle installation from the outside, as
// a user would: the agent DaemonSet is ready on every node, the validating
// webhook refuses an invalid SpiderIPPool with its own message, and a pod gets
// an address from a pool and gives it back when it is deleted.
//
// Each check prints one line, "PASS <check>: ...", "FAIL <check>: ..." or
// "SKIP <check>: ...". Main returns 1 when a check failed.
package selftest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// What the checks read and write (the chart's test Role and ClusterRole grant
// exactly this; test/chart compares them).
//
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get
// +kubebuilder:rbac:groups=core,resources=pods,verbs=get;list;create;delete
// +kubebuilder:rbac:groups=core,resources=events,verbs=list
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;create;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims,verbs=get;list

// The checks, in the order they run.
const (
	CheckAgents  = "agents"
	CheckWebhook = "webhook"
	CheckAddress = "address"
)

var allChecks = []string{CheckAgents, CheckWebhook, CheckAddress}

// Options are the command-line settings.
type Options struct {
	Kubeconfig string
	Namespace  string
	Checks     []string
	Timeout    time.Duration

	// AgentDaemonSet is "namespace/name" of the agent DaemonSet.
	AgentDaemonSet string

	// Pool names the SpiderIPPool of the address check. With PoolSubnet
	// the check creates it (it must not exist) and deletes it afterwards;
	// without, it must exist.
	Pool        string
	PoolSubnet  string
	PoolIPs     []string
	PoolGateway string
	// Network is the NetworkAttachmentDefinition ("namespace/name" or
	// "name") the test pod attaches as net1; empty tests the pod's default
	// network.
	Network     string
	Image       string
	PullSecrets []string
	Node        string
}

const usage = `Usage: spindle-selftest [flags]      check the installation, one line per check
       spindle-selftest sleep          wait for SIGTERM (the address check's pod)
       spindle-selftest version

Flags:
`

func (o *Options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty uses the pod's ServiceAccount (in-cluster), then $KUBECONFIG and ~/.kube/config")
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace of the address check's pod (default $POD_NAMESPACE)")
	fs.Func("checks", "comma-separated checks to run: agents, webhook, address (default all)", func(s string) error {
		o.Checks = nil
		for _, c := range strings.Split(s, ",") {
			if c = strings.TrimSpace(c); c == "" {
				continue
			}
			if !slices.Contains(allChecks, c) {
				return fmt.Errorf("unknown check %q: use agents, webhook or address", c)
			}
			o.Checks = append(o.Checks, c)
		}
		return nil
	})
	fs.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "how long each check may wait")
	fs.StringVar(&o.AgentDaemonSet, "agent-daemonset", "", "the agent DaemonSet as namespace/name (needed by the agents check)")
	fs.StringVar(&o.Pool, "pool", "", "SpiderIPPool of the address check: created with --pool-subnet, else an existing pool")
	fs.StringVar(&o.PoolSubnet, "pool-subnet", "", "subnet of the pool to create (e.g. 10.6.0.0/16); empty uses the existing pool --pool")
	fs.Func("pool-ips", "comma-separated addresses and ranges of the pool to create (e.g. 10.6.0.240-10.6.0.241)", func(s string) error {
		o.PoolIPs = splitList(s)
		return nil
	})
	fs.StringVar(&o.PoolGateway, "pool-gateway", "", "gateway of the pool to create (optional)")
	fs.StringVar(&o.Network, "network", "", "NetworkAttachmentDefinition (namespace/name) the test pod attaches as net1; empty tests its default network")
	fs.StringVar(&o.Image, "image", "", "image of the test pod, which runs \"spindle-selftest sleep\" (the Spindle image)")
	fs.Func("pull-secrets", "comma-separated image pull Secrets of the test pod", func(s string) error {
		o.PullSecrets = splitList(s)
		return nil
	})
	fs.StringVar(&o.Node, "node", "", "node to run the test pod on (default: any)")
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// validate checks the flags the chosen checks need.
func (o *Options) validate() error {
	if len(o.Checks) == 0 {
		o.Checks = allChecks
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if slices.Contains(o.Checks, CheckAgents) {
		if ns, name, ok := strings.Cut(o.AgentDaemonSet, "/"); !ok || ns == "" || name == "" {
			return fmt.Errorf("--agent-daemonset=%q: the agents check needs the DaemonSet as namespace/name (or leave agents out of --checks)", o.AgentDaemonSet)
		}
	}
	if slices.Contains(o.Checks, CheckAddress) && o.Pool == "" && o.PoolSubnet != "" {
		return fmt.Errorf("--pool-subnet=%s needs --pool: the name of the pool to create", o.PoolSubnet)
	}
	if slices.Contains(o.Checks, CheckAddress) && o.Pool != "" {
		if o.PoolSubnet != "" && len(o.PoolIPs) == 0 {
			return fmt.Errorf("--pool-subnet=%s needs --pool-ips: the addresses the test pool hands out", o.PoolSubnet)
		}
		if o.PoolSubnet == "" && (len(o.PoolIPs) > 0 || o.PoolGateway != "") {
			return errors.New("--pool-ips and --pool-gateway describe a pool to create: give --pool-subnet too")
		}
		if o.Image == "" {
			return errors.New("the address check needs --image: the image of its test pod (the Spindle image)")
		}
		if o.Namespace == "" {
			return errors.New("the address check needs --namespace (or $POD_NAMESPACE): where its test pod runs")
		}
	}
	return nil
}

// Main runs the command and returns its exit code: 0 all checks passed (or
// were skipped), 1 a check failed or the cluster was not reachable, 2 bad
// usage.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "sleep":
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return 0
		case "version":
			fmt.Fprintln(stdout, version.String("spindle-selftest"))
			return 0
		}
	}
	var o Options
	fs := flag.NewFlagSet("spindle-selftest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	o.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "spindle-selftest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "spindle-selftest:", err)
		return 2
	}
	c, err := connect(o.Kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "spindle-selftest:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !Run(ctx, c, &o, stdout) {
		return 1
	}
	return 0
}

// Scheme has every kind the checks use.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v2beta1.AddToScheme(s)
	return s
}

func connect(kubeconfig string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load the cluster configuration (in-cluster, --kubeconfig, $KUBECONFIG or ~/.kube/config): %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create the API client for %s: %w", cfg.Host, err)
	}
	return c, nil
}

// result is the outcome of one check: an error fails it, a skip reason skips it.
type result struct {
	msg  string
	skip bool
}

// Run runs the chosen checks in order, prints one line per check and
// reports whether none failed.
func Run(ctx context.Context, c client.Client, o *Options, out io.Writer) bool {
	ok := true
	for _, name := range allChecks {
		if !slices.Contains(o.Checks, name) {
			continue
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		var r result
		var err error
		switch name {
		case CheckAgents:
			r, err = checkAgents(cctx, c, o.AgentDaemonSet)
		case CheckWebhook:
			r, err = checkWebhook(cctx, c)
		case CheckAddress:
			r, err = checkAddress(cctx, c, o)
		}
		cancel()
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case err != nil:
			ok = false
			fmt.Fprintf(out, "FAIL %s: %v (%s)\n", name, err, took)
		case r.skip:
			fmt.Fprintf(out, "SKIP %s: %s\n", name, r.msg)
		default:
			fmt.Fprintf(out, "PASS %s: %s (%s)\n", name, r.msg, took)
		}
	}
	return ok
}

// poll calls cond every interval until it reports done, returns an error, or
// ctx ends; then it returns ctx's error wrapped with what cond last said.
func poll(ctx context.Context, interval time.Duration, cond func() (done bool, state string, err error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done, state, err := cond()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (timed out)", state)
		case <-t.C:
		}
	}
}
