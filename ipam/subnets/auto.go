package subnets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// The labels of an application's automatic pool, and the keys of the pod
// affinity that gives the pool to the application's pods only. A pod's
// application labels are not on the pod: the agent derives them from its
// controllers (AppLabels) before it matches pod affinities.
const (
	LabelAppKind      = "ipam.spidernet.io/owner-application-kind"
	LabelAppNamespace = "ipam.spidernet.io/owner-application-namespace"
	LabelAppName      = "ipam.spidernet.io/owner-application-name"
	LabelAppUID       = "ipam.spidernet.io/owner-application-uid"
	LabelInterface    = "ipam.spidernet.io/interface"
	LabelReclaim      = "ipam.spidernet.io/ippool-reclaim"

	AffinityAppKind      = "ipam.spidernet.io/app-kind"
	AffinityAppNamespace = v2beta1.LabelAppNamespace
	AffinityAppName      = "ipam.spidernet.io/app-name"
)

// App identifies an application: the top controller of its pods.
type App struct {
	Kind, Namespace, Name string
	UID                   string
}

func (a App) String() string { return a.Kind + " " + a.Namespace + "/" + a.Name }

// AppKinds are the controllers whose replicas spindle-controller reads, so
// that their pools follow them. Any other controller of a pod is a
// third-party one: its pool has the fixed size its pod template asks for,
// and is kept when it is gone.
var AppKinds = map[string]schema.GroupVersionKind{
	"Deployment":  {Group: "apps", Version: "v1", Kind: "Deployment"},
	"ReplicaSet":  {Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	"StatefulSet": {Group: "apps", Version: "v1", Kind: "StatefulSet"},
	"DaemonSet":   {Group: "apps", Version: "v1", Kind: "DaemonSet"},
	"Job":         {Group: "batch", Version: "v1", Kind: "Job"},
	"CronJob":     {Group: "batch", Version: "v1", Kind: "CronJob"},
}

// IsAppKind reports whether an owner reference's apiVersion and kind are
// one of AppKinds.
func IsAppKind(apiVersion, kind string) bool {
	gvk, ok := AppKinds[kind]
	return ok && schema.FromAPIVersionAndKind(apiVersion, kind) == gvk
}

// ThirdParty reports whether a's kind is none of AppKinds.
func (a App) ThirdParty() bool {
	_, ok := AppKinds[a.Kind]
	return !ok
}

// AppLabels are the labels a pod of app is matched with against pod
// affinities, besides its own.
func AppLabels(a App) map[string]string {
	return map[string]string{AffinityAppKind: a.Kind, AffinityAppNamespace: a.Namespace, AffinityAppName: a.Name}
}

// AutoPoolName is the name of app's pool for interface iface and family f:
// "auto4-<app>-<iface>-<5 hex digits>", the digits a hash of the kind,
// namespace and name, so that an application created again under the same
// name finds its kept pool.
func AutoPoolName(a App, iface string, f ranges.Family) string {
	sum := sha256.Sum256([]byte(a.Kind + "/" + a.Namespace + "/" + a.Name + "/" + iface))
	name := a.Name
	if max := 253 - len("auto4--") - len(iface) - 6; len(name) > max {
		name = name[:max]
	}
	return fmt.Sprintf("auto%d-%s-%s-%s", f, strings.ToLower(name), strings.ToLower(iface), hex.EncodeToString(sum[:])[:5])
}

// AutoPoolLabels are the labels of app's pool for iface.
func AutoPoolLabels(a App, iface string, reclaim bool) map[string]string {
	return map[string]string{
		LabelAppKind: a.Kind, LabelAppNamespace: a.Namespace, LabelAppName: a.Name, LabelAppUID: a.UID,
		LabelInterface: iface, LabelReclaim: fmt.Sprint(reclaim),
	}
}

// IsAutoPoolOf reports whether pool is app's pool for iface (of whatever
// UID: a kept pool of an earlier application of that name qualifies).
func IsAutoPoolOf(pool *v2beta1.SpiderIPPool, a App, iface string) bool {
	l := pool.Labels
	return l[LabelAppKind] == a.Kind && l[LabelAppNamespace] == a.Namespace && l[LabelAppName] == a.Name && l[LabelInterface] == iface
}

// AppAffinity is the pod affinity of app's pools.
func AppAffinity(a App) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: AppLabels(a)}
}

// Carve decides the addresses of an application's pool: have are its
// addresses now, held those of them that pods hold, usable what its subnet
// gives to pools and taken what the subnet's other pools have. A pool
// smaller than want grows by the lowest free addresses; a larger one
// shrinks by its highest addresses nobody holds. short is how many
// addresses it still lacks when the subnet has too few free.
func Carve(usable, taken, have, held ranges.Set, want int) (ips ranges.Set, short int) {
	n := int(have.Count())
	switch {
	case n < want:
		free := usable.Subtract(taken).Subtract(have)
		add := firstN(free, want-n)
		return have.Union(add), want - n - int(add.Count())
	case n > want:
		drop := lastN(have.Subtract(held), n-want)
		return have.Subtract(drop), 0
	}
	return have, 0
}

// firstN returns the n lowest addresses of s (fewer when s is smaller).
func firstN(s ranges.Set, n int) ranges.Set {
	var out []ranges.Range
	for _, r := range s.Ranges() {
		for a := r.First; n > 0; a = a.Next() {
			out = append(out, ranges.Range{First: a, Last: a})
			n--
			if a == r.Last {
				break
			}
		}
	}
	return ranges.NewSet(out...)
}

// lastN returns the n highest addresses of s (fewer when s is smaller).
func lastN(s ranges.Set, n int) ranges.Set {
	var out []ranges.Range
	rs := s.Ranges()
	for i := len(rs) - 1; i >= 0 && n > 0; i-- {
		for a := rs[i].Last; n > 0; a = a.Prev() {
			out = append(out, ranges.Range{First: a, Last: a})
			n--
			if a == rs[i].First {
				break
			}
		}
	}
	return ranges.NewSet(out...)
}
