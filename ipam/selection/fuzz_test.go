package selection

import (
	"errors"
	"testing"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// FuzzSelect feeds arbitrary annotations to Select: it must not panic, and
// whatever it returns must be pools of the right family that exist.
func FuzzSelect(f *testing.F) {
	f.Add(`[{"ipv4":["a4"]},{"ipv4":["b*"]}]`, `{"ipv4":["a4"],"ipv6":["a6"]}`, "kube-system/m@net1,x", "kube-system/m", `["c4"]`, "net1", true)
	f.Add("", `{"ipv4":["*"]}`, "", "", "", "eth0", false)
	pools := []*v2beta1.SpiderIPPool{
		a4, b4, c4, a6, b6, d4, d6,
		pool("m4", "10.7.0.0/16", isDefault, multus("kube-system/m")),
		pool("n4", "10.8.0.0/16", nodeName("worker-1"), podAff("app", "web")),
	}
	x := NewIndex(pools)
	f.Fuzz(func(t *testing.T, ippools, ippool, networks, defaultNet, nsPools, iface string, dualStack bool) {
		req := baseRequest()
		req.Interface = iface
		req.EnableIPv6 = dualStack
		set := func(m map[string]string, k, v string) {
			if v != "" {
				m[k] = v
			}
		}
		set(req.PodAnnotations, annotations.PodIPPools, ippools)
		set(req.PodAnnotations, annotations.PodIPPool, ippool)
		set(req.PodAnnotations, annotations.MultusNetworks, networks)
		set(req.PodAnnotations, annotations.MultusDefaultNetwork, defaultNet)
		set(req.NamespaceAnnotations, annotations.NamespaceDefaultIPv4Pool, nsPools)
		res, err := x.Select(req)
		if err != nil {
			var npe *NoPoolError
			if errors.As(err, &npe) && npe.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		for _, fam := range []ranges.Family{ranges.V4, ranges.V6} {
			for _, name := range res.Family(fam).Pools {
				e, ok := x.byName[name]
				if !ok || e.family != fam {
					t.Fatalf("selected %q for %s", name, fam)
				}
			}
		}
		if len(res.IPv4.Pools)+len(res.IPv6.Pools) == 0 {
			t.Fatal("success without any pool")
		}
	})
}
