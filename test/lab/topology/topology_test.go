package topology

import (
	"strings"
	"testing"

	"github.com/spindle-net/spindle/test/lab/config"
)

func hostWith(paths ...string) func(string) bool {
	set := map[string]bool{"/": true}
	for _, p := range paths {
		set[p] = true
	}
	return func(p string) bool { return set[p] }
}

func TestPlanOverlaysNearestExistingParent(t *testing.T) {
	c := config.Default("/work/repo")
	plan, err := PlanNodeMounts(c, "lab-node-1", hostWith("/etc", "/opt", "/var", "/var/lib", "/run"), []string{"/", "/run/netns", "/run/netns/x", "/proc"})
	if err != nil {
		t.Fatal(err)
	}
	lowers := map[string]Overlay{}
	for _, o := range plan.Overlays {
		lowers[o.Lower] = o
	}
	for _, want := range []string{"/etc", "/opt", "/var/lib", "/run"} {
		if _, ok := lowers[want]; !ok {
			t.Errorf("no overlay on %s; plan %+v", want, plan.Overlays)
		}
	}
	if got := lowers["/run"].Submounts; len(got) != 1 || got[0] != "/run/netns" {
		t.Errorf("/run overlay must move /run/netns aside (and only it, not its children): %v", got)
	}
	if mp := lowers["/etc"].MountPoints; len(mp) != 1 || !strings.HasSuffix(mp[0], "/upper/cni") || !strings.HasPrefix(mp[0], c.NodeDir("lab-node-1")) {
		t.Errorf("/etc mount points = %v", mp)
	}
	if len(plan.Binds) != len(config.NodePrivateDirs) {
		t.Errorf("binds = %v", plan.Binds)
	}
	for _, b := range plan.Binds {
		if !strings.HasPrefix(b[0], c.NodeDir("lab-node-1")+"/fs/") {
			t.Errorf("bind source %s outside the node directory", b[0])
		}
	}
}

func TestPlanBindsExistingDirectoriesWithoutOverlay(t *testing.T) {
	c := config.Default("/work/repo")
	plan, err := PlanNodeMounts(c, "lab-node-1", hostWith("/etc", "/etc/cni", "/opt", "/opt/cni", "/var", "/var/lib", "/var/lib/cni", "/run", "/run/spindle"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Overlays) != 0 {
		t.Fatalf("overlays planned although every directory exists: %+v", plan.Overlays)
	}
}

func TestPlanRefusesOverlayOnRootOrLabDir(t *testing.T) {
	c := config.Default("/work/repo")
	if _, err := PlanNodeMounts(c, "n", hostWith(), nil); err == nil {
		t.Error("planned an overlay on /")
	}
	c = config.Default("/run/repo")
	if _, err := PlanNodeMounts(c, "n", hostWith("/etc", "/opt", "/var", "/var/lib", "/run"), nil); err == nil {
		t.Error("planned an overlay over the lab directory itself")
	}
}

func TestMountScriptOrder(t *testing.T) {
	plan := NodeMountPlan{
		Overlays: []Overlay{{Lower: "/run", Upper: "/l/u", Work: "/l/w", Submounts: []string{"/run/netns"}}},
		Binds:    [][2]string{{"/l/fs/run/spindle", "/run/spindle"}},
	}
	s := MountScript(plan, "lab-node-1", "/l/aside", "/l/ready")
	moveAway := strings.Index(s, "mount --move '/run/netns' '/l/aside/0-0'")
	overlay := strings.Index(s, "mount -t overlay 'lab-lab-node-1' -o 'lowerdir=/run,upperdir=/l/u,workdir=/l/w' '/run'")
	moveBack := strings.Index(s, "mount --move '/l/aside/0-0' '/run/netns'")
	bind := strings.Index(s, "mount --bind '/l/fs/run/spindle' '/run/spindle'")
	ready := strings.Index(s, "echo ready > '/l/ready'")
	if moveAway < 0 || overlay < moveAway || moveBack < overlay || bind < moveBack || ready < bind {
		t.Fatalf("mount steps missing or out of order:\n%s", s)
	}
	if !strings.HasSuffix(s, "exec sleep infinity\n") || !strings.HasPrefix(s, "set -eu\n") {
		t.Fatalf("script must stop on errors and end by holding the namespace:\n%s", s)
	}
}

func TestNodeScriptRoutesToOtherNodes(t *testing.T) {
	c := config.Default("/repo")
	c.Nodes = 3
	s := NodeScript(c, 2)
	for _, want := range []string{
		"ip route replace 10.244.1.0/24 via 172.30.0.11 dev ul0",
		"ip route replace 10.244.3.0/24 via 172.30.0.13 dev ul0",
		"ip -6 route replace fd10:244:0:1::/64 via fd30:172:30::b dev ul0",
		"ip addr add 172.30.0.12/16 dev ul0",
		"nodad",
		"ip_forward",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("node script lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "10.244.2.0/24 via") {
		t.Errorf("node routes its own pod CIDR away:\n%s", s)
	}
	g := GatewayScript(c)
	if !strings.Contains(g, "ip route replace 10.244.2.0/24 via 172.30.0.12") || !strings.Contains(g, "172.30.0.1/16") {
		t.Errorf("gateway script:\n%s", g)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescape(`/a\040b\011c`); got != "/a b\tc" {
		t.Fatalf("unescape = %q", got)
	}
}
