package cniplugin_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The CNI plugins are executed once per ADD/DEL/CHECK on the pod's critical
// path: they must not link an HTTP stack or a Kubernetes client, not even
// through a dependency (the linter's depguard rule sees direct imports only).
func TestPluginBinariesLinkNoHTTPOrKubernetesClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/spindle-net/spindle/cmd/spiderpool", "github.com/spindle-net/spindle/cmd/coordinator").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == "net/http",
			strings.HasPrefix(pkg, "k8s.io/client-go/"),
			strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime"),
			strings.HasPrefix(pkg, "k8s.io/apimachinery/"):
			t.Errorf("a CNI plugin links %s: the plugins talk to the node agent through ipam/nodeapi only", pkg)
		}
	}
}
