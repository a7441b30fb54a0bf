package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/spindle-net/spindle/coordinator/clusterinfo"
	"github.com/spindle-net/spindle/internal/buildinfo/buildmetric"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/gc"
	"github.com/spindle-net/spindle/ipam/inline/inlinecontroller"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/poolfinalizer"
	"github.com/spindle-net/spindle/ipam/poolstatus"
	"github.com/spindle-net/spindle/ipam/subnets/subnetcontroller"
	spwebhook "github.com/spindle-net/spindle/ipam/webhook"
	"github.com/spindle-net/spindle/ipam/webhook/certs"
	nadcontroller "github.com/spindle-net/spindle/nad/controller"
)

// Scheme returns the types spindle-controller reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v2beta1.AddToScheme(s)
	_ = netv1.AddToScheme(s)
	return s
}

// Leader election Lease access and the events of the manager itself.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update
//
// Secure metrics (--metrics-secure) ask the API server who a scraper is and
// whether it may get /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Run starts spindle-controller and blocks until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
	// Uncompressed, as the agent's (see agent.Options.RestConfig).
	cfg.DisableCompression = true
	scheme := Scheme()

	var bundle *certs.Bundle
	if o.EnableWebhooks {
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("failed to create API client: %w", err)
		}
		dns, ips := o.certNames()
		copts := certs.Options{Dir: o.WebhookCertDir, DNSNames: dns, IPs: ips}
		if o.WebhookCertSecret != "" {
			copts.Secret, _ = o.certSecret()
		}
		if bundle, err = certs.Ensure(ctx, direct, copts); err != nil {
			return fmt.Errorf("failed to prepare the webhook certificate: %w", err)
		}
	}

	if err := registerBuildInfo(o.Version); err != nil {
		return err
	}
	mopts := ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       o.metricsOptions(),
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.LeaseDuration,
		RenewDeadline:                 &o.LeaderRenewDeadline,
		RetryPeriod:                   &o.LeaderRetryPeriod,
		GracefulShutdownTimeout:       &o.GracefulShutdownTime,
		Controller:                    config.Controller{MaxConcurrentReconciles: o.MaxConcurrentReconciles},
	}
	if o.EnableWebhooks {
		mopts.WebhookServer = webhook.NewServer(webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.WebhookCertDir})
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("failed to create manager: %w", err)
	}
	if err := Setup(mgr, o, bundle); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// metricsOptions serves /metrics over plain HTTP, or over HTTPS behind the
// API server's authentication (TokenReview) and authorization
// (SubjectAccessReview: get on the non-resource URL /metrics).
func (o *Options) metricsOptions() metricsserver.Options {
	mo := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.MetricsSecure}
	if o.MetricsSecure {
		mo.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return mo
}

// registerBuildInfo adds spindle_build_info to the controller-runtime
// registry (once per process).
func registerBuildInfo(version string) error {
	if version == "" {
		version = "dev"
	}
	err := ctrlmetrics.Registry.Register(buildmetric.Collector(version))
	if are := (prometheus.AlreadyRegisteredError{}); err != nil && !errors.As(err, &are) {
		return fmt.Errorf("failed to register %s: %w", buildmetric.MetricName, err)
	}
	return nil
}

// Setup registers the webhooks, the controllers and the probes on mgr.
func Setup(mgr manager.Manager, o Options, bundle *certs.Bundle) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if o.EnableWebhooks {
		spwebhook.Register(mgr)
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return fmt.Errorf("failed to add readiness check: %w", err)
		}
		if bundle != nil && (o.WebhookManageConfigs || o.WebhookPatchCABundle) {
			// Uncached: two objects are not worth cluster-wide informers.
			direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
			if err != nil {
				return fmt.Errorf("failed to create API client: %w", err)
			}
			if err := mgr.Add(&configWriter{client: direct, server: mgr.GetWebhookServer(), opts: o.configOptions(bundle.CA), certDir: o.WebhookCertDir, manage: o.WebhookManageConfigs, every: o.WebhookConfigRefreshEvery}); err != nil {
				return fmt.Errorf("failed to add webhook configuration writer: %w", err)
			}
		}
	} else if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add readiness check: %w", err)
	}

	if o.EnablePoolStatus {
		if err := (&poolstatus.Reconciler{}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the pool status controller: %w", err)
		}
	}
	if err := (&subnetcontroller.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("spindle-subnets")}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the SpiderSubnet controller: %w", err)
	}
	if err := (&subnetcontroller.AppReconciler{Client: mgr.GetClient(), Live: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("spindle-subnets"),
		DefaultSpare: o.SubnetDefaultSpareIPs, DefaultSubnet: annotations.SubnetRequest{IPv4: o.DefaultSubnetIPv4, IPv6: o.DefaultSubnetIPv6}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the subnet application controller: %w", err)
	}
	if err := (&poolfinalizer.Reconciler{Client: mgr.GetClient(), Live: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("spindle-pool-finalizer")}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the pool finalizer controller: %w", err)
	}
	if o.EnableGC {
		r := &gc.Reconciler{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("spindle-ip-gc"),
			Config: lifecycle.Config{
				TerminatingDelay:                 o.GCTerminatingDelay,
				CollectTerminatingOnReadyNode:    o.GCTerminatingOnReady,
				CollectTerminatingOnNotReadyNode: o.GCTerminatingOnNotReady,
				IgnoreStatefulSets:               !o.EnableStatefulSet,
			},
		}
		if err := r.SetupWithManager(mgr, o.GCInterval); err != nil {
			return fmt.Errorf("failed to set up the IP garbage collector: %w", err)
		}
	}
	if o.EnableMultusConfig {
		if err := (&nadcontroller.Reconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder("spindle-multus-config")}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the SpiderMultusConfig controller: %w", err)
		}
	}
	if o.EnableInlineRanges {
		if err := (&inlinecontroller.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("spindle-inline-ranges")}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the inline ranges controller: %w", err)
		}
	}
	if o.EnableCoordinator {
		r := &clusterinfo.Reconciler{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("spindle-coordinator"),
			CreateDefault: o.CoordinatorCreateDefault, Resync: o.CoordinatorResync, SystemNamespace: o.SystemNamespace,
		}
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the SpiderCoordinator controller: %w", err)
		}
	}
	return nil
}

func (o *Options) configOptions(ca []byte) spwebhook.ConfigOptions {
	co := spwebhook.ConfigOptions{
		MutatingName:   o.WebhookMutatingName,
		ValidatingName: o.WebhookValidatingName,
		CABundle:       ca,
		FailurePolicy:  admissionv1.FailurePolicyType(o.WebhookFailurePolicy),
		TimeoutSeconds: int32(o.WebhookTimeoutSeconds),
	}
	if u := o.webhookURL(); u != "" {
		co.URL = u
	} else if o.WebhookServiceName != "" {
		co.Service = &admissionv1.ServiceReference{Namespace: o.WebhookServiceNamespace, Name: o.WebhookServiceName, Port: ptr.To(int32(o.WebhookServicePort))}
	}
	return co
}

// configWriter writes the webhook configurations (or their caBundle) once the
// webhook server serves, and again periodically. It runs on every replica:
// the webhooks must work as soon as this replica can answer them, and the
// write is idempotent.
type configWriter struct {
	client client.Client
	server interface {
		StartedChecker() healthz.Checker
	}
	opts    spwebhook.ConfigOptions
	certDir string
	manage  bool
	every   time.Duration
}

func (w *configWriter) NeedLeaderElection() bool { return false }

func (w *configWriter) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-configuration")
	check := w.server.StartedChecker()
	for check(nil) != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	delay := time.Second
	for {
		// Re-read the CA: a mounted certificate may have been rotated.
		if b, err := certs.ReadDir(w.certDir); err == nil && len(b.CA) > 0 {
			w.opts.CABundle = b.CA
		}
		err := spwebhook.EnsureConfigurations(ctx, w.client, w.opts, w.manage)
		wait := w.every
		if err != nil {
			logger.Error(err, "failed to write webhook configurations; retrying")
			wait, delay = delay, min(2*delay, time.Minute)
		} else {
			delay = time.Second
		}
		if wait <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
