package selection

import (
	"testing"

	"github.com/spindle-net/spindle/ipam/annotations"
)

func FuzzParsePodNetworks(f *testing.F) {
	f.Add("", "macvlan@net1, other/ipvlan", "kube-system/calico")
	f.Add("other/macvlan", `[{"name":"m","interface":"eth1"},{"name":"m"}]`, "")
	f.Add(`{"name":"x"}`, `[{"name":""}]`, "")
	f.Add("a/b/c", "@", "/")
	f.Fuzz(func(t *testing.T, def, nets, clusterDefault string) {
		ann := map[string]string{}
		if def != "" {
			ann[annotations.MultusDefaultNetwork] = def
		}
		if nets != "" {
			ann[annotations.MultusNetworks] = nets
		}
		p, err := ParsePodNetworks("pod-ns", ann, clusterDefault)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		seen := map[string]bool{}
		for _, n := range p.Additional {
			if n.Name == "" || n.Interface == "" {
				t.Fatalf("ParsePodNetworks(%q) accepted %+v", nets, n)
			}
			if seen[n.Interface] {
				t.Fatalf("ParsePodNetworks(%q): interface %q twice", nets, n.Interface)
			}
			seen[n.Interface] = true
		}
	})
}
