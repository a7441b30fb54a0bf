package allocator

import (
	"time"

	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// Memory is a Source and ClaimStore held in maps, with the semantics of the
// API server that matter to the engine: one claim per address (a second
// Create is "taken"), UIDs, resourceVersions, and deletes and updates guarded
// by them. It serves tests of the engine and of its callers.
type Memory struct {
	mu       sync.Mutex
	pools    map[string]*v2beta1.SpiderIPPool
	reserved []*v2beta1.SpiderReservedIP
	claims   map[string]*v2beta1.SpiderIPClaim // by name
	version  int64
	// Fail, when set, is asked before every write ("create", "release",
	// "rebind"); an error it returns is returned by the write, which then
	// does nothing.
	Fail func(op string, c *v2beta1.SpiderIPClaim) error
}

var claimResource = schema.GroupResource{Group: v2beta1.GroupVersion.Group, Resource: "spideripclaims"}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{pools: map[string]*v2beta1.SpiderIPPool{}, claims: map[string]*v2beta1.SpiderIPClaim{}}
}

// SetPool adds or replaces a pool; its generation goes up so engines rebuild
// their state of it.
func (m *Memory) SetPool(p *v2beta1.SpiderIPPool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = p.DeepCopy()
	if p.UID == "" {
		p.UID = types.UID("uid-" + p.Name)
	}
	if old := m.pools[p.Name]; old != nil {
		p.Generation = old.Generation + 1
	} else {
		p.Generation = 1
	}
	m.pools[p.Name] = p
}

// SetReserved replaces the SpiderReservedIPs.
func (m *Memory) SetReserved(objs ...*v2beta1.SpiderReservedIP) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reserved = objs
}

// Claims returns a copy of every claim, ordered by name.
func (m *Memory) Claims() []*v2beta1.SpiderIPClaim {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(func(*v2beta1.SpiderIPClaim) bool { return true })
}

// Pool implements Source.
func (m *Memory) Pool(_ context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pools[name]; p != nil {
		return p.DeepCopy(), nil
	}
	return nil, nil
}

// Reserved implements Source.
func (m *Memory) Reserved(_ context.Context, fam ranges.Family) (ranges.Set, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ranges.ParseReserved(m.reserved, fam)
}

// Create implements ClaimStore.
func (m *Memory) Create(_ context.Context, c *v2beta1.SpiderIPClaim) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("create", c); err != nil {
		return false, err
	}
	if _, ok := m.claims[c.Name]; ok {
		return true, nil
	}
	m.version++
	c.UID = types.UID(fmt.Sprintf("claim-%d", m.version))
	c.ResourceVersion = strconv.FormatInt(m.version, 10)
	c.CreationTimestamp = metav1.NewTime(time.Unix(m.version, 0)) // one second apart: creation order
	m.claims[c.Name] = c.DeepCopy()
	return false, nil
}

// Release implements ClaimStore.
func (m *Memory) Release(_ context.Context, c *v2beta1.SpiderIPClaim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("release", c); err != nil {
		return err
	}
	cur, ok := m.claims[c.Name]
	switch {
	case !ok:
		return nil
	case cur.UID != c.UID || cur.ResourceVersion != c.ResourceVersion:
		return ErrChanged
	}
	delete(m.claims, c.Name)
	return nil
}

// Rebind implements ClaimStore.
func (m *Memory) Rebind(_ context.Context, c *v2beta1.SpiderIPClaim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("rebind", c); err != nil {
		return err
	}
	cur, ok := m.claims[c.Name]
	switch {
	case !ok:
		return apierrors.NewNotFound(claimResource, c.Name)
	case cur.UID != c.UID || cur.ResourceVersion != c.ResourceVersion:
		return apierrors.NewConflict(claimResource, c.Name, fmt.Errorf("the object has been modified"))
	}
	m.version++
	c.ResourceVersion = strconv.FormatInt(m.version, 10)
	m.claims[c.Name] = c.DeepCopy()
	return nil
}

// ByPod implements ClaimStore.
func (m *Memory) ByPod(_ context.Context, namespace, name string) ([]*v2beta1.SpiderIPClaim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(func(c *v2beta1.SpiderIPClaim) bool {
		return c.Spec.PodNamespace == namespace && c.Spec.PodName == name
	}), nil
}

// ByOwner implements ClaimStore.
func (m *Memory) ByOwner(_ context.Context, namespace, kind, name string) ([]*v2beta1.SpiderIPClaim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(func(c *v2beta1.SpiderIPClaim) bool {
		return c.Spec.PodNamespace == namespace && c.Spec.OwnerKind == kind && c.Spec.OwnerName == name
	}), nil
}

// ByMAC implements ClaimStore.
func (m *Memory) ByMAC(_ context.Context, mac string) ([]*v2beta1.SpiderIPClaim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(func(c *v2beta1.SpiderIPClaim) bool {
		return c.Labels[v2beta1.LabelMAC] == v2beta1.MACLabelValue(mac)
	}), nil
}

// ByPool implements ClaimStore.
func (m *Memory) ByPool(_ context.Context, pool string) ([]*v2beta1.SpiderIPClaim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(func(c *v2beta1.SpiderIPClaim) bool { return c.Spec.Pool == pool }), nil
}

func (m *Memory) list(keep func(*v2beta1.SpiderIPClaim) bool) []*v2beta1.SpiderIPClaim {
	var out []*v2beta1.SpiderIPClaim
	for _, c := range m.claims {
		if keep(c) {
			out = append(out, c.DeepCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Memory) fail(op string, c *v2beta1.SpiderIPClaim) error {
	if m.Fail == nil {
		return nil
	}
	return m.Fail(op, c)
}
