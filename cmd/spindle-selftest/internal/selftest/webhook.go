package selftest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// webhookProbe is a SpiderIPPool the CRD's schema accepts and only the
// validating webhook refuses: its address is outside its subnet. Both are
// documentation ranges (RFC 5737), so the probe can never clash with a real
// pool, and it is only ever sent as a server-side dry run.
func webhookProbe() *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "spindle-selftest-webhook-probe"},
		Spec: v2beta1.IPPoolSpec{
			Subnet:  "192.0.2.0/24",
			IPs:     []string{"198.51.100.10"},
			Gateway: ptr.To("192.0.2.1"),
		},
	}
}

// checkWebhook sends the invalid probe pool as a server-side dry run and
// expects the webhook, not the API server's schema, to refuse it, naming
// the field.
func checkWebhook(ctx context.Context, c client.Client) (result, error) {
	err := c.Create(ctx, webhookProbe(), client.DryRunAll)
	if err := webhookVerdict(err); err != nil {
		return result{}, err
	}
	return result{msg: "the validating webhook refused an invalid SpiderIPPool: " + err.Error()}, nil
}

// webhookVerdict tells a refusal by Spindle's webhook (nil) from an
// acceptance or any other error.
func webhookVerdict(err error) error {
	switch {
	case err == nil:
		return errors.New("the API server accepted a SpiderIPPool whose spec.ips lies outside spec.subnet (dry run, nothing stored): " +
			"the validating webhook is not installed or ignored its failure (kubectl get validatingwebhookconfigurations; webhook.enabled, webhook.failurePolicy)")
	case strings.Contains(err.Error(), "failed calling webhook"):
		return fmt.Errorf("the API server could not reach the webhook: %w (check the controller pods, their Service and the webhook's caBundle)", err)
	case strings.Contains(err.Error(), "admission webhook") && strings.Contains(err.Error(), "denied the request") && strings.Contains(err.Error(), "spec.ips[0]"):
		return nil
	default:
		return fmt.Errorf("the invalid SpiderIPPool was refused, but not by Spindle's webhook naming spec.ips[0]: %w", err)
	}
}
