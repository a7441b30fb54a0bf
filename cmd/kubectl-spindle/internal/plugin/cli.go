// Package plugin implements kubectl-spindle, the kubectl plugin for
// operators of Spindle. The subcommands read the cluster through a
// controller-runtime client; what they compute from the objects they read
// (pool usage, address holders, selection explanations, consistency
// findings) is pure and tested without a cluster.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/cmd/internal/version"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

const usage = `kubectl spindle: look into Spindle's IP address management.

Usage:
  kubectl spindle pools   [--node N] [-n NS] [-o wide|json|yaml]
  kubectl spindle ips     [--pool P | --pod NS/NAME | --node N] [-o wide|json|yaml]
  kubectl spindle why     NS/POD | -f pod.yaml [--node N] [--interface IF]... [-o json|yaml]
  kubectl spindle check   [--grace 2m] [-o json|yaml|FILE.json]
  kubectl spindle release --ip X [--ip Y]... | --from-report FILE.json [--force]
  kubectl spindle version

Cluster flags (every subcommand): --kubeconfig FILE, --context NAME, -n/--namespace NS.
Settings of spindle-agent (why): read from the ConfigMap of --spindle-namespace
(default kube-system); --enable-ipv4, --enable-ipv6, --cluster-default-network,
--cluster-default-subnet-v4/-v6 and --system-namespace override it.

Exit status: 0 nothing wrong, 1 findings or a refusal, 2 bad usage.
Run "kubectl spindle SUBCOMMAND --help" for a subcommand's flags.
`

// Scheme has every kind the plugin reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v2beta1.AddToScheme(s)
	_ = nadv1.AddToScheme(s)
	return s
}

// Env is what a command runs with. Tests fill Client (a fake) and Now.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Client talks to the cluster; built from the kubeconfig flags when nil.
	Client client.Client
	// Namespace is -n, else the kubeconfig context's namespace.
	Namespace string
	// NamespaceSet: -n was given.
	NamespaceSet bool
	// User is the operator's name for Events (best effort).
	User string
	Now  func() time.Time

	kube kubeFlags
}

type kubeFlags struct {
	kubeconfig, context, namespace string
}

func (k *kubeFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", k.kubeconfig, "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context to use")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "namespace (default: the context's)")
}

// connect builds the client from the kubeconfig flags, like kubectl.
func (e *Env) connect() error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = e.kube.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: e.kube.context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	ns, _, err := cc.Namespace()
	if err != nil {
		return fmt.Errorf("failed to read the namespace of the kubeconfig context: %w", err)
	}
	if e.Namespace == "" {
		e.Namespace = ns
	}
	if e.Client != nil {
		return nil
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("failed to load the kubeconfig (--kubeconfig, $KUBECONFIG or ~/.kube/config; --context): %w", err)
	}
	cfg.UserAgent = "kubectl-spindle/" + version.Version
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("failed to create a client for %s: %w", cfg.Host, err)
	}
	e.Client = c
	return nil
}

// Main runs the plugin and returns its exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(context.Background(), &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}, args)
}

// Run runs one command line with env and returns the exit status.
func Run(ctx context.Context, env *Env, args []string) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	err := run(ctx, env, args)
	if err == nil {
		return ExitOK
	}
	var xe *exitError
	if errors.As(err, &xe) {
		if xe.msg != "" {
			fmt.Fprintln(env.Stderr, "error: "+xe.msg)
		}
		if xe.code == ExitUsage {
			fmt.Fprintln(env.Stderr, `Run "kubectl spindle --help" for usage.`)
		}
		return xe.code
	}
	fmt.Fprintln(env.Stderr, "error: "+err.Error())
	return ExitFindings
}

type command struct {
	name string
	help string
	bind func(fs *pflag.FlagSet)
	run  func(ctx context.Context, env *Env, fs *pflag.FlagSet, args []string) error
}

// valueFlags are the flags that may come before the subcommand and take
// a value as the next argument.
var valueFlags = map[string]bool{"--kubeconfig": true, "--context": true, "-n": true, "--namespace": true}

// SplitSubcommand finds the subcommand among args: the first argument that
// is not a flag or a flag's value, so cluster flags may come first
// (kubectl spindle --context prod pools). It returns "" when there is none.
func SplitSubcommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return "", args
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if valueFlags[a] {
				i++ // its value
			}
		default:
			rest := append(append([]string{}, args[:i]...), args[i+1:]...)
			return a, rest
		}
	}
	return "", args
}

func run(ctx context.Context, env *Env, args []string) error {
	sub, rest := SplitSubcommand(args)
	if sub == "" || sub == "help" {
		fmt.Fprint(env.Stdout, usage)
		for _, a := range args {
			if a == "-h" || a == "--help" || a == "help" {
				return nil
			}
		}
		return &exitError{code: ExitUsage}
	}
	args = append([]string{sub}, rest...)
	if args[0] == "version" {
		fmt.Fprintln(env.Stdout, version.String("kubectl-spindle"))
		return nil
	}
	cmds := commands()
	cmd, ok := cmds[args[0]]
	if !ok {
		return usageErr("unknown subcommand %q; want one of pools, ips, why, check, release, version", args[0])
	}
	fs := pflag.NewFlagSet("kubectl spindle "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env.kube.bind(fs)
	cmd.bind(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(env.Stdout, "%s\n\nFlags:\n%s", cmd.help, fs.FlagUsages())
			return nil
		}
		return usageErr("%s: %v", cmd.name, err)
	}
	if env.kube.namespace != "" {
		env.Namespace, env.NamespaceSet = env.kube.namespace, true
	}
	return cmd.run(ctx, env, fs, fs.Args())
}

func commands() map[string]*command {
	out := map[string]*command{}
	for _, c := range []*command{poolsCommand(), ipsCommand(), whyCommand(), checkCommand(), releaseCommand()} {
		out[c.name] = c
	}
	return out
}

// noArgs refuses positional arguments.
func noArgs(name string, args []string) error {
	if len(args) > 0 {
		return usageErr("%s takes no arguments, got %s", name, strings.Join(args, " "))
	}
	return nil
}
