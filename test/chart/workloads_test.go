package chart

import (
	"encoding/json"
	"flag"
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/spindle-net/spindle/ipam/agent"
	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func portOf(t *testing.T, flag, addr string) int64 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("--%s=%q is not host:port: %v", flag, addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil {
		t.Fatalf("--%s=%q has no numeric port", flag, addr)
	}
	return n
}

// probe returns the path and the container port number a probe targets.
func probe(t *testing.T, c map[string]any, kind string) (string, int64) {
	t.Helper()
	path, _, _ := unstructured.NestedString(c, kind, "httpGet", "path")
	port, found, _ := unstructured.NestedFieldNoCopy(c, kind, "httpGet", "port")
	if !found {
		t.Fatalf("container %q has no %s httpGet", c["name"], kind)
	}
	if name, ok := port.(string); ok {
		n, ok := ports(c)[name]
		if !ok {
			t.Fatalf("container %q %s targets port %q, which it does not declare", c["name"], kind, name)
		}
		return path, n
	}
	return path, toInt(port)
}

// chartDefaultDiffers lists the flags whose default values deliberately
// render something else than the binary's default, and why.
var chartDefaultDiffers = map[string]map[string]string{
	"spindle-agent": {
		"daemonset":           "the chart's DaemonSet, so that the agent knows when helm uninstall deleted it",
		"remove-on-uninstall": "the plugins the chart copies to the node, removed on helm uninstall",
	},
	"spindle-controller": {
		"webhook-cert-dir":           "the mounted certificate Secret instead of a temporary directory",
		"webhook-service-name":       "the chart's Service (the binary has no Service by default)",
		"coordinator-create-default": "the chart owns SpiderCoordinator default (coordinator.createDefault)",
	},
}

// TestDefaultsMatchBinaries checks that the default values render what the
// binaries default to, so the chart and a bare binary behave alike (the
// socket the plugins dial, ports, intervals...), except where listed.
func TestDefaultsMatchBinaries(t *testing.T) {
	t.Parallel()
	m := render(t)
	for _, tc := range []struct {
		binary, kind, container string
		flags                   func() *flag.FlagSet
	}{
		{"spindle-agent", "DaemonSet", "agent", agentFlags},
		{"spindle-controller", "Deployment", "controller", controllerFlags},
	} {
		rendered := m.flags(t, container(t, m.get(t, tc.kind, tc.binary), tc.container))
		for f, v := range rendered {
			fs := tc.flags()
			fl := fs.Lookup(f)
			if fl == nil {
				continue // reported by TestFlagsReachableFromValues
			}
			if err := fs.Set(f, v); err != nil {
				t.Errorf("%s --%s=%q: %v", tc.binary, f, v, err)
				continue
			}
			same := fl.Value.String() == fl.DefValue
			why, listed := chartDefaultDiffers[tc.binary][f]
			switch {
			case !same && !listed:
				t.Errorf("%s: the chart renders --%s=%s by default, the binary defaults to %s: align values.yaml (or list the difference with its reason)", tc.binary, f, v, fl.DefValue)
			case same && listed:
				t.Errorf("%s --%s is listed as differing (%s) but renders the binary default %s", tc.binary, f, why, fl.DefValue)
			}
		}
	}
	af := m.flags(t, container(t, m.get(t, "DaemonSet", "spindle-agent"), "agent"))
	if af["socket"] != nodeapi.DefaultSocket {
		t.Errorf("agent --socket=%q, but the spiderpool plugin dials %q by default", af["socket"], nodeapi.DefaultSocket)
	}
	if af["health-addr"] != agent.DefaultHealthAddr || af["metrics-addr"] != agent.DefaultMetricsAddr {
		t.Errorf("agent --health-addr=%q --metrics-addr=%q, binary defaults %q %q", af["health-addr"], af["metrics-addr"], agent.DefaultHealthAddr, agent.DefaultMetricsAddr)
	}
}

// TestProbesAndPorts checks, with default and with moved ports, that the
// probes reach the health servers the flags open, that declared ports match
// the flags, and that the Service reaches the webhook server.
func TestProbesAndPorts(t *testing.T) {
	t.Parallel()
	for _, sc := range []scenario{
		{"default", nil},
		{"moved-ports", []string{"agent.healthPort=7710", "agent.metrics.port=7711", "agent.metrics.bindAddress=0.0.0.0",
			"controller.healthPort=7720", "controller.metricsPort=7721", "controller.webhookPort=7443", "agent.socketDir=/run/spx"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			m := render(t, sc.set...)

			ds := m.get(t, "DaemonSet", "spindle-agent")
			ac := container(t, ds, "agent")
			af := m.flags(t, ac)
			health := portOf(t, "health-addr", af["health-addr"])
			for kind, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				path, port := probe(t, ac, kind)
				if path != want || port != health {
					t.Errorf("agent %s: %s on %d, want %s on %d (--health-addr=%s)", kind, path, port, want, health, af["health-addr"])
				}
			}
			if got := ports(ac)["metrics"]; got != portOf(t, "metrics-addr", af["metrics-addr"]) {
				t.Errorf("agent declares metrics port %d, --metrics-addr=%s", got, af["metrics-addr"])
			}
			if hn, _, _ := unstructured.NestedBool(ds.Object, "spec", "template", "spec", "hostNetwork"); !hn {
				t.Error("the agent must run on the host network: it serves the CNI plugins before any pod network exists")
			}
			// The socket directory is the node's: the plugins run on the node.
			socketDir := filepath.Dir(af["socket"])
			if hostPathOf(t, ds, ac, socketDir) != socketDir {
				t.Errorf("agent --socket=%s: %s is not the same directory on the node", af["socket"], socketDir)
			}
			ic := container(t, ds, "install-cni-plugins")
			if got := hostPathOf(t, ds, ic, "/host/cni-bin"); got != "/opt/cni/bin" {
				t.Errorf("the plugins are installed into node directory %q, want /opt/cni/bin", got)
			}

			dep := m.get(t, "Deployment", "spindle-controller")
			cc := container(t, dep, "controller")
			cf := m.flags(t, cc)
			chealth := portOf(t, "health-probe-bind-address", cf["health-probe-bind-address"])
			for kind, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				path, port := probe(t, cc, kind)
				if path != want || port != chealth {
					t.Errorf("controller %s: %s on %d, want %s on %d", kind, path, port, want, chealth)
				}
			}
			if got := ports(cc)["metrics"]; got != portOf(t, "metrics-bind-address", cf["metrics-bind-address"]) {
				t.Errorf("controller declares metrics port %d, --metrics-bind-address=%s", got, cf["metrics-bind-address"])
			}
			if got := strconv.FormatInt(ports(cc)["webhook"], 10); got != cf["webhook-port"] {
				t.Errorf("controller declares webhook port %s, --webhook-port=%s", got, cf["webhook-port"])
			}
			svc := m.get(t, "Service", cf["webhook-service-name"])
			if svc.GetNamespace() != cf["webhook-service-namespace"] {
				t.Errorf("Service %s is in %q, --webhook-service-namespace=%q", svc.GetName(), svc.GetNamespace(), cf["webhook-service-namespace"])
			}
			sp, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			found := false
			for _, p := range sp {
				pm := p.(map[string]any)
				if pm["name"] == "webhook" {
					found = true
					if strconv.FormatInt(toInt(pm["port"]), 10) != cf["webhook-service-port"] || pm["targetPort"] != "webhook" {
						t.Errorf("Service webhook port %v -> %v, want %s -> the container's webhook port", pm["port"], pm["targetPort"], cf["webhook-service-port"])
					}
				}
			}
			if !found {
				t.Errorf("Service %s has no webhook port", svc.GetName())
			}
			sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
			labels, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels")
			for k, v := range sel {
				if labels[k] != v {
					t.Errorf("Service %s selects %s=%s, which the controller pods do not carry", svc.GetName(), k, v)
				}
			}
		})
	}
}

// hostPathOf returns the node path mounted at mountPath in container c.
func hostPathOf(t *testing.T, workload *unstructured.Unstructured, c map[string]any, mountPath string) string {
	t.Helper()
	mounts, _ := c["volumeMounts"].([]any)
	vols, _, _ := unstructured.NestedSlice(workload.Object, "spec", "template", "spec", "volumes")
	for _, mnt := range mounts {
		mm := mnt.(map[string]any)
		if mm["mountPath"] != mountPath {
			continue
		}
		for _, v := range vols {
			vm := v.(map[string]any)
			if vm["name"] == mm["name"] {
				p, _, _ := unstructured.NestedString(vm, "hostPath", "path")
				return p
			}
		}
	}
	t.Errorf("container %q mounts nothing at %s", c["name"], mountPath)
	return ""
}

// TestControllerHighAvailability: two replicas, leader election, a PDB that
// keeps one webhook server through drains, replicas spread over nodes.
func TestControllerHighAvailability(t *testing.T) {
	t.Parallel()
	m := render(t)
	dep := m.get(t, "Deployment", "spindle-controller")
	if r, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); toInt(r) != 2 {
		t.Errorf("controller replicas = %v, want 2", r)
	}
	cf := m.flags(t, container(t, dep, "controller"))
	if cf["leader-elect"] != "true" {
		t.Errorf("--leader-elect=%s with two replicas", cf["leader-elect"])
	}
	pdb := m.get(t, "PodDisruptionBudget", "spindle-controller")
	if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); toInt(v) != 1 {
		t.Errorf("PDB minAvailable = %v, want 1", v)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "template", "spec", "affinity", "podAntiAffinity"); !found {
		t.Error("controller replicas are not spread over nodes")
	}
	// One replica: no PDB (it would block every drain).
	if single := render(t, "controller.replicas=1"); single.find("PodDisruptionBudget", "spindle-controller") != nil {
		t.Error("a PodDisruptionBudget is rendered for a single replica")
	}
}

// TestImageReferences: every Spindle container runs the one image; registry,
// override, tag and digest compose as documented in values.yaml.
func TestImageReferences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{nil, "ghcr.io/spindle-net/spindle:0.1.0"},
		{[]string{"image.tag=v9"}, "ghcr.io/spindle-net/spindle:v9"},
		{[]string{"image.registry=", "image.repository=localhost/spindle", "image.tag=e2e"}, "localhost/spindle:e2e"},
		{[]string{"global.imageRegistryOverride=mirror.local:5000"}, "mirror.local:5000/spindle-net/spindle:0.1.0"},
		{[]string{"image.digest=sha256:0123"}, "ghcr.io/spindle-net/spindle@sha256:0123"},
	} {
		m := render(t, tc.set...)
		for _, w := range []struct{ kind, name, container string }{
			{"DaemonSet", "spindle-agent", "agent"}, {"DaemonSet", "spindle-agent", "install-cni-plugins"},
			{"Deployment", "spindle-controller", "controller"},
		} {
			if got := container(t, m.get(t, w.kind, w.name), w.container)["image"]; got != tc.want {
				t.Errorf("--set %v: %s %s container %s runs %v, want %s", tc.set, w.kind, w.name, w.container, got, tc.want)
			}
		}
	}
	m := render(t, "multus.install=true", "global.imageRegistryOverride=mirror.local:5000")
	if got := container(t, m.get(t, "DaemonSet", "spindle-multus"), "multus")["image"]; got != "mirror.local:5000/k8snetworkplumbingwg/multus-cni:v4.3.0-thick" {
		t.Errorf("multus image %v", got)
	}
}

// TestLeastPrivilegeContainers: no Spindle container is privileged, escalates
// privileges, keeps capabilities or writes its root file system; only the
// agent (host CNI directory, root-only socket) runs as root.
func TestLeastPrivilegeContainers(t *testing.T) {
	t.Parallel()
	m := render(t)
	for _, w := range []struct {
		kind, name, container string
		root                  bool
	}{
		{"DaemonSet", "spindle-agent", "agent", true},
		{"DaemonSet", "spindle-agent", "install-cni-plugins", true},
		{"Deployment", "spindle-controller", "controller", false},
	} {
		wl := m.get(t, w.kind, w.name)
		sc, _ := container(t, wl, w.container)["securityContext"].(map[string]any)
		id := w.kind + "/" + w.name + " " + w.container
		if p, _ := sc["privileged"].(bool); p {
			t.Errorf("%s is privileged", id)
		}
		if v, ok := sc["allowPrivilegeEscalation"].(bool); !ok || v {
			t.Errorf("%s: allowPrivilegeEscalation is not false", id)
		}
		if v, ok := sc["readOnlyRootFilesystem"].(bool); !ok || !v {
			t.Errorf("%s: root file system is writable", id)
		}
		if drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop"); len(drop) != 1 || drop[0] != "ALL" {
			t.Errorf("%s: capabilities.drop = %v, want [ALL]", id, drop)
		}
		if add, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "add"); len(add) > 0 {
			t.Errorf("%s adds capabilities %v", id, add)
		}
		user, found, _ := unstructured.NestedFieldNoCopy(sc, "runAsUser")
		if !found {
			user, _, _ = unstructured.NestedFieldNoCopy(wl.Object, "spec", "template", "spec", "securityContext", "runAsUser")
		}
		if isRoot := toInt(user) == 0; isRoot != w.root {
			t.Errorf("%s runs as user %v (root=%v), want root=%v", id, user, isRoot, w.root)
		}
	}
}

// TestMultusRetriesFailedDeletes: the thick daemon copies its configuration's
// keys into every CNI request it serves, so retryDeleteOnError there makes
// Multus keep a pod's delegate list until a DEL has reached every delegate.
// Without it a DEL refused by one delegate (the agent out of reach) is
// retried with no delegates left: it reports success and the address stays
// held until the garbage collector finds it.
func TestMultusRetriesFailedDeletes(t *testing.T) {
	t.Parallel()
	m := render(t, "multus.install=true")
	raw, _, _ := unstructured.NestedString(m.get(t, "ConfigMap", "spindle-multus").Object, "data", "daemon-config.json")
	var conf map[string]any
	if err := json.Unmarshal([]byte(raw), &conf); err != nil {
		t.Fatalf("ConfigMap spindle-multus: daemon-config.json is not JSON: %v\n%s", err, raw)
	}
	if conf["retryDeleteOnError"] != true {
		t.Errorf("daemon-config.json has retryDeleteOnError=%v, want true:\n%s", conf["retryDeleteOnError"], raw)
	}
}
