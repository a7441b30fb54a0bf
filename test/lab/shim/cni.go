package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// nodeExec runs CNI plugins inside a node: in its mount namespace (held by
// the node's holder process) and its network namespace, the way a kubelet's
// runtime runs them on a real node.
type nodeExec struct {
	version.PluginDecoder
	holderPid  func() (int, error)
	nodeNetns  string
	hostBinDir string // host directory backing the node's /opt/cni/bin
	nodeBinDir string // the same directory as seen inside the node
	stderr     io.Writer
	mu         sync.Mutex
}

func (e *nodeExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	pid, err := e.holderPid()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter",
		"--mount=/proc/"+strconv.Itoa(pid)+"/ns/mnt", "--net="+e.nodeNetns, "--", pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	runErr := cmd.Run()
	if stderr.Len() > 0 {
		e.mu.Lock()
		fmt.Fprintf(e.stderr, "plugin %s %s stderr:\n%s\n", pluginPath, envValue(environ, "CNI_COMMAND"), strings.TrimRight(stderr.String(), "\n"))
		e.mu.Unlock()
	}
	if runErr != nil {
		// A plugin reports failures as a CNI error object on stdout.
		var perr types.Error
		if json.Unmarshal(stdout.Bytes(), &perr) == nil && perr.Code != 0 {
			return nil, &perr
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return nil, fmt.Errorf("failed to run plugin %q: %w: %s", pluginPath, runErr, msg)
	}
	return stdout.Bytes(), nil
}

func (e *nodeExec) FindInPath(plugin string, _ []string) (string, error) {
	if strings.Contains(plugin, "/") {
		return "", fmt.Errorf("failed to find plugin %q: plugin names must not contain '/'", plugin)
	}
	if _, err := os.Stat(filepath.Join(e.hostBinDir, plugin)); err != nil {
		return "", fmt.Errorf("failed to find plugin %q in the node's %s: %w", plugin, e.nodeBinDir, err)
	}
	return filepath.Join(e.nodeBinDir, plugin), nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// loadNetwork loads the first network configuration of dir in lexical order,
// as container runtimes do. Single-plugin files become one-plugin lists.
func loadNetwork(dir string) (*libcni.NetworkConfigList, string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, "", fmt.Errorf("failed to list CNI configurations in %q: %w", dir, err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, "", fmt.Errorf("failed to find a CNI configuration in %q", dir)
	}
	f := files[0]
	if strings.HasSuffix(f, ".conflist") {
		l, err := libcni.NetworkConfFromFile(f)
		if err != nil {
			return nil, f, fmt.Errorf("failed to load CNI configuration list %q: %w", f, err)
		}
		return l, f, nil
	}
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, f, fmt.Errorf("failed to read CNI configuration %q: %w", f, err)
	}
	pc, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, f, fmt.Errorf("failed to load CNI configuration %q: %w", f, err)
	}
	l, err := libcni.ConfListFromConf(pc) //nolint:staticcheck // single-plugin files are what the nodes use
	if err != nil {
		return nil, f, fmt.Errorf("failed to convert CNI configuration %q: %w", f, err)
	}
	return l, f, nil
}

// sandboxIPs returns the addresses of the result's interface ifName inside
// the sandbox, IPv4 first. Results without interface indexes yield all
// addresses.
func sandboxIPs(res types.Result, ifName string) ([]string, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("failed to convert CNI result: %w", err)
	}
	var v4, v6 []string
	for _, ip := range r.IPs {
		if ip.Interface != nil {
			i := *ip.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Sandbox == "" || r.Interfaces[i].Name != ifName {
				continue
			}
		}
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	return append(v4, v6...), nil
}
