package webhook

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Default names of the webhook configurations the controller patches (and,
// with ConfigOptions.Manage, creates).
const (
	DefaultMutatingConfigName   = "spindle-controller"
	DefaultValidatingConfigName = "spindle-controller"
)

// hook is one admission endpoint: a resource of our API group and whether it
// is mutated, validated or both.
type hook struct {
	resource string // plural resource name
	kind     string // lower-case kind, used in paths and webhook names
	mutate   bool
}

// hooks lists every resource that goes through the webhooks. Only Spindle's
// own custom resources are here: never Pods, Namespaces or anything else the
// cluster (or Spindle's own installation) needs to make progress. The
// per-allocation records (SpiderIPClaim, SpiderEndpoint) are written by the
// agent on the pod start-up path and are deliberately not intercepted.
var hooks = []hook{
	{resource: "spiderippools", kind: "spiderippool", mutate: true},
	{resource: "spidersubnets", kind: "spidersubnet", mutate: true},
	{resource: "spiderreservedips", kind: "spiderreservedip", mutate: true},
	{resource: "spidermultusconfigs", kind: "spidermultusconfig", mutate: true},
	{resource: "spidercoordinators", kind: "spidercoordinator", mutate: true},
}

// MutatePath and ValidatePath are the URL paths the webhook server serves for
// a lower-case kind, e.g. /mutate-spiderippool.
func MutatePath(kind string) string   { return "/mutate-" + kind }
func ValidatePath(kind string) string { return "/validate-" + kind }

// ConfigOptions describe the webhook configurations.
type ConfigOptions struct {
	// MutatingName and ValidatingName name the two configurations.
	MutatingName, ValidatingName string
	// CABundle is the PEM CA that signed the serving certificate.
	CABundle []byte
	// URL is the base URL of the webhook server, e.g. https://127.0.0.1:9443,
	// used when the API server cannot reach the controller through a Service.
	// Exactly one of URL and Service must be set.
	URL string
	// Service is the Service in front of the webhook server.
	Service *admissionv1.ServiceReference
	// FailurePolicy of every webhook (default Fail).
	FailurePolicy admissionv1.FailurePolicyType
	// TimeoutSeconds of every webhook (default 10).
	TimeoutSeconds int32
}

func (o ConfigOptions) clientConfig(path string) admissionv1.WebhookClientConfig {
	cc := admissionv1.WebhookClientConfig{CABundle: o.CABundle}
	if o.URL != "" {
		cc.URL = ptr.To(strings.TrimRight(o.URL, "/") + path)
		return cc
	}
	svc := *o.Service
	svc.Path = ptr.To(path)
	cc.Service = &svc
	return cc
}

func (o ConfigOptions) defaults() ConfigOptions {
	if o.MutatingName == "" {
		o.MutatingName = DefaultMutatingConfigName
	}
	if o.ValidatingName == "" {
		o.ValidatingName = DefaultValidatingConfigName
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = admissionv1.Fail
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 10
	}
	return o
}

func rule(resource string, ops ...admissionv1.OperationType) []admissionv1.RuleWithOperations {
	return []admissionv1.RuleWithOperations{{
		Operations: ops,
		Rule: admissionv1.Rule{
			APIGroups:   []string{v2beta1.GroupVersion.Group},
			APIVersions: []string{v2beta1.GroupVersion.Version},
			Resources:   []string{resource},
			Scope:       ptr.To(admissionv1.AllScopes),
		},
	}}
}

// BuildConfigurations returns the desired mutating and validating webhook
// configurations.
func BuildConfigurations(o ConfigOptions) (*admissionv1.MutatingWebhookConfiguration, *admissionv1.ValidatingWebhookConfiguration, error) {
	o = o.defaults()
	if (o.URL == "") == (o.Service == nil) {
		return nil, nil, fmt.Errorf("failed to build webhook configurations: exactly one of a URL and a Service must be given")
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "spindle-controller"}
	m := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: o.MutatingName, Labels: labels}}
	v := &admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: o.ValidatingName, Labels: labels}}
	for _, h := range hooks {
		if h.mutate {
			m.Webhooks = append(m.Webhooks, admissionv1.MutatingWebhook{
				Name:                    h.kind + ".mutate.spindle.spidernet.io",
				ClientConfig:            o.clientConfig(MutatePath(h.kind)),
				Rules:                   rule(h.resource, admissionv1.Create, admissionv1.Update),
				FailurePolicy:           ptr.To(o.FailurePolicy),
				SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
				AdmissionReviewVersions: []string{"v1"},
				TimeoutSeconds:          ptr.To(o.TimeoutSeconds),
				ReinvocationPolicy:      ptr.To(admissionv1.NeverReinvocationPolicy),
				MatchPolicy:             ptr.To(admissionv1.Equivalent),
			})
		}
		v.Webhooks = append(v.Webhooks, admissionv1.ValidatingWebhook{
			Name:                    h.kind + ".validate.spindle.spidernet.io",
			ClientConfig:            o.clientConfig(ValidatePath(h.kind)),
			Rules:                   rule(h.resource, admissionv1.Create, admissionv1.Update),
			FailurePolicy:           ptr.To(o.FailurePolicy),
			SideEffects:             ptr.To(admissionv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To(o.TimeoutSeconds),
			MatchPolicy:             ptr.To(admissionv1.Equivalent),
		})
	}
	return m, v, nil
}

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;create;update;patch

// EnsureConfigurations makes the cluster's webhook configurations match. With
// manage set the two configurations are created or replaced entirely;
// otherwise only the caBundle of the webhooks of configurations that already
// exist (installed by the chart) is patched, and a missing configuration is
// not an error.
func EnsureConfigurations(ctx context.Context, c client.Client, o ConfigOptions, manage bool) error {
	o = o.defaults()
	if manage {
		m, v, err := BuildConfigurations(o)
		if err != nil {
			return err
		}
		if err := upsert(ctx, c, m, &admissionv1.MutatingWebhookConfiguration{}, func(cur client.Object) {
			cur.(*admissionv1.MutatingWebhookConfiguration).Webhooks = m.Webhooks
		}); err != nil {
			return err
		}
		return upsert(ctx, c, v, &admissionv1.ValidatingWebhookConfiguration{}, func(cur client.Object) {
			cur.(*admissionv1.ValidatingWebhookConfiguration).Webhooks = v.Webhooks
		})
	}
	var m admissionv1.MutatingWebhookConfiguration
	if err := patchCABundle(ctx, c, o.MutatingName, &m, func() bool {
		changed := false
		for i := range m.Webhooks {
			changed = setBundle(&m.Webhooks[i].ClientConfig, o.CABundle) || changed
		}
		return changed
	}); err != nil {
		return err
	}
	var v admissionv1.ValidatingWebhookConfiguration
	return patchCABundle(ctx, c, o.ValidatingName, &v, func() bool {
		changed := false
		for i := range v.Webhooks {
			changed = setBundle(&v.Webhooks[i].ClientConfig, o.CABundle) || changed
		}
		return changed
	})
}

func setBundle(cc *admissionv1.WebhookClientConfig, ca []byte) bool {
	if bytes.Equal(cc.CABundle, ca) {
		return false
	}
	cc.CABundle = ca
	return true
}

func upsert(ctx context.Context, c client.Client, desired, cur client.Object, copyInto func(client.Object)) error {
	kind := fmt.Sprintf("%T", desired)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), cur)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, desired); err != nil {
			return fmt.Errorf("failed to create %s %q: %w", kind, desired.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get %s %q: %w", kind, desired.GetName(), err)
	}
	copyInto(cur)
	labels := cur.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		labels[k] = v
	}
	cur.SetLabels(labels)
	if err := c.Update(ctx, cur); err != nil {
		return fmt.Errorf("failed to update %s %q: %w", kind, desired.GetName(), err)
	}
	return nil
}

func patchCABundle(ctx context.Context, c client.Client, name string, obj client.Object, mutate func() bool) error {
	kind := fmt.Sprintf("%T", obj)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	if err := c.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("failed to get %s %q: %w", kind, name, err)
	}
	before := obj.DeepCopyObject().(client.Object)
	if !mutate() {
		return nil
	}
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to patch caBundle of %s %q: %w", kind, name, err)
	}
	return nil
}
