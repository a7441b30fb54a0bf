package selftest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// checkAgents waits until the agent DaemonSet runs a ready pod on every node
// it is scheduled to.
func checkAgents(ctx context.Context, c client.Client, ref string) (result, error) {
	ns, name, _ := strings.Cut(ref, "/")
	var ds appsv1.DaemonSet
	err := poll(ctx, 2*time.Second, func() (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ds); err != nil {
			if apierrors.IsNotFound(err) {
				return false, "", fmt.Errorf("DaemonSet %s does not exist: check --agent-daemonset (the chart's is <release>-spindle-agent in the release namespace)", ref)
			}
			return false, "", fmt.Errorf("failed to get DaemonSet %s: %w", ref, err)
		}
		state := daemonSetState(&ds)
		return state == "", state, nil
	})
	if err != nil {
		if ds.Name != "" {
			err = fmt.Errorf("DaemonSet %s: %w%s", ref, err, notReadyPods(ctx, c, &ds))
		}
		return result{}, err
	}
	return result{msg: fmt.Sprintf("DaemonSet %s is ready on all %d nodes", ref, ds.Status.DesiredNumberScheduled)}, nil
}

// daemonSetState says why ds is not ready on every node it should run on,
// or "" when it is.
func daemonSetState(ds *appsv1.DaemonSet) string {
	st := ds.Status
	switch {
	case st.ObservedGeneration < ds.Generation:
		return fmt.Sprintf("the DaemonSet controller has not seen generation %d yet", ds.Generation)
	case st.DesiredNumberScheduled == 0:
		return "no node runs it: check the agent's nodeSelector, affinity and tolerations"
	case st.NumberMisscheduled > 0:
		return fmt.Sprintf("%d pods run on nodes they should not", st.NumberMisscheduled)
	case st.NumberReady < st.DesiredNumberScheduled:
		return fmt.Sprintf("%d of %d pods ready", st.NumberReady, st.DesiredNumberScheduled)
	case st.UpdatedNumberScheduled < st.DesiredNumberScheduled:
		return fmt.Sprintf("rolling out: %d of %d pods run the current template", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	}
	return ""
}

// notReadyPods names the DaemonSet's pods that are not ready and their
// nodes, for the failure message; "" when it cannot tell.
func notReadyPods(ctx context.Context, c client.Client, ds *appsv1.DaemonSet) string {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ds.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return ""
	}
	var bad []string
	for _, p := range pods.Items {
		if !podReady(&p) {
			bad = append(bad, fmt.Sprintf("%s on %s (%s)", p.Name, p.Spec.NodeName, p.Status.Phase))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	return "; not ready: " + strings.Join(bad, ", ") + " (kubectl describe pod / kubectl logs them)"
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
