package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/store"
)

// The systems an import reads.
const (
	FromSpiderpool  = "spiderpool"
	FromWhereabouts = "whereabouts"
)

// WhereaboutsGroupVersion is the API of whereabouts' objects.
var WhereaboutsGroupVersion = schema.GroupVersion{Group: "whereabouts.cni.cncf.io", Version: "v1alpha1"}

// What the import reads and writes. Reading the old records and the pods
// they name, creating claims, and writing SpiderEndpoints the way the agent
// does.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spiderendpoints;spideripclaims,verbs=get;list
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims;spiderendpoints,verbs=create
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints;spiderendpoints/status,verbs=update
// +kubebuilder:rbac:groups=whereabouts.cni.cncf.io,resources=ippools;overlappingrangeipreservations,verbs=get;list

// Outcome is what the import did with one record.
type Outcome string

// Outcomes, as the report prints them.
const (
	Imported        Outcome = "imported"
	WouldImport     Outcome = "would-import"
	AlreadyImported Outcome = "already-imported"
	PodGone         Outcome = "skipped-pod-gone"
	Conflict        Outcome = "conflict"
	NoPool          Outcome = "no-pool"
)

// Line is one line of the report: one record of the old IPAM.
type Line struct {
	Outcome Outcome
	Record  Record
	// Pool is the Spindle pool the address was (or would be) claimed in.
	Pool string
	// Why explains a skip or a conflict.
	Why string
}

func (l Line) String() string {
	s := fmt.Sprintf("%-16s %-15s pod=%s", l.Outcome, l.Record.Address, l.Record.PodKey())
	if l.Record.Interface != "" {
		s += " interface=" + l.Record.Interface
	}
	if l.Pool != "" {
		s += " pool=" + l.Pool
	}
	if l.Why != "" {
		s += ": " + l.Why
	}
	return s + " (from " + l.Record.Source + ")"
}

// Report is the outcome of an import.
type Report struct {
	From   string
	DryRun bool
	Lines  []Line
	// Endpoints is the number of SpiderEndpoints written (or that would be).
	Endpoints int
}

// Count returns how many lines have outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, l := range r.Lines {
		if l.Outcome == o {
			n++
		}
	}
	return n
}

// Problems is the number of records the import could not carry over
// although their pod is alive (conflicts and addresses outside every pool).
func (r *Report) Problems() int { return r.Count(Conflict) + r.Count(NoPool) }

// Summary is the report's last line.
func (r *Report) Summary() string {
	imported, verb, eps := r.Count(Imported), "imported", "written"
	if r.DryRun {
		imported, verb, eps = r.Count(WouldImport), "would be imported (dry run: nothing was written)", "to write"
	}
	return fmt.Sprintf("summary: %s: %d records, %d %s, %d already imported, %d skipped (pod gone), %d conflicts, %d outside every pool; %d SpiderEndpoints %s",
		r.From, len(r.Lines), imported, verb, r.Count(AlreadyImported), r.Count(PodGone), r.Count(Conflict), r.Count(NoPool), r.Endpoints, eps)
}

// Write prints the report: one line per record, then the summary.
func (r *Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, l := range r.Lines {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// Importer runs one import.
type Importer struct {
	// C reads from and writes to the API server directly (no cache).
	C client.Client
	// DryRun computes the report without writing anything.
	DryRun bool

	claims map[string]*v2beta1.SpiderIPClaim // by name (= address)
	pools  []poolInfo
}

type poolInfo struct {
	pool   *v2beta1.SpiderIPPool
	layout *ranges.Pool // nil when the pool is invalid
}

// Run reads the records of system from (FromSpiderpool or FromWhereabouts)
// and claims every address a live pod still holds.
func (im *Importer) Run(ctx context.Context, from string) (*Report, error) {
	var records []Record
	var err error
	switch from {
	case FromSpiderpool:
		records, err = im.spiderpoolRecords(ctx)
	case FromWhereabouts:
		records, err = im.whereaboutsRecords(ctx)
	default:
		return nil, fmt.Errorf("unknown import source %q: use %q or %q", from, FromSpiderpool, FromWhereabouts)
	}
	if err != nil {
		return nil, err
	}
	if err := im.load(ctx); err != nil {
		return nil, err
	}
	rep := &Report{From: from, DryRun: im.DryRun}
	touched := map[string]*corev1.Pod{}
	for _, r := range Merge(records) {
		line, pod, err := im.one(ctx, r)
		if err != nil {
			return rep, err
		}
		rep.Lines = append(rep.Lines, line)
		if pod != nil && (line.Outcome == Imported || line.Outcome == WouldImport || line.Outcome == AlreadyImported) {
			touched[r.PodKey()] = pod
		}
	}
	keys := make([]string, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		wrote, err := im.endpoint(ctx, touched[k])
		if err != nil {
			return rep, err
		}
		if wrote {
			rep.Endpoints++
		}
	}
	return rep, nil
}

func (im *Importer) spiderpoolRecords(ctx context.Context) ([]Record, error) {
	var records []Record
	pools := &v2beta1.SpiderIPPoolList{}
	if err := im.C.List(ctx, pools); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	for i := range pools.Items {
		p := &pools.Items[i]
		if p.Status.AllocatedIPs == nil {
			continue
		}
		rs, err := ParseAllocatedIPs(p.Name, *p.Status.AllocatedIPs)
		if err != nil {
			return nil, err
		}
		records = append(records, rs...)
	}
	eps := &v2beta1.SpiderEndpointList{}
	if err := im.C.List(ctx, eps); err != nil {
		return nil, fmt.Errorf("failed to list SpiderEndpoints: %w", err)
	}
	for i := range eps.Items {
		rs, err := EndpointRecords(&eps.Items[i])
		if err != nil {
			return nil, err
		}
		records = append(records, rs...)
	}
	return records, nil
}

func (im *Importer) whereaboutsRecords(ctx context.Context) ([]Record, error) {
	list := func(kind string) ([]unstructured.Unstructured, error) {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(WhereaboutsGroupVersion.WithKind(kind + "List"))
		if err := im.C.List(ctx, l); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("failed to list whereabouts %ss: the API server does not serve %s (is whereabouts installed?): %w", kind, WhereaboutsGroupVersion, err)
			}
			return nil, fmt.Errorf("failed to list whereabouts %ss: %w", kind, err)
		}
		return l.Items, nil
	}
	pools, err := list("IPPool")
	if err != nil {
		return nil, err
	}
	var records []Record
	for i := range pools {
		u := &pools[i]
		src := "IPPool " + u.GetNamespace() + "/" + u.GetName()
		var spec struct {
			Range       string                           `json:"range"`
			Allocations map[string]WhereaboutsAllocation `json:"allocations"`
		}
		if err := fromUnstructured(u.Object["spec"], &spec); err != nil {
			return nil, fmt.Errorf("%s: spec: %w", src, err)
		}
		rs, err := ParseWhereaboutsAllocations(src, spec.Range, spec.Allocations)
		if err != nil {
			return nil, err
		}
		records = append(records, rs...)
	}
	reservations, err := list("OverlappingRangeIPReservation")
	if err != nil {
		return nil, err
	}
	for i := range reservations {
		u := &reservations[i]
		var spec struct {
			ContainerID string `json:"containerid"`
			PodRef      string `json:"podref"`
			IfName      string `json:"ifname"`
		}
		if err := fromUnstructured(u.Object["spec"], &spec); err != nil {
			return nil, fmt.Errorf("OverlappingRangeIPReservation %s/%s: spec: %w", u.GetNamespace(), u.GetName(), err)
		}
		r, err := ReservationRecord(u.GetNamespace(), u.GetName(), spec.PodRef, spec.IfName, spec.ContainerID)
		if err != nil {
			return nil, err
		}
		records = append(records, r)
	}
	return records, nil
}

func fromUnstructured(in any, out any) error {
	m, ok := in.(map[string]any)
	if !ok {
		return fmt.Errorf("not an object")
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(m, out)
}

// load reads Spindle's claims and pools.
func (im *Importer) load(ctx context.Context) error {
	claims := &v2beta1.SpiderIPClaimList{}
	if err := im.C.List(ctx, claims); err != nil {
		return fmt.Errorf("failed to list SpiderIPClaims: %w", err)
	}
	im.claims = map[string]*v2beta1.SpiderIPClaim{}
	for i := range claims.Items {
		im.claims[claims.Items[i].Name] = &claims.Items[i]
	}
	pools := &v2beta1.SpiderIPPoolList{}
	if err := im.C.List(ctx, pools); err != nil {
		return fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	im.pools = nil
	for i := range pools.Items {
		p := &pools.Items[i]
		layout, err := ranges.ParsePool(&p.Spec, ranges.Set{})
		if err != nil {
			layout = nil
		}
		im.pools = append(im.pools, poolInfo{pool: p, layout: layout})
	}
	sort.Slice(im.pools, func(i, j int) bool { return im.pools[i].pool.Name < im.pools[j].pool.Name })
	return nil
}

// poolFor returns the Spindle pool the address goes to: the pool the old
// record names when it contains the address, otherwise the first pool (by
// name) that does. why is set when there is none.
func (im *Importer) poolFor(r Record) (pool *poolInfo, why string) {
	var in []*poolInfo
	for i := range im.pools {
		p := &im.pools[i]
		if p.layout != nil && p.layout.IPs.Contains(r.Address) {
			if p.pool.Name == r.Pool {
				return p, ""
			}
			in = append(in, p)
		}
	}
	if len(in) > 0 {
		return in[0], ""
	}
	if r.Pool != "" {
		return nil, fmt.Sprintf("the address is not in spec.ips of SpiderIPPool %q, nor of any other SpiderIPPool: add it to a pool and import again", r.Pool)
	}
	return nil, "no SpiderIPPool has this address in spec.ips: create a SpiderIPPool covering the old range and import again"
}

// one decides and, unless dry-running, claims one record's address. It
// returns the live pod when the record is (or already was) imported.
func (im *Importer) one(ctx context.Context, r Record) (Line, *corev1.Pod, error) {
	line := Line{Record: r}
	pod := &corev1.Pod{}
	err := im.C.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Name}, pod)
	switch {
	case apierrors.IsNotFound(err):
		line.Outcome, line.Why = PodGone, "the pod does not exist"
		return line, nil, nil
	case err != nil:
		return line, nil, fmt.Errorf("failed to get pod %q: %w", r.PodKey(), err)
	case r.UID != "" && string(pod.UID) != r.UID:
		line.Outcome, line.Why = PodGone, fmt.Sprintf("the pod of that name now has UID %s, the record is of UID %s", pod.UID, r.UID)
		return line, nil, nil
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		line.Outcome, line.Why = PodGone, fmt.Sprintf("the pod has finished (%s)", pod.Status.Phase)
		return line, nil, nil
	}
	p, why := im.poolFor(r)
	if p == nil {
		line.Outcome, line.Why = NoPool, why
		return line, nil, nil
	}
	line.Pool = p.pool.Name
	name := v2beta1.ClaimName(r.Address)
	if c := im.claims[name]; c != nil {
		return im.existing(line, c, pod), pod, nil
	}
	if r.Interface == "" {
		r.Interface = InterfaceOf(pod, r.Address)
		line.Record.Interface = r.Interface
	}
	spec := v2beta1.IPClaimSpec{
		Pool: p.pool.Name, PodNamespace: pod.Namespace, PodName: pod.Name, PodUID: string(pod.UID),
		Interface: r.Interface, ContainerID: r.ContainerID, Node: pod.Spec.NodeName, CleanGateway: r.CleanGateway,
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		spec.OwnerKind, spec.OwnerName = ref.Kind, ref.Name
	}
	c := v2beta1.NewClaim(r.Address, spec)
	if im.DryRun {
		im.claims[name] = c
		line.Outcome = WouldImport
		return line, pod, nil
	}
	taken, err := (&store.Store{W: im.C}).Create(ctx, c)
	if err != nil {
		return line, nil, err
	}
	if taken {
		// Claimed since the claims were listed (an agent, or another import).
		cur := &v2beta1.SpiderIPClaim{}
		if err := im.C.Get(ctx, client.ObjectKey{Name: name}, cur); err != nil {
			return line, nil, fmt.Errorf("failed to get SpiderIPClaim %q: %w", name, err)
		}
		im.claims[name] = cur
		return im.existing(line, cur, pod), pod, nil
	}
	im.claims[name] = c
	line.Outcome = Imported
	return line, pod, nil
}

// InterfaceOf returns the interface of pod that Multus' network-status
// annotation shows addr on; "" when it does not. Spiderpool's
// status.allocatedIPs and whereabouts' older records do not name the
// interface, and claims need it to be kept across a StatefulSet replica's
// next incarnation.
func InterfaceOf(pod *corev1.Pod, addr netip.Addr) string {
	var status []netv1.NetworkStatus
	if err := json.Unmarshal([]byte(pod.Annotations[netv1.NetworkStatusAnnot]), &status); err != nil {
		return ""
	}
	for _, st := range status {
		for _, ip := range st.IPs {
			if a, err := parseAddrOrPrefix(ip); err == nil && a == addr {
				return st.Interface
			}
		}
	}
	return ""
}

// existing is the outcome for an address that already has claim c.
func (im *Importer) existing(line Line, c *v2beta1.SpiderIPClaim, pod *corev1.Pod) Line {
	if c.Spec.PodUID == string(pod.UID) && c.Spec.PodNamespace == pod.Namespace && c.Spec.PodName == pod.Name {
		line.Outcome, line.Pool = AlreadyImported, c.Spec.Pool
		return line
	}
	line.Outcome = Conflict
	holder := fmt.Sprintf("SpiderIPClaim %q", c.Name)
	if c.Spec.PodName != "" {
		holder = fmt.Sprintf("pod %s/%s (UID %s, SpiderIPClaim %q)", c.Spec.PodNamespace, c.Spec.PodName, c.Spec.PodUID, c.Name)
	}
	line.Why = "the address is already held in Spindle by " + holder + "; one of the two pods must be re-created to get another address"
	return line
}

// endpoint writes the SpiderEndpoint of pod from its claims, as the agent
// does (store.EndpointFromClaims, store.PutEndpoint), when it differs. It
// reports whether it wrote (or, dry-running, would write).
func (im *Importer) endpoint(ctx context.Context, pod *corev1.Pod) (bool, error) {
	var mine []*v2beta1.SpiderIPClaim
	for _, c := range im.claims {
		if c.Spec.PodUID == string(pod.UID) && c.Spec.PodNamespace == pod.Namespace && c.Spec.PodName == pod.Name {
			mine = append(mine, c)
		}
	}
	want := store.EndpointFromClaims(pod.Namespace, pod.Name, mine, func(name string) (store.PoolFacts, bool) {
		for i := range im.pools {
			if p := im.pools[i]; p.pool.Name == name && p.layout != nil {
				return store.FactsOf(p.pool, p.layout), true
			}
		}
		return store.PoolFacts{}, false
	})
	if want == nil {
		return false, nil
	}
	// The node's agent writes the same object from the same claims as soon
	// as it sees them: a conflict is read again, and is often the end.
	for attempt := 0; ; attempt++ {
		cur := &v2beta1.SpiderEndpoint{}
		err := im.C.Get(ctx, client.ObjectKeyFromObject(want), cur)
		switch {
		case apierrors.IsNotFound(err):
			cur = nil
		case err != nil:
			return false, fmt.Errorf("failed to get SpiderEndpoint %q: %w", pod.Namespace+"/"+pod.Name, err)
		case equality.Semantic.DeepEqual(cur.Status, want.Status) && cur.Labels[store.LabelEndpointNode] == want.Labels[store.LabelEndpointNode]:
			return false, nil
		}
		if im.DryRun {
			return true, nil
		}
		_, err = (&store.Store{W: im.C}).PutEndpoint(ctx, cur, want, nil)
		if err == nil {
			return true, nil
		}
		if !apierrors.IsConflict(err) || attempt >= 4 {
			return false, err
		}
	}
}

// Addresses returns the addresses of the report's lines with outcome o.
func (r *Report) Addresses(o Outcome) []netip.Addr {
	var out []netip.Addr
	for _, l := range r.Lines {
		if l.Outcome == o {
			out = append(out, l.Record.Address)
		}
	}
	return out
}
