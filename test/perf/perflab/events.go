package perflab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// SandboxFailures sums the FailedCreatePodSandBox events of the pods of
// namespace whose names start with prefix: every CNI ADD that failed and
// that the node retried.
func SandboxFailures(ctx context.Context, cs kubernetes.Interface, namespace, prefix string) (int, error) {
	evs, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("reason", "FailedCreatePodSandBox").String()})
	if err != nil {
		return 0, fmt.Errorf("failed to list the events of namespace %q: %w", namespace, err)
	}
	n := 0
	for _, ev := range evs.Items {
		if strings.HasPrefix(ev.InvolvedObject.Name, prefix) {
			n += int(max(1, ev.Count))
		}
	}
	return n, nil
}

// Warnings summarises the Warning events of the pods of namespace whose
// names start with prefix by reason, with one message each, for failure
// reports.
func Warnings(ctx context.Context, cs kubernetes.Interface, namespace, prefix string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	evs, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return err.Error()
	}
	count := map[string]int{}
	example := map[string]string{}
	for _, ev := range evs.Items {
		if !strings.HasPrefix(ev.InvolvedObject.Name, prefix) {
			continue
		}
		count[ev.Reason] += int(max(1, ev.Count))
		example[ev.Reason] = ev.InvolvedObject.Name + ": " + ev.Message
	}
	var out []string
	for r, n := range count {
		out = append(out, fmt.Sprintf("  %s x%d, e.g. %s", r, n, example[r]))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "  none"
	}
	return strings.Join(out, "\n")
}
