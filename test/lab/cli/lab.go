// Package cli implements the `lab` command: it brings the lab up and down,
// manages its node shims and daemons, and runs commands inside pods and
// nodes.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spindle-net/spindle/test/lab/config"
	"github.com/spindle-net/spindle/test/lab/controlplane"
	"github.com/spindle-net/spindle/test/lab/manifests"
	"github.com/spindle-net/spindle/test/lab/proc"
	"github.com/spindle-net/spindle/test/lab/shim"
	"github.com/spindle-net/spindle/test/lab/topology"
)

// Lab is a lab directory and its persisted state.
type Lab struct {
	State config.State
	Procs proc.Manager
	Out   io.Writer
	// Self is the lab executable, re-run for shims and forwarders.
	Self string
	// ExtraArgs are appended to the recorded arguments of the named daemons
	// when they start now; they are not recorded, so the next restart
	// drops them.
	ExtraArgs map[string][]string
}

func newLab(st config.State, out io.Writer) (*Lab, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("failed to locate the lab executable: %w", err)
	}
	return &Lab{
		State: st,
		Procs: proc.Manager{LabDir: st.Config.Dir, PidDir: st.Config.PidDir()},
		Out:   out,
		Self:  self,
	}, nil
}

func (l *Lab) cfg() config.Config { return l.State.Config }

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.Out, "lab: "+format+"\n", args...)
}

// Process names.
func shimName(node string) string    { return "shim-" + node }
func forwardName(node string) string { return "forward-" + node }

const daemonPrefix = "daemon-"

func nodeDaemonName(node, name string) string { return daemonPrefix + node + "-" + name }
func clusterDaemonName(name string) string    { return daemonPrefix + name }

// UpOptions are the inputs of `lab up`.
type UpOptions struct {
	Config         config.Config
	NodesSet       bool
	MaxPodsSet     bool
	CNIWorkersSet  bool
	NodeDaemons    []config.DaemonSpec
	ClusterDaemons []config.DaemonSpec
	DaemonsSet     bool
	CNIDirs        []string
}

// Up starts the lab or brings an existing one back to full health.
func Up(ctx context.Context, opts UpOptions, out io.Writer) error {
	start := time.Now()
	if os.Geteuid() != 0 {
		return fmt.Errorf("failed to bring the lab up: it needs root (network and mount namespaces)")
	}
	cfg := opts.Config
	st, loadErr := config.LoadState(cfg.Dir)
	reuse := loadErr == nil
	restartDaemons := false
	if !reuse {
		if _, err := os.Stat(cfg.StatePath()); err == nil {
			return fmt.Errorf("%w; run `lab down` to start over", loadErr)
		}
	}
	if reuse {
		if opts.NodesSet && opts.Config.Nodes != st.Config.Nodes {
			return fmt.Errorf("failed to reuse the lab in %q: it has %d nodes, %d were asked for; run `lab down` first", cfg.Dir, st.Config.Nodes, opts.Config.Nodes)
		}
		if opts.MaxPodsSet && opts.Config.MaxPods != st.Config.MaxPods {
			return fmt.Errorf("failed to reuse the lab in %q: its nodes hold %d pods each, %d were asked for; run `lab down` first", cfg.Dir, st.Config.MaxPods, opts.Config.MaxPods)
		}
		if opts.CNIWorkersSet && opts.Config.CNIWorkers != st.Config.CNIWorkers {
			return fmt.Errorf("failed to reuse the lab in %q: its nodes run %d CNI workers each, %d were asked for; run `lab down` first", cfg.Dir, st.Config.CNIWorkers, opts.Config.CNIWorkers)
		}
		if opts.DaemonsSet {
			restartDaemons = !reflect.DeepEqual(st.NodeDaemons, opts.NodeDaemons) || !reflect.DeepEqual(st.ClusterDaemons, opts.ClusterDaemons)
			st.NodeDaemons, st.ClusterDaemons = opts.NodeDaemons, opts.ClusterDaemons
		}
	} else {
		if err := cfg.Validate(); err != nil {
			return err
		}
		// A lab directory without state must not hide a lab still running.
		if pids, nss := proc.FindMarked(cfg.Dir), topology.ListNetns(cfg.Prefix+"-"); len(pids) > 0 || len(nss) > 0 {
			return fmt.Errorf("failed to create a lab in %q: %d processes and network namespaces %v of an earlier lab are still there; run `lab down` first", cfg.Dir, len(pids), nss)
		}
		st = config.State{Config: cfg, NodeDaemons: opts.NodeDaemons, ClusterDaemons: opts.ClusterDaemons}
		// A cold start begins with fresh logs.
		_ = os.RemoveAll(cfg.LogDir())
	}
	for _, d := range opts.CNIDirs {
		if !slices.Contains(st.CNIDirs, d) {
			st.CNIDirs = append(st.CNIDirs, d)
		}
	}
	for _, d := range []string{cfg.Dir, st.Config.LogDir(), st.Config.PidDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("failed to create %q: %w", d, err)
		}
	}
	if err := st.Save(); err != nil {
		return err
	}
	l, err := newLab(st, out)
	if err != nil {
		return err
	}
	if reuse {
		l.logf("reusing the lab in %s (%d nodes)", st.Config.Dir, st.Config.Nodes)
	} else {
		l.logf("creating a lab in %s (%d nodes)", st.Config.Dir, st.Config.Nodes)
	}
	return l.up(ctx, start, restartDaemons)
}

func (l *Lab) up(ctx context.Context, start time.Time, restartDaemons bool) error {
	c := l.cfg()
	deps, err := controlplane.ResolveDeps(ctx, c.RepoRoot)
	if err != nil {
		return err
	}
	if err := controlplane.EnsurePKI(c); err != nil {
		return err
	}
	if err := controlplane.Ensure(ctx, c, deps, l.Procs); err != nil {
		return err
	}
	l.logf("control plane ready at %s (%s)", c.APIServerURL(), time.Since(start).Round(time.Millisecond))
	if err := l.applyManifests(ctx); err != nil {
		return err
	}
	if err := topology.Ensure(ctx, c); err != nil {
		return err
	}
	for _, node := range c.NodeNames() {
		if err := l.ensureNode(ctx, node, deps); err != nil {
			return err
		}
	}
	if err := l.waitNodesReady(ctx, 60*time.Second); err != nil {
		return err
	}
	l.logf("%d nodes ready (%s)", c.Nodes, time.Since(start).Round(time.Millisecond))
	// Pods cannot be created before the controller-manager made the
	// default service account.
	if err := l.waitDefaultServiceAccount(ctx, 60*time.Second); err != nil {
		return err
	}
	if err := l.ensureDaemons(ctx, restartDaemons); err != nil {
		return err
	}
	if err := config.WriteFileAtomic(c.EnvPath(), config.RenderEnv(c.Env()), 0o644); err != nil {
		return err
	}
	l.logf("up in %s; kubeconfig %s, env %s", time.Since(start).Round(time.Millisecond), c.KubeconfigPath(), c.EnvPath())
	return nil
}

func (l *Lab) restConfigClient() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", l.cfg().KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig %q: %w", l.cfg().KubeconfigPath(), err)
	}
	rc.UserAgent = "lab"
	return kubernetes.NewForConfig(rc)
}

func (l *Lab) applyManifests(ctx context.Context) error {
	rc, err := clientcmd.BuildConfigFromFlags("", l.cfg().KubeconfigPath())
	if err != nil {
		return err
	}
	// Discovery walks every API group; the default client rate limit would
	// dominate the time of a warm `up`.
	rc.QPS, rc.Burst = 100, 200
	ap, err := controlplane.NewApplier(rc)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{"NetworkAttachmentDefinition CRD", manifests.NADCRD}, {"Multus RBAC", manifests.MultusRBAC}, {"KubeVirt CRDs", manifests.KubeVirtCRDs}} {
		objs, err := controlplane.DecodeObjects(m.data)
		if err != nil {
			return fmt.Errorf("failed to decode %s: %w", m.name, err)
		}
		if err := ap.Apply(ctx, m.name, objs); err != nil {
			return err
		}
	}
	crdDir := filepath.Join(l.cfg().RepoRoot, "charts/spindle/crds")
	files, err := controlplane.ManifestFiles(crdDir)
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("failed to read %q: %w", f, err)
		}
		objs, err := controlplane.DecodeObjects(data)
		if err != nil {
			return fmt.Errorf("failed to decode %q: %w", f, err)
		}
		if err := ap.Apply(ctx, f, objs); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		l.logf("applied %d CRD file(s) from %s", len(files), crdDir)
	}
	return nil
}

// ensureNode prepares the node's directories, CNI binaries and
// configuration, and starts its holder, API forwarder and shim as needed.
func (l *Lab) ensureNode(ctx context.Context, node string, deps controlplane.Deps) error {
	c := l.cfg()
	idx, _ := c.NodeIndex(node)
	for _, d := range config.NodePrivateDirs {
		if err := os.MkdirAll(c.NodeFS(node, d), 0o755); err != nil {
			return fmt.Errorf("failed to create %q: %w", c.NodeFS(node, d), err)
		}
	}
	for _, d := range []string{"/etc/cni/net.d/multus.d", "/opt/cni/bin"} {
		if err := os.MkdirAll(c.NodeFS(node, d), 0o755); err != nil {
			return fmt.Errorf("failed to create %q: %w", c.NodeFS(node, d), err)
		}
	}
	binDir := c.NodeFS(node, "/opt/cni/bin")
	for _, src := range []string{deps.CNI, deps.Multus} {
		if _, err := installExecutables(src, binDir); err != nil {
			return err
		}
	}
	if err := l.installExtraCNI(binDir); err != nil {
		return err
	}
	conf, err := c.MultusConf(idx)
	if err != nil {
		return err
	}
	if err := config.WriteFileAtomic(filepath.Join(c.NodeFS(node, "/etc/cni/net.d"), config.MultusConfFile), conf, 0o644); err != nil {
		return err
	}
	mkc, err := os.ReadFile(controlplane.KubeconfigFor(c, controlplane.Multus))
	if err != nil {
		return fmt.Errorf("failed to read the Multus kubeconfig: %w", err)
	}
	if err := config.WriteFileAtomic(c.NodeFS(node, config.MultusKubeconfigPath), mkc, 0o600); err != nil {
		return err
	}
	if err := l.ensureHolder(ctx, node); err != nil {
		return err
	}
	if err := l.ensureForwarder(ctx, node); err != nil {
		return err
	}
	return l.ensureShim(node)
}

// installExtraCNI copies bin/cni/* and every directory given to
// install-cni or --cni-bin into a node's CNI bin directory.
func (l *Lab) installExtraCNI(binDir string) error {
	dirs := append([]string{filepath.Join(l.cfg().RepoRoot, "bin/cni")}, l.State.CNIDirs...)
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if _, err := installExecutables(d, binDir); err != nil {
			return err
		}
	}
	return nil
}

// installExecutables copies every regular executable file of src into dst,
// replacing files atomically so running binaries are not disturbed.
func installExecutables(src, dst string) ([]string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("failed to read CNI binary directory %q: %w", src, err)
	}
	var names []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		target := filepath.Join(dst, e.Name())
		// Copies carry the source's modification time, so an unchanged
		// binary is recognised without reading it.
		if ti, err := os.Stat(target); err == nil && ti.Size() == info.Size() && ti.ModTime().Equal(info.ModTime()) {
			names = append(names, e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return names, fmt.Errorf("failed to read %q: %w", filepath.Join(src, e.Name()), err)
		}
		if err := config.WriteFileAtomic(target, data, 0o755); err != nil {
			return names, err
		}
		if err := os.Chtimes(target, info.ModTime(), info.ModTime()); err != nil {
			return names, fmt.Errorf("failed to set times of %q: %w", target, err)
		}
		names = append(names, e.Name())
	}
	return names, nil
}

func (l *Lab) ensureHolder(ctx context.Context, node string) error {
	name := shim.HolderName(node)
	if _, ok := l.Procs.Pid(name); ok {
		return nil
	}
	_, err := topology.StartNodeMounts(ctx, l.cfg(), node, l.Procs, name)
	return err
}

func (l *Lab) ensureForwarder(ctx context.Context, node string) error {
	c := l.cfg()
	name := forwardName(node)
	if err := l.stopIfStale(name); err != nil {
		return err
	}
	if _, ok := l.Procs.Pid(name); ok {
		return nil
	}
	ready := filepath.Join(c.NodeDir(node), "forward.ready")
	_ = os.Remove(ready)
	log := filepath.Join(c.LogDir(), node+"-forward.log")
	pid, err := l.Procs.Start(proc.Spec{
		Name: name,
		Argv: []string{l.Self, "forward", "--dir", c.Dir, "--node", node, "--ready-file", ready},
		Log:  log,
		Dir:  c.Dir,
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return proc.WaitReady(wctx, "API forwarder of "+node, pid, log, 50*time.Millisecond, func(context.Context) error {
		_, err := os.Stat(ready)
		return err
	})
}

// stopIfStale stops a process running an older build of the lab executable
// (replaced since it started), so `up` after a rebuild runs the new code.
// Pods keep their namespaces across a shim restart.
func (l *Lab) stopIfStale(name string) error {
	pid, ok := l.Procs.Pid(name)
	if !ok {
		return nil
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil || exe == l.Self {
		return nil
	}
	l.logf("restarting %s: it runs %s, not %s", name, exe, l.Self)
	return l.Procs.Stop(name, 10*time.Second)
}

func (l *Lab) ensureShim(node string) error {
	c := l.cfg()
	name := shimName(node)
	if err := l.stopIfStale(name); err != nil {
		return err
	}
	if _, ok := l.Procs.Pid(name); ok {
		return nil
	}
	_, err := l.Procs.Start(proc.Spec{
		Name: name,
		Argv: []string{l.Self, "shim", "--dir", c.Dir, "--node", node},
		Log:  filepath.Join(c.LogDir(), node+"-shim.log"),
		Dir:  c.Dir,
	})
	return err
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (l *Lab) waitNodesReady(ctx context.Context, timeout time.Duration) error {
	cs, err := l.restConfigClient()
	if err != nil {
		return err
	}
	return l.waitReady(ctx, cs, l.cfg().NodeNames(), timeout)
}

func (l *Lab) waitReady(ctx context.Context, cs kubernetes.Interface, nodes []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		notReady := slices.Clone(nodes)
		if err == nil {
			for i := range list.Items {
				if nodeReady(&list.Items[i]) {
					notReady = slices.DeleteFunc(notReady, func(s string) bool { return s == list.Items[i].Name })
				}
			}
			if len(notReady) == 0 {
				return nil
			}
		}
		for _, n := range notReady {
			if _, ok := l.Procs.Pid(shimName(n)); !ok {
				log := filepath.Join(l.cfg().LogDir(), n+"-shim.log")
				return fmt.Errorf("failed to bring node %q up: its shim exited; log %s:\n%s", n, log, proc.Tail(log, 30))
			}
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("failed to bring nodes up: not Ready after %s: %s", timeout, strings.Join(notReady, ", "))
			for _, n := range notReady {
				log := filepath.Join(l.cfg().LogDir(), n+"-shim.log")
				msg += fmt.Sprintf("\nlog %s:\n%s", log, proc.Tail(log, 15))
			}
			return fmt.Errorf("%s", msg)
		case <-t.C:
		}
	}
}

func (l *Lab) waitDefaultServiceAccount(ctx context.Context, timeout time.Duration) error {
	cs, err := l.restConfigClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		log := filepath.Join(l.cfg().LogDir(), "kube-controller-manager.log")
		return fmt.Errorf("failed to see service account default/default within %s; log %s:\n%s", timeout, log, proc.Tail(log, 20))
	}
	return nil
}

// daemonProc is one running instance of a daemon spec.
type daemonProc struct {
	name string
	path string
	spec proc.Spec
}

func (l *Lab) daemonProcs() ([]daemonProc, error) {
	c := l.cfg()
	var out []daemonProc
	base := []string{"KUBECONFIG=" + c.KubeconfigPath(), "LAB_ENV=" + c.EnvPath()}
	for _, kv := range c.Env() {
		base = append(base, kv[0]+"="+kv[1])
	}
	for _, d := range l.State.ClusterDaemons {
		out = append(out, daemonProc{name: clusterDaemonName(d.Name), path: d.Path, spec: proc.Spec{
			Name: clusterDaemonName(d.Name),
			Argv: append(append([]string{d.Path}, d.Args...), l.ExtraArgs[d.Name]...),
			Env:  base,
			Log:  filepath.Join(c.LogDir(), d.Name+".log"),
			Dir:  c.RepoRoot,
		}})
	}
	for _, node := range c.NodeNames() {
		holder, ok := l.Procs.Pid(shim.HolderName(node))
		if !ok && len(l.State.NodeDaemons) > 0 {
			return nil, fmt.Errorf("failed to start daemons on %q: its mount namespace holder is not running (run `lab up`)", node)
		}
		for _, d := range l.State.NodeDaemons {
			argv := []string{"nsenter", "--mount=/proc/" + strconv.Itoa(holder) + "/ns/mnt",
				"--net=" + topology.NetnsPath(c.NodeNetns(node)), "--wd=" + c.RepoRoot, "--", d.Path}
			out = append(out, daemonProc{name: nodeDaemonName(node, d.Name), path: d.Path, spec: proc.Spec{
				Name: nodeDaemonName(node, d.Name),
				Argv: append(append(argv, d.Args...), l.ExtraArgs[d.Name]...),
				Env:  append(append(slices.Clone(base), "NODE_NAME="+node), l.State.NodeEnv[node]...),
				Log:  filepath.Join(c.LogDir(), node+"-"+d.Name+".log"),
				Dir:  c.RepoRoot,
			}})
		}
	}
	return out, nil
}

// ensureDaemons starts the configured daemons that are not running (all of
// them when restart is set) and stops daemons no longer configured.
func (l *Lab) ensureDaemons(ctx context.Context, restart bool) error {
	want, err := l.daemonProcs()
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, d := range want {
		wanted[d.name] = true
	}
	for _, n := range l.Procs.Names() {
		if strings.HasPrefix(n, daemonPrefix) && (restart || !wanted[n]) {
			if err := l.Procs.Stop(n, 10*time.Second); err != nil {
				return err
			}
		}
	}
	type started struct {
		d   daemonProc
		pid int
	}
	var fresh []started
	for _, d := range want {
		if _, ok := l.Procs.Pid(d.name); ok {
			continue
		}
		if fi, err := os.Stat(d.path); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("failed to start daemon %q: %q is not an executable file (%v)", d.name, d.path, err)
		}
		pid, err := l.Procs.Start(d.spec)
		if err != nil {
			return err
		}
		fresh = append(fresh, started{d, pid})
	}
	if len(fresh) == 0 {
		return nil
	}
	// A daemon that dies at once (bad flags, missing binary) fails the
	// command with its log instead of going unnoticed.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	for _, s := range fresh {
		if !proc.Alive(s.pid) {
			return fmt.Errorf("failed to start daemon %q: it exited; log %s:\n%s", s.d.name, s.d.spec.Log, proc.Tail(s.d.spec.Log, 30))
		}
	}
	names := make([]string, 0, len(fresh))
	for _, s := range fresh {
		names = append(names, s.d.name)
	}
	sort.Strings(names)
	l.logf("started %s", strings.Join(names, ", "))
	return nil
}
