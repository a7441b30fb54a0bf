package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/forward"
	"github.com/spindle-net/spindle/test/lab/proc"
	"github.com/spindle-net/spindle/test/lab/shim"
	"github.com/spindle-net/spindle/test/lab/topology"
)

const usage = `lab: a Kubernetes cluster on one machine with simulated nodes.

Usage:
  lab up [--nodes N] [--node-daemon NAME=PATH[,ARG...]]... [--cluster-daemon NAME=PATH[,ARG...]]...
         [--no-daemons] [--cni-bin DIR]... [--prefix P] [--apiserver-port PORT] [--etcd-port PORT]
         [--controller-manager-port PORT] [--scheduler-port PORT] [--max-pods N] [--cni-workers N]
  lab down
  lab status
  lab exec NAMESPACE/POD -- CMD [ARG...]
  lab node stop|start NODE
  lab node exec NODE -- CMD [ARG...]
  lab node env NODE [KEY=VALUE...]
  lab kill NAME...
  lab daemons restart [--with NAME=ARG[,ARG...]]... | stop
  lab install-cni DIR
Global flag (before the command): --dir DIR (default: <repo>/_lab, or $LAB_DIR)
`

// Main runs the lab command line and returns the exit status.
func Main(args []string) int {
	global := flag.NewFlagSet("lab", flag.ContinueOnError)
	global.SetOutput(os.Stderr)
	global.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	dir := global.String("dir", os.Getenv("LAB_DIR"), "lab directory")
	if err := global.Parse(args); err != nil {
		return 2
	}
	rest := global.Args()
	if len(rest) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	labDir, repo, err := resolveDir(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "up", "down", "node", "daemons", "install-cni", "kill":
		if !(cmd == "node" && len(cargs) > 0 && cargs[0] == "exec") {
			unlock, err := lock(ctx, labDir, 10*time.Minute)
			if err != nil {
				fmt.Fprintln(os.Stderr, "lab:", err)
				return 1
			}
			defer unlock()
		}
	}
	switch cmd {
	case "up":
		err = cmdUp(ctx, labDir, repo, cargs)
	case "down":
		err = cmdDown(ctx, labDir, repo)
	case "status":
		err = cmdStatus(labDir)
	case "exec":
		err = cmdExec(labDir, cargs)
	case "node":
		err = cmdNode(ctx, labDir, cargs)
	case "daemons":
		err = cmdDaemons(ctx, labDir, cargs)
	case "install-cni":
		err = cmdInstallCNI(labDir, cargs)
	case "kill":
		err = cmdKill(labDir, cargs)
	case "shim":
		err = cmdShim(ctx, labDir, cargs)
	case "forward":
		err = cmdForward(ctx, labDir, cargs)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "lab: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 1
	}
	return 0
}

type exitError struct{ code int }

func (e *exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// resolveDir finds the lab directory: the flag, else <repo>/_lab where repo
// is the nearest ancestor of the working directory (or of the executable)
// holding go.mod.
func resolveDir(flagDir string) (labDir, repo string, err error) {
	findRepo := func(start string) string {
		for d := start; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				if _, err := os.Stat(filepath.Join(d, "test/lab/tools/build-deps.sh")); err == nil {
					return d
				}
			}
			if d == "/" {
				return ""
			}
		}
	}
	wd, _ := os.Getwd()
	repo = findRepo(wd)
	if repo == "" {
		if exe, err := os.Executable(); err == nil {
			repo = findRepo(filepath.Dir(exe))
		}
	}
	if flagDir != "" {
		labDir, err = filepath.Abs(flagDir)
		if err != nil {
			return "", "", err
		}
		if repo == "" {
			// A lab directory inside the repository names it.
			repo = findRepo(filepath.Dir(labDir))
		}
	}
	if repo == "" {
		if st, err := config.LoadState(labDir); err == nil {
			repo = st.Config.RepoRoot
		}
	}
	if repo == "" {
		return "", "", fmt.Errorf("failed to find the repository (a directory with go.mod and test/lab/tools/build-deps.sh) above %q", wd)
	}
	if labDir == "" {
		labDir = filepath.Join(repo, "_lab")
	}
	return labDir, repo, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func cmdUp(ctx context.Context, labDir, repo string, args []string) error {
	cfg := config.Default(repo)
	cfg.Dir = labDir
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	nodes := fs.Int("nodes", envInt("LAB_NODES_COUNT", cfg.Nodes), "number of nodes")
	prefix := fs.String("prefix", envOr("LAB_PREFIX", cfg.Prefix), "prefix of every network namespace")
	fs.IntVar(&cfg.MaxPods, "max-pods", envInt("LAB_MAX_PODS", cfg.MaxPods), "pod capacity of every node")
	fs.IntVar(&cfg.CNIWorkers, "cni-workers", envInt("LAB_CNI_WORKERS", cfg.CNIWorkers), "pods each node sets up or tears down at once")
	fs.IntVar(&cfg.APIServerPort, "apiserver-port", envInt("LAB_APISERVER_PORT", cfg.APIServerPort), "API server port on 127.0.0.1")
	fs.IntVar(&cfg.EtcdPort, "etcd-port", envInt("LAB_ETCD_PORT", cfg.EtcdPort), "etcd client port (peer port is +1)")
	fs.IntVar(&cfg.ControllerManagerPort, "controller-manager-port", envInt("LAB_CONTROLLER_MANAGER_PORT", cfg.ControllerManagerPort), "controller-manager port")
	fs.IntVar(&cfg.SchedulerPort, "scheduler-port", envInt("LAB_SCHEDULER_PORT", cfg.SchedulerPort), "scheduler port")
	var nodeDaemons, clusterDaemons, cniDirs multiFlag
	fs.Var(&nodeDaemons, "node-daemon", "NAME=PATH[,ARG...] run on every node (repeatable)")
	fs.Var(&clusterDaemons, "cluster-daemon", "NAME=PATH[,ARG...] run once (repeatable)")
	fs.Var(&cniDirs, "cni-bin", "directory whose executables are installed as CNI plugins on every node (repeatable)")
	fs.Bool("no-daemons", false, "run no daemons (clears the recorded set)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2}
	}
	cfg.Nodes, cfg.Prefix = *nodes, *prefix
	cfg.EtcdPeerPort = cfg.EtcdPort + 1
	opts := UpOptions{Config: cfg}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "nodes":
			opts.NodesSet = true
		case "max-pods":
			opts.MaxPodsSet = true
		case "cni-workers":
			opts.CNIWorkersSet = true
		case "node-daemon", "cluster-daemon", "no-daemons":
			opts.DaemonsSet = true
		}
	})
	wd, _ := os.Getwd()
	for _, s := range nodeDaemons {
		d, err := config.ParseDaemonSpec(s, wd)
		if err != nil {
			return err
		}
		opts.NodeDaemons = append(opts.NodeDaemons, d)
	}
	for _, s := range clusterDaemons {
		d, err := config.ParseDaemonSpec(s, wd)
		if err != nil {
			return err
		}
		opts.ClusterDaemons = append(opts.ClusterDaemons, d)
	}
	for _, d := range cniDirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		opts.CNIDirs = append(opts.CNIDirs, abs)
	}
	return Up(ctx, opts, os.Stdout)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func loadLab(labDir string) (*Lab, error) {
	st, err := config.LoadState(labDir)
	if err != nil {
		return nil, err
	}
	return newLab(st, os.Stdout)
}

// cmdDown stops everything, removes every namespace and mount, deletes the
// lab state (logs are kept) and verifies nothing is left.
func cmdDown(ctx context.Context, labDir, repo string) error {
	st, err := config.LoadState(labDir)
	if err != nil {
		st = config.State{Config: config.Default(repo)}
		st.Config.Dir = labDir
		if p := os.Getenv("LAB_PREFIX"); p != "" {
			st.Config.Prefix = p
		}
	}
	l, err := newLab(st, os.Stdout)
	if err != nil {
		return err
	}
	c := l.cfg()
	start := time.Now()
	// Daemons first, then nodes, then the control plane in reverse order.
	names := l.Procs.Names()
	rank := func(n string) int {
		switch {
		case strings.HasPrefix(n, daemonPrefix):
			return 0
		case strings.HasPrefix(n, "shim-"):
			return 1
		case strings.HasPrefix(n, "forward-"):
			return 2
		case n == "kube-scheduler", n == "kube-controller-manager":
			return 3
		case n == "kube-apiserver":
			return 4
		case n == "etcd":
			return 5
		default:
			return 6
		}
	}
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	var problems []string
	for _, n := range names {
		if err := l.Procs.Stop(n, 10*time.Second); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, pid := range proc.FindMarked(c.Dir) {
		if err := proc.Kill(pid, 5*time.Second); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for _, err := range topology.Teardown(ctx, c) {
		problems = append(problems, err.Error())
	}
	entries, _ := os.ReadDir(c.Dir)
	for _, e := range entries {
		if e.Name() == "logs" || e.Name() == lockName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.Dir, e.Name())); err != nil {
			problems = append(problems, err.Error())
		}
	}
	var left []string
	for _, pid := range proc.FindMarked(c.Dir) {
		left = append(left, fmt.Sprintf("process %d: %s", pid, proc.Cmdline(pid)))
	}
	left = append(left, topology.Leftovers(ctx, c)...)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, "lab: down:", p)
	}
	if len(left) > 0 {
		fmt.Fprintln(os.Stderr, "lab: down: left behind:")
		for _, x := range left {
			fmt.Fprintln(os.Stderr, "  "+x)
		}
		return &exitError{1}
	}
	fmt.Printf("lab: down in %s; no process, netns, link or mount left (logs kept in %s)\n", time.Since(start).Round(time.Millisecond), c.LogDir())
	return nil
}

func cmdStatus(labDir string) error {
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	names := l.Procs.Names()
	sort.Strings(names)
	for _, n := range names {
		if pid, ok := l.Procs.Pid(n); ok {
			fmt.Printf("%-40s running (pid %d)\n", n, pid)
		} else {
			fmt.Printf("%-40s not running\n", n)
		}
	}
	for _, ns := range topology.ListNetns(l.cfg().Prefix + "-") {
		fmt.Printf("netns %s\n", ns)
	}
	return nil
}

// podRecord finds the shim's record of a pod on any node.
// podRecord finds the Running sandbox of pod namespace/name. While a pod is
// re-created under the same name, the old incarnation's sandbox may still be
// there: then the one whose UID the API server reports (liveUID) wins.
func podRecord(c config.Config, namespace, name string, liveUID func() (string, error)) (netns, node string, err error) {
	type match struct{ netns, node, uid string }
	var found []match
	for _, n := range c.NodeNames() {
		files, _ := filepath.Glob(filepath.Join(c.NodePodsDir(n), "*.json"))
		for _, f := range files {
			data, rerr := os.ReadFile(f)
			if rerr != nil {
				continue
			}
			var st struct {
				Namespace, Name, Netns, UID string
				Ready                       bool
			}
			if jerr := json.Unmarshal(data, &st); jerr != nil {
				continue
			}
			if st.Namespace == namespace && st.Name == name && st.Ready {
				found = append(found, match{st.Netns, n, st.UID})
			}
		}
	}
	switch {
	case len(found) == 1:
		return found[0].netns, found[0].node, nil
	case len(found) > 1:
		uid, uerr := liveUID()
		if uerr != nil {
			return "", "", fmt.Errorf("failed to tell the sandboxes of pod %s/%s apart: %w", namespace, name, uerr)
		}
		for _, m := range found {
			if m.uid == uid {
				return m.netns, m.node, nil
			}
		}
	}
	return "", "", fmt.Errorf("failed to find pod %s/%s on any lab node: it is not Running (or not yet)", namespace, name)
}

func splitCommand(args []string) (target string, cmd []string, err error) {
	if len(args) < 3 || args[1] != "--" {
		return "", nil, fmt.Errorf("want TARGET -- CMD [ARG...]")
	}
	return args[0], args[2:], nil
}

// cmdExec replaces the lab process with CMD inside the pod's network
// namespace, so the command's exit status is the lab's.
func cmdExec(labDir string, args []string) error {
	target, cmd, err := splitCommand(args)
	if err != nil {
		return fmt.Errorf("failed to parse exec arguments: %w (usage: lab exec NAMESPACE/POD -- CMD...)", err)
	}
	ns, name, ok := strings.Cut(target, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("failed to parse pod %q: want NAMESPACE/POD", target)
	}
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	netns, _, err := podRecord(l.cfg(), ns, name, func() (string, error) {
		cs, err := l.restConfigClient()
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("failed to get pod %s/%s: %w", ns, name, err)
		}
		return string(p.UID), nil
	})
	if err != nil {
		return err
	}
	return execIn([]string{"--net=" + topology.NetnsPath(netns)}, cmd)
}

func execIn(nsArgs []string, cmd []string) error {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return err
	}
	argv := append(append([]string{"nsenter"}, nsArgs...), "--")
	argv = append(argv, cmd...)
	return syscall.Exec(nsenter, argv, os.Environ())
}

func cmdNode(ctx context.Context, labDir string, args []string) error {
	if len(args) < 2 {
		return errors.New("usage: lab node stop|start NODE | lab node exec NODE -- CMD | lab node env NODE [KEY=VALUE...]")
	}
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	c := l.cfg()
	node := args[1]
	if _, ok := c.NodeIndex(node); !ok {
		return fmt.Errorf("failed to find node %q: lab nodes are %s", node, strings.Join(c.NodeNames(), ", "))
	}
	switch args[0] {
	case "stop":
		if err := l.Procs.Stop(shimName(node), 10*time.Second); err != nil {
			return err
		}
		l.logf("stopped the shim of %s (heartbeats stop; pods keep their namespaces)", node)
		return nil
	case "start":
		if err := l.ensureShim(node); err != nil {
			return err
		}
		if err := l.waitNodesReadyOnly(ctx, []string{node}); err != nil {
			return err
		}
		l.logf("%s is Ready", node)
		return nil
	case "env":
		env, err := config.ParseEnvAssignments(args[2:])
		if err != nil {
			return err
		}
		if l.State.NodeEnv == nil {
			l.State.NodeEnv = map[string][]string{}
		}
		if len(env) == 0 {
			delete(l.State.NodeEnv, node)
		} else {
			l.State.NodeEnv[node] = env
		}
		if err := l.State.Save(); err != nil {
			return err
		}
		l.logf("daemons of %s start with %q from their next start on", node, env)
		return nil
	case "exec":
		_, cmd, err := splitCommand(args[1:])
		if err != nil {
			return fmt.Errorf("failed to parse node exec arguments: %w", err)
		}
		holder, ok := l.Procs.Pid(shim.HolderName(node))
		if !ok {
			return fmt.Errorf("failed to enter node %q: its mount namespace holder is not running", node)
		}
		return execIn([]string{"--mount=/proc/" + strconv.Itoa(holder) + "/ns/mnt", "--net=" + topology.NetnsPath(c.NodeNetns(node)), "--wd=" + c.RepoRoot}, cmd)
	default:
		return fmt.Errorf("unknown node command %q (stop, start, exec, env)", args[0])
	}
}

func (l *Lab) waitNodesReadyOnly(ctx context.Context, nodes []string) error {
	cs, err := l.restConfigClient()
	if err != nil {
		return err
	}
	return l.waitReady(ctx, cs, nodes, 60*time.Second)
}

func cmdDaemons(ctx context.Context, labDir string, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: lab daemons restart [--with NAME=ARG[,ARG...]]... | stop")
	}
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "restart":
		fs := flag.NewFlagSet("daemons restart", flag.ContinueOnError)
		var with []string
		fs.Func("with", "NAME=ARG[,ARG...]: extra arguments of daemon NAME for this start only (repeatable)", func(v string) error {
			with = append(with, v)
			return nil
		})
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("lab daemons restart: unexpected argument %q", fs.Arg(0))
		}
		if l.ExtraArgs, err = parseExtraArgs(with, l.State); err != nil {
			return err
		}
		if err := l.installCNIAll(); err != nil {
			return err
		}
		return l.ensureDaemons(ctx, true)
	case "stop":
		if len(args) > 1 {
			return fmt.Errorf("lab daemons stop: unexpected argument %q", args[1])
		}
		for _, n := range l.Procs.Names() {
			if strings.HasPrefix(n, daemonPrefix) {
				if err := l.Procs.Stop(n, 10*time.Second); err != nil {
					return err
				}
			}
		}
		return nil
	default:
		return fmt.Errorf("unknown daemons command %q (restart, stop)", args[0])
	}
}

// parseExtraArgs reads --with values (NAME=ARG[,ARG...]) of daemons the
// lab runs.
func parseExtraArgs(with []string, st config.State) (map[string][]string, error) {
	known := map[string]bool{}
	for _, d := range append(slices.Clone(st.NodeDaemons), st.ClusterDaemons...) {
		known[d.Name] = true
	}
	out := map[string][]string{}
	for _, w := range with {
		name, args, ok := strings.Cut(w, "=")
		if !ok || args == "" {
			return nil, fmt.Errorf("failed to parse --with %q: want NAME=ARG[,ARG...]", w)
		}
		if !known[name] {
			return nil, fmt.Errorf("failed to parse --with %q: the lab runs no daemon %q (run `lab status`)", w, name)
		}
		out[name] = append(out[name], strings.Split(args, ",")...)
	}
	return out, nil
}

func (l *Lab) installCNIAll() error {
	for _, node := range l.cfg().NodeNames() {
		if err := l.installExtraCNI(l.cfg().NodeFS(node, "/opt/cni/bin")); err != nil {
			return err
		}
	}
	return nil
}

func cmdInstallCNI(labDir string, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: lab install-cni DIR")
	}
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	var names []string
	for _, node := range l.cfg().NodeNames() {
		if names, err = installExecutables(dir, l.cfg().NodeFS(node, "/opt/cni/bin")); err != nil {
			return err
		}
	}
	found := false
	for _, d := range l.State.CNIDirs {
		found = found || d == dir
	}
	if !found {
		l.State.CNIDirs = append(l.State.CNIDirs, dir)
		if err := l.State.Save(); err != nil {
			return err
		}
	}
	l.logf("installed %s on %d nodes", strings.Join(names, ", "), l.cfg().Nodes)
	return nil
}

func cmdShim(ctx context.Context, labDir string, args []string) error {
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	node := fs.String("node", "", "node to serve")
	fs.String("dir", "", "lab directory (set by up)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2}
	}
	st, err := config.LoadState(labDirFromFlags(fs, labDir))
	if err != nil {
		return err
	}
	return shim.Run(ctx, st.Config, *node)
}

func labDirFromFlags(fs *flag.FlagSet, def string) string {
	if f := fs.Lookup("dir"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return def
}

func cmdForward(ctx context.Context, labDir string, args []string) error {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	node := fs.String("node", "", "node whose network namespace gets the listener")
	ready := fs.String("ready-file", "", "file created once listening")
	fs.String("dir", "", "lab directory (set by up)")
	if err := fs.Parse(args); err != nil {
		return &exitError{2}
	}
	st, err := config.LoadState(labDirFromFlags(fs, labDir))
	if err != nil {
		return err
	}
	c := st.Config
	if _, ok := c.NodeIndex(*node); !ok {
		return fmt.Errorf("failed to forward: %q is not a lab node", *node)
	}
	addr := "127.0.0.1:" + strconv.Itoa(c.APIServerPort)
	ln, err := forward.ListenInNetns(topology.NetnsPath(c.NodeNetns(*node)), addr)
	if err != nil {
		return err
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte("ok\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "forwarding %s in %s to %s\n", addr, c.NodeNetns(*node), addr)
	return forward.Serve(ctx, ln, addr)
}

// cmdKill sends SIGKILL to the named lab processes (names as `lab status`
// lists them), as a crash would; `lab up` starts them again.
func cmdKill(labDir string, names []string) error {
	l, err := loadLab(labDir)
	if err != nil {
		return err
	}
	pids, err := killTargets(l.Procs.Names(), l.Procs.Pid, names)
	if err != nil {
		return err
	}
	for i, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("failed to kill %s (pid %d): %w", names[i], pid, err)
		}
		l.logf("killed %s (pid %d)", names[i], pid)
	}
	return nil
}

// killTargets resolves process names to running pids, refusing unknown
// names and processes that are not running.
func killTargets(known []string, pid func(string) (int, bool), names []string) ([]int, error) {
	if len(names) == 0 {
		return nil, errors.New("usage: lab kill NAME... (names as `lab status` lists them)")
	}
	var out []int
	for _, n := range names {
		if !slices.Contains(known, n) {
			sorted := slices.Sorted(slices.Values(known))
			return nil, fmt.Errorf("failed to kill %q: the lab has no such process (it has %s)", n, strings.Join(sorted, ", "))
		}
		p, ok := pid(n)
		if !ok {
			return nil, fmt.Errorf("failed to kill %q: it is not running (run `lab up` to start it)", n)
		}
		out = append(out, p)
	}
	return out, nil
}
