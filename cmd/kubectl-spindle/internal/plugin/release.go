package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// ReasonAddressReleased is the reason of the Event release records on the
// pool of every address it frees. It is stable: alerts may match it.
const ReasonAddressReleased = "AddressReleasedByOperator"

// EventNamespace holds the Events of pools (cluster-scoped objects), as
// kubectl describe looks for them.
const EventNamespace = metav1.NamespaceDefault

// ReleaseTarget is one claim to delete: its name and, from a report, the
// UID it had when the report was made (empty: the current claim).
type ReleaseTarget struct {
	Claim string
	UID   types.UID
}

// ParseReport reads a check report (JSON) and returns the leaked
// addresses it lists, with the claim UIDs the report saw.
func ParseReport(data []byte) ([]ReleaseTarget, error) {
	var r Report
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not a kubectl spindle check report: %w", err)
	}
	if r.Findings == nil {
		return nil, fmt.Errorf("not a kubectl spindle check report: no \"findings\" list")
	}
	var out []ReleaseTarget
	for i, f := range r.Findings {
		if f.Kind != FindingLeaked {
			continue
		}
		a, err := ParseAddress(f.Address)
		if err != nil {
			return nil, fmt.Errorf("finding %d: %w", i, err)
		}
		name := v2beta1.ClaimName(a)
		if f.Claim != "" && f.Claim != name {
			return nil, fmt.Errorf("finding %d: claim %q does not match address %s (want claim %q)", i, f.Claim, f.Address, name)
		}
		if f.ClaimUID == "" {
			return nil, fmt.Errorf("finding %d (%s): no claimUID; only reports written by kubectl spindle check can be used", i, f.Address)
		}
		out = append(out, ReleaseTarget{Claim: name, UID: types.UID(f.ClaimUID)})
	}
	return out, nil
}

// ReleaseDecision says whether a claim may be released and why.
func ReleaseDecision(c *v2beta1.SpiderIPClaim, pod *corev1.Pod, force bool) (ok bool, why string) {
	holder := c.Spec.PodNamespace + "/" + c.Spec.PodName
	switch {
	case c.Spec.PodName == "":
		return true, "the claim names no pod"
	case pod == nil:
		return true, fmt.Sprintf("pod %s no longer exists", holder)
	case c.Spec.PodUID != "" && string(pod.UID) != c.Spec.PodUID:
		return true, fmt.Sprintf("pod %s now has UID %s, the claim names UID %s", holder, pod.UID, c.Spec.PodUID)
	case force:
		return true, fmt.Sprintf("pod %s (UID %s) is alive; released with --force", holder, pod.UID)
	}
	return false, fmt.Sprintf("pod %s (UID %s) is alive and holds it; delete the pod, or pass --force to take the address from a running pod", holder, pod.UID)
}

// ReleaseEvent is the Event recorded on the pool for a released claim.
func ReleaseEvent(pool *v2beta1.SpiderIPPool, c *v2beta1.SpiderIPClaim, why, user string, now metav1.Time) *corev1.Event {
	by := "an operator"
	if user != "" {
		by = "operator " + user
	}
	msg := fmt.Sprintf("address %s released by %s with kubectl spindle release (claim UID %s, holder %s/%s UID %s, interface %s): %s",
		c.Spec.Address, by, c.UID, c.Spec.PodNamespace, c.Spec.PodName, c.Spec.PodUID, c.Spec.Interface, why)
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pool.Name + ".", Namespace: EventNamespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: v2beta1.GroupVersion.String(), Kind: "SpiderIPPool",
			Name: pool.Name, UID: pool.UID, ResourceVersion: pool.ResourceVersion},
		Reason: ReasonAddressReleased, Message: msg, Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "kubectl-spindle"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "spindle.spidernet.io/kubectl-spindle", ReportingInstance: "kubectl-spindle",
		Action: "Release",
	}
}

// whoAmI returns the user name the API server knows the operator as.
func whoAmI(ctx context.Context, c client.Client) string {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		return ""
	}
	return r.Status.UserInfo.Username
}

// release deletes one claim (UID precondition) and records the Event;
// it reports a refusal as an error line and returns false.
func release(ctx context.Context, env *Env, t ReleaseTarget, force bool) bool {
	c := &v2beta1.SpiderIPClaim{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: t.Claim}, c); err != nil {
		if apierrors.IsNotFound(err) {
			fmt.Fprintf(env.Stderr, "%s: no SpiderIPClaim %q: the address is not allocated (already released?)\n", t.Claim, t.Claim)
		} else {
			fmt.Fprintf(env.Stderr, "%s: failed to read SpiderIPClaim %q: %v\n", t.Claim, t.Claim, err)
		}
		return false
	}
	if t.UID != "" && c.UID != t.UID {
		fmt.Fprintf(env.Stderr, "%s: refused: the claim now has UID %s, the report saw UID %s: the address was allocated again since; run check again\n", c.Spec.Address, c.UID, t.UID)
		return false
	}
	var pod *corev1.Pod
	if c.Spec.PodName != "" {
		p := &corev1.Pod{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.Spec.PodNamespace, Name: c.Spec.PodName}, p)
		switch {
		case err == nil:
			pod = p
		case !apierrors.IsNotFound(err):
			fmt.Fprintf(env.Stderr, "%s: refused: failed to read its holder pod %s/%s: %v\n", c.Spec.Address, c.Spec.PodNamespace, c.Spec.PodName, err)
			return false
		}
	}
	ok, why := ReleaseDecision(c, pod, force)
	if !ok {
		fmt.Fprintf(env.Stderr, "%s: refused: %s\n", c.Spec.Address, why)
		return false
	}
	uid := c.UID
	if err := env.Client.Delete(ctx, c, client.Preconditions{UID: &uid}); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(env.Stderr, "%s: already released by someone else\n", c.Spec.Address)
		case apierrors.IsConflict(err):
			fmt.Fprintf(env.Stderr, "%s: refused: the claim changed (UID precondition failed): the address was allocated again; run check again\n", c.Spec.Address)
		default:
			fmt.Fprintf(env.Stderr, "%s: failed to delete SpiderIPClaim %q: %v\n", c.Spec.Address, c.Name, err)
		}
		return false
	}
	fmt.Fprintf(env.Stdout, "released %s (pool %s, %s)\n", c.Spec.Address, c.Spec.Pool, why)
	pool := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: c.Spec.Pool}, pool); err != nil {
		fmt.Fprintf(env.Stderr, "%s: released, but no Event recorded: failed to read SpiderIPPool %q: %v\n", c.Spec.Address, c.Spec.Pool, err)
		return true
	}
	ev := ReleaseEvent(pool, c, why, env.User, metav1.NewTime(env.Now()))
	if err := env.Client.Create(ctx, ev); err != nil {
		fmt.Fprintf(env.Stderr, "%s: released, but failed to record the %s Event on SpiderIPPool %q: %v\n", c.Spec.Address, ReasonAddressReleased, pool.Name, err)
	}
	return true
}

func releaseCommand() *command {
	var ips []string
	var fromReport string
	var force bool
	return &command{
		name: "release",
		help: "kubectl spindle release: free addresses by deleting their SpiderIPClaims (with a UID precondition), and record\n" +
			"an Event with reason " + ReasonAddressReleased + " on each address's pool (namespace default).\n" +
			"An address whose holder pod is alive is refused unless --force. --from-report releases the leaked addresses\n" +
			"of a check report, and only if their claims are still the ones the report saw.",
		bind: func(fs *pflag.FlagSet) {
			fs.StringArrayVar(&ips, "ip", nil, "address to release (repeatable)")
			fs.StringVar(&fromReport, "from-report", "", "release the leaked addresses of this check report (JSON)")
			fs.BoolVar(&force, "force", false, "also release addresses whose holder pod is alive")
		},
		run: func(ctx context.Context, env *Env, _ *pflag.FlagSet, args []string) error {
			if err := noArgs("release", args); err != nil {
				return err
			}
			if (len(ips) == 0) == (fromReport == "") {
				return usageErr("release: give --ip (repeatable) or --from-report, not both and not neither")
			}
			var targets []ReleaseTarget
			for _, s := range ips {
				a, err := ParseAddress(s)
				if err != nil {
					return usageErr("--ip: %v", err)
				}
				targets = append(targets, ReleaseTarget{Claim: v2beta1.ClaimName(a)})
			}
			if fromReport != "" {
				data, err := os.ReadFile(fromReport)
				if err != nil {
					return usageErr("--from-report: %v", err)
				}
				if targets, err = ParseReport(data); err != nil {
					return usageErr("--from-report %s: %v", fromReport, err)
				}
				if len(targets) == 0 {
					fmt.Fprintf(env.Stdout, "the report lists no leaked address; nothing to release\n")
					return nil
				}
			}
			if err := env.connect(); err != nil {
				return err
			}
			if env.User == "" {
				env.User = whoAmI(ctx, env.Client)
			}
			failed := 0
			for _, t := range targets {
				if !release(ctx, env, t, force) {
					failed++
				}
			}
			if failed > 0 {
				return findingsErr("%d of %d addresses not released", failed, len(targets))
			}
			return nil
		},
	}
}
