package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/test/kubeapi"
)

// TestBinariesEndToEnd builds spindle-agent and spiderpool, runs the agent
// against the API server and drives it with the plugin binary exactly as a
// container runtime would (env + stdin, result on stdout).
func TestBinariesEndToEnd(t *testing.T) {
	requireEnv(t)
	if testing.Short() {
		t.Skip("skipping binary build in -short mode")
	}
	root, err := kubeapi.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, b := range []string{"spindle-agent", "spiderpool"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./cmd/"+b)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b, err, out)
		}
	}
	kc, err := env.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	ensureNamespace(t, "bin")
	createPool(t, "bin-v4", "10.28.0.0/24", "10.28.0.10-10.28.0.20")
	ensureNode(t, "bin-node")
	pod := createPod(t, podObj("bin", "web", "bin-node", map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["bin-v4"]}`}))

	sock := filepath.Join(dir, "run", "agent.sock")
	ctx, cancel := context.WithCancel(rootCtx)
	defer cancel()
	agentCmd := exec.CommandContext(ctx, filepath.Join(dir, "spindle-agent"), "--socket", sock, "--metrics-addr", "", "--health-addr", "")
	agentCmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "NODE_NAME=bin-node")
	var agentLog bytes.Buffer
	agentCmd.Stderr = &agentLog
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = agentCmd.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", agentLog.String())
		}
	}()
	eventually(t, 30*time.Second, "agent ready", func() (bool, string) {
		err := nodeapi.New(sock).Healthz(ctx)
		return err == nil, fmt.Sprint(err)
	})
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v mode %v", err, st.Mode().Perm())
	}

	plugin := func(command, version string) (string, error) {
		cmd := exec.Command(filepath.Join(dir, "spiderpool"))
		cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=sandbox-1", "CNI_NETNS=/var/run/netns/x", "CNI_IFNAME=eth0",
			"CNI_PATH=" + dir, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=bin;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sandbox-1;K8S_POD_UID=" + string(pod.UID)}
		cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"cniVersion":%q,"name":"macvlan-vlan0","type":"macvlan","ipam":{"type":"spiderpool","socket":%q}}`, version, sock))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String(), fmt.Errorf("%s: %w: %s %s", command, err, stdout.String(), stderr.String())
		}
		return stdout.String(), nil
	}
	out, err := plugin("ADD", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.CNIVersion != "1.0.0" || len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address, "10.28.0.") {
		t.Fatalf("ADD printed %q (%v)", out, err)
	}
	if out, err := plugin("ADD", "0.3.1"); err != nil || !strings.Contains(out, res.IPs[0].Address) {
		t.Fatalf("repeated ADD with CNI 0.3.1: %q %v", out, err)
	}
	if _, err := plugin("STATUS", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	deletePod(t, pod)
	if out, err := plugin("DEL", "1.0.0"); err != nil || out != "" {
		t.Fatalf("DEL: %q %v", out, err)
	}
	if n := len(claimsOf(t, "bin", "web")); n != 0 {
		t.Fatalf("%d claims left after DEL", n)
	}
	// With the agent gone, DEL fails with code 11 so the runtime retries.
	cancel()
	_ = agentCmd.Wait()
	out, err = plugin("DEL", "1.0.0")
	if err == nil || !strings.Contains(out, `"code": 11`) {
		t.Fatalf("DEL without agent: %q %v", out, err)
	}
}
