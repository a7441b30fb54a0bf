package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"

	"github.com/spindle-net/spindle/internal/buildinfo/buildmetric"
)

// Metrics are the agent's Prometheus series. Each Agent owns a registry so
// several agents can live in one process (tests, benchmarks).
type Metrics struct {
	Registry    *prometheus.Registry
	Allocations *prometheus.CounterVec
	Releases    *prometheus.CounterVec
	Failures    *prometheus.CounterVec
	Conflicts   prometheus.Counter
	// AddressConflicts counts conflict reports of the coordinator by action.
	AddressConflicts *prometheus.CounterVec
	AddDuration      prometheus.Histogram
	DelDuration      prometheus.Histogram
	InFlight         *prometheus.GaugeVec
	// WatchedPools and WatchedClaims are the pools whose claims the agent
	// watches (those its node may use) and the claims it knows of there.
	WatchedPools, WatchedClaims prometheus.Gauge
	// BuildInfo is spindle_build_info.
	BuildInfo prometheus.Collector
}

// NewMetrics creates the agent's series and registers them on Registry;
// version is the build's version (the build info gauge's label).
func NewMetrics(version string) *Metrics {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_allocations_total", Help: "Addresses allocated (claims created or re-bound), by IP version.",
		}, []string{"ip_version"}),
		Releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_releases_total", Help: "Addresses released (claims deleted), by IP version.",
		}, []string{"ip_version"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_failures_total", Help: "Failed requests by operation (add, del, check, gc) and reason.",
		}, []string{"op", "reason"}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "spindle_ipam_claim_conflicts_total", Help: "Claim creates that found the address already taken (AlreadyExists) and moved on to the next free slot.",
		}),
		AddressConflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spindle_ipam_conflicts_total", Help: "Addresses the coordinator found already used by another machine, by action (released: the address was released and quarantined; kept: a StatefulSet replica's fixed address).",
		}, []string{"action"}),
		AddDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spindle_ipam_add_duration_seconds", Help: "Duration of ADD requests.", Buckets: buckets,
		}),
		DelDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "spindle_ipam_del_duration_seconds", Help: "Duration of DEL requests.", Buckets: buckets,
		}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spindle_ipam_inflight_requests", Help: "Requests being served, by operation.",
		}, []string{"op"}),
		WatchedPools: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spindle_ipam_watched_pools", Help: "Pools whose SpiderIPClaims the agent watches: those its node may use.",
		}),
		WatchedClaims: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "spindle_ipam_watched_claims", Help: "SpiderIPClaims the agent knows of in the pools it watches (kept by name).",
		}),
	}
	m.BuildInfo = buildmetric.Collector(version)
	m.Registry.MustRegister(m.Collectors()...)
	return m
}

// Collectors is everything the agent exports on /metrics: its own series,
// the build information, and the Go runtime and process collectors.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Allocations, m.Releases, m.Failures, m.Conflicts, m.AddressConflicts, m.AddDuration, m.DelDuration, m.InFlight,
		m.WatchedPools, m.WatchedClaims,
		m.BuildInfo, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
}

// ServeMetrics serves /metrics on addr until ctx is done: plain HTTP, or with
// secure HTTPS (a self-signed certificate) that answers only requests whose
// bearer token the API server authenticates (TokenReview) and authorises to
// get the non-resource URL /metrics (SubjectAccessReview); others get 401 or
// 403.
func (a *Agent) ServeMetrics(ctx context.Context, addr string, secure bool) error {
	h := promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})
	if !secure {
		mux := http.NewServeMux()
		mux.Handle("/metrics", h)
		return serveHTTP(ctx, addr, mux)
	}
	httpClient, err := rest.HTTPClientFor(a.restCfg)
	if err != nil {
		return fmt.Errorf("failed to create the metrics authentication client: %w", err)
	}
	filter, err := filters.WithAuthenticationAndAuthorization(a.restCfg, httpClient)
	if err != nil {
		return fmt.Errorf("failed to set up metrics authentication and authorization: %w", err)
	}
	if h, err = filter(a.log.WithName("metrics"), h); err != nil {
		return fmt.Errorf("failed to set up metrics authentication and authorization: %w", err)
	}
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("spindle-agent", []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, []string{"localhost"})
	if err != nil {
		return fmt.Errorf("failed to generate the metrics serving certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("failed to load the metrics serving certificate: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServeTLS("", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve metrics on %q: %w", addr, err)
	}
	return nil
}
